//! CIFAR-10 binary files: round trips through synthetic files in the official format, and the
//! errors for missing, mis-sized and corrupt inputs.
// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::{px, random_bytes, write_cifar_batch};
use mclr_trainer::Error;
use mclr_trainer::data::{self, DatasetName, Split, cifar10};

/// Writes five train files of `per_file` images and a test file of `test` images; returns the
/// train pixels/labels and the test pixels/labels.
fn write_dataset(dir: &std::path::Path, per_file: usize, test: usize) -> [(Vec<u8>, Vec<u8>); 2] {
    let mut train_rgb = Vec::new();
    let mut train_labels = Vec::new();
    for (k, name) in cifar10::TRAIN_FILES.iter().enumerate() {
        let rgb = random_bytes(per_file * 3072, k as u64);
        let labels: Vec<u8> = (0..per_file).map(|i| ((i + k) % 10) as u8).collect();
        write_cifar_batch(&dir.join(name), &rgb, &labels);
        train_rgb.extend_from_slice(&rgb);
        train_labels.extend_from_slice(&labels);
    }
    let rgb = random_bytes(test * 3072, 99);
    let labels: Vec<u8> = (0..test).map(|i| (9 - i % 10) as u8).collect();
    write_cifar_batch(&dir.join(cifar10::TEST_FILE), &rgb, &labels);
    [(train_rgb, train_labels), (rgb, labels)]
}

#[test]
fn train_and_test_files_round_trip_pixels_labels_and_planes() {
    let dir = tempfile::tempdir().unwrap();
    let [(train_rgb, train_labels), (test_rgb, test_labels)] = write_dataset(dir.path(), 3, 4);

    let train = data::load(DatasetName::Cifar10, dir.path(), Split::SslTrain).unwrap();
    assert_eq!(train.len(), 15);
    assert_eq!((train.height(), train.width()), (32, 32));
    assert_eq!(train.pixels(), &train_rgb[..]);
    let expected: Vec<u16> = train_labels.iter().map(|&l| u16::from(l)).collect();
    assert_eq!(train.labels().unwrap(), &expected[..]);
    assert_eq!(train.class_names()[0], "airplane");
    assert_eq!(train.class_names()[9], "truck");

    // Spot-check the plane layout against the raw file: byte 1 + c·1024 + 32·y + x of record i.
    let raw = std::fs::read(dir.path().join("data_batch_2.bin")).unwrap();
    for (i, y, x, c) in [(0, 0, 1, 0), (1, 31, 0, 2), (2, 17, 29, 1)] {
        let from_file = raw[i * 3073 + 1 + c * 1024 + 32 * y + x];
        let image = train.image(3 + i).unwrap();
        assert_eq!(image[(y * 32 + x) * 3 + c], from_file);
        assert_eq!(px(&train_rgb, 32, 32, 3 + i, y, x, c), from_file);
    }

    let test = data::load(DatasetName::Cifar10, dir.path(), Split::EvalTest).unwrap();
    assert_eq!(test.len(), 4);
    assert_eq!(test.pixels(), &test_rgb[..]);
    assert_eq!(test.label(0), Some(u16::from(test_labels[0])));

    let eval_train = data::load(DatasetName::Cifar10, dir.path(), Split::EvalTrain).unwrap();
    assert_eq!(eval_train, train);
}

#[test]
fn archive_subfolder_is_found_inside_the_given_dir() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&nested).unwrap();
    write_dataset(&nested, 1, 1);
    let test = cifar10::load_test(dir.path()).unwrap();
    assert_eq!(test.len(), 1);
}

#[test]
fn batches_meta_txt_names_the_classes() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 1, 1);
    let names: Vec<String> = (0..10).map(|i| format!("class{i}")).collect();
    std::fs::write(
        dir.path().join("batches.meta.txt"),
        names.join("\n") + "\n\n",
    )
    .unwrap();
    let test = cifar10::load_test(dir.path()).unwrap();
    assert_eq!(test.class_names(), &names[..]);

    std::fs::write(dir.path().join("batches.meta.txt"), "a\nb\n").unwrap();
    let err = cifar10::load_test(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::RecordCount {
                found: 2,
                expected: 10,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn missing_directory_is_reported_with_the_fetch_command() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let err = data::load(DatasetName::Cifar10, &missing, Split::EvalTest).unwrap_err();
    assert!(
        matches!(&err, Error::MissingDirectory { path, .. } if *path == missing),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("nowhere") && msg.contains("mclr data fetch cifar10"),
        "{msg}"
    );
}

#[test]
fn missing_batch_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 1, 1);
    std::fs::remove_file(dir.path().join("data_batch_4.bin")).unwrap();
    let err = cifar10::load_train(dir.path()).unwrap_err();
    assert!(
        matches!(&err, Error::MissingFile { path, .. } if path.ends_with("data_batch_4.bin")),
        "{err}"
    );
}

#[test]
fn file_that_is_not_a_whole_number_of_records_is_rejected_with_its_size() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 2, 2);
    let path = dir.path().join(cifar10::TEST_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.pop();
    std::fs::write(&path, &bytes).unwrap();
    let err = cifar10::load_test(dir.path()).unwrap_err();
    match &err {
        Error::FileSize {
            path: p,
            len,
            expected,
        } => {
            assert_eq!(p, &path);
            assert_eq!(*len, 2 * 3073 - 1);
            assert!(expected.contains("3073"), "{expected}");
        }
        other => panic!("expected FileSize, got {other}"),
    }

    std::fs::write(&path, b"").unwrap();
    assert!(matches!(
        cifar10::load_test(dir.path()).unwrap_err(),
        Error::FileSize { len: 0, .. }
    ));
}

#[test]
fn label_outside_0_to_9_is_rejected_with_the_record_index() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 1, 3);
    let path = dir.path().join(cifar10::TEST_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[2 * 3073] = 10;
    std::fs::write(&path, &bytes).unwrap();
    let err = cifar10::load_test(dir.path()).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidLabel { index: 2, value: 10, path: p, .. } if *p == path),
        "{err}"
    );
}

#[test]
fn unknown_dataset_and_split_names_list_the_valid_ones() {
    let err = "cifar100".parse::<DatasetName>().unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("cifar100"), "{msg}");
    for valid in ["cifar10", "stl10", "tiny-imagenet"] {
        assert!(msg.contains(valid), "{msg}");
    }
    for name in DatasetName::ALL {
        assert_eq!(name.as_str().parse::<DatasetName>().unwrap(), name);
    }
    let err = "train".parse::<Split>().unwrap_err();
    assert!(
        err.to_string().contains("ssl-train, eval-train, eval-test"),
        "{err}"
    );
    for split in Split::ALL {
        assert_eq!(split.as_str().parse::<Split>().unwrap(), split);
    }
}

#[test]
fn an_unreadable_file_names_the_os_error_once_in_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 1, 1);
    // A folder where the class-name file belongs: it exists, but reading it fails in the OS.
    let meta = dir.path().join(cifar10::META_FILE);
    std::fs::create_dir(&meta).unwrap();
    let os_error = std::fs::read_to_string(&meta).unwrap_err().to_string();

    let err = cifar10::load_test(dir.path()).unwrap_err();
    assert!(
        matches!(&err, Error::Io { path, .. } if *path == meta),
        "{err:?}"
    );
    // The message says what was being read; the OS error is its source, not part of its words.
    let message = err.to_string();
    assert!(message.contains(&meta.display().to_string()), "{message}");
    assert!(!message.contains(&os_error), "{message}");
    let chain = mclr_trainer::error_chain(&err);
    assert_eq!(chain.matches(&os_error).count(), 1, "{chain}");

    // As the `mclr` binary prints it: anyhow's one-line and multi-line chains.
    let err = anyhow::Error::from(err).context("while loading the test split");
    for printed in [format!("{err:#}"), format!("{err:?}")] {
        assert_eq!(printed.matches(&os_error).count(), 1, "{printed}");
        assert!(printed.contains(&message), "{printed}");
    }
}
