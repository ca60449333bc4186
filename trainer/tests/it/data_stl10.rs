//! STL-10 binary files: round trips through synthetic files in the official column-major format,
//! the splits, and the errors for inconsistent files.
// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::{px, random_bytes, write_stl_images};
use mclr_trainer::Error;
use mclr_trainer::data::{self, DatasetName, Split, stl10};

const IMG: usize = 96 * 96 * 3;

/// What [`write_dataset`] wrote: HWC pixels of each part and the on-disk labels.
struct Written {
    train: Vec<u8>,
    test: Vec<u8>,
    unlabeled: Vec<u8>,
    train_y: Vec<u8>,
    test_y: Vec<u8>,
}

/// Writes train (3 images), test (2) and unlabeled (4) parts.
fn write_dataset(dir: &std::path::Path) -> Written {
    let train = random_bytes(3 * IMG, 1);
    let test = random_bytes(2 * IMG, 2);
    let unlabeled = random_bytes(4 * IMG, 3);
    let train_y = vec![1_u8, 10, 5];
    let test_y = vec![2_u8, 3];
    write_stl_images(&dir.join("train_X.bin"), &train);
    write_stl_images(&dir.join("test_X.bin"), &test);
    write_stl_images(&dir.join("unlabeled_X.bin"), &unlabeled);
    std::fs::write(dir.join("train_y.bin"), &train_y).unwrap();
    std::fs::write(dir.join("test_y.bin"), &test_y).unwrap();
    Written {
        train,
        test,
        unlabeled,
        train_y,
        test_y,
    }
}

#[test]
fn column_major_images_round_trip_and_labels_shift_to_zero_based() {
    let dir = tempfile::tempdir().unwrap();
    let Written {
        train,
        test,
        train_y,
        test_y,
        ..
    } = write_dataset(dir.path());

    let set = data::load(DatasetName::Stl10, dir.path(), Split::EvalTrain).unwrap();
    assert_eq!(set.len(), 3);
    assert_eq!((set.height(), set.width()), (96, 96));
    assert_eq!(set.pixels(), &train[..]);
    let expected: Vec<u16> = train_y.iter().map(|&l| u16::from(l) - 1).collect();
    assert_eq!(set.labels().unwrap(), &expected[..]);
    assert_eq!(set.class_names()[0], "airplane");
    assert_eq!(set.class_names()[9], "truck");

    // The file is [c][x][y]: byte c·9216 + 96·x + y of image i is pixel (y, x), channel c.
    let raw = std::fs::read(dir.path().join("train_X.bin")).unwrap();
    for (i, y, x, c) in [(0, 0, 1, 0), (1, 1, 0, 0), (2, 95, 3, 2), (1, 40, 77, 1)] {
        let from_file = raw[i * IMG + c * 9216 + 96 * x + y];
        assert_eq!(set.image(i).unwrap()[(y * 96 + x) * 3 + c], from_file);
        assert_eq!(px(&train, 96, 96, i, y, x, c), from_file);
    }

    let set = data::load(DatasetName::Stl10, dir.path(), Split::EvalTest).unwrap();
    assert_eq!(set.pixels(), &test[..]);
    let expected: Vec<u16> = test_y.iter().map(|&l| u16::from(l) - 1).collect();
    assert_eq!(set.labels().unwrap(), &expected[..]);
}

#[test]
fn ssl_split_is_train_then_unlabeled_without_labels() {
    let dir = tempfile::tempdir().unwrap();
    let Written {
        train, unlabeled, ..
    } = write_dataset(dir.path());
    let set = data::load(DatasetName::Stl10, dir.path(), Split::SslTrain).unwrap();
    assert_eq!(set.len(), 7);
    assert_eq!(set.labels(), None);
    assert_eq!(&set.pixels()[..3 * IMG], &train[..]);
    assert_eq!(&set.pixels()[3 * IMG..], &unlabeled[..]);

    let part = stl10::load(dir.path(), stl10::Part::Unlabeled).unwrap();
    assert_eq!(part.len(), 4);
    assert_eq!(part.labels(), None);
}

#[test]
fn class_names_file_is_used_when_present() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path());
    let names: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
    std::fs::write(dir.path().join("class_names.txt"), names.join("\n")).unwrap();
    let set = stl10::load(dir.path(), stl10::Part::Test).unwrap();
    assert_eq!(set.class_names(), &names[..]);
}

#[test]
fn label_file_with_a_different_count_is_rejected_naming_both_files() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path());
    let y = dir.path().join("train_y.bin");
    std::fs::write(&y, [1_u8, 2]).unwrap();
    let err = stl10::load(dir.path(), stl10::Part::Train).unwrap_err();
    assert!(
        matches!(&err, Error::RecordCount { path, found: 2, expected: 3, .. } if *path == y),
        "{err}"
    );
    assert!(err.to_string().contains("train_X.bin"), "{err}");
}

#[test]
fn image_file_of_a_partial_image_is_rejected_with_its_size() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path());
    let x = dir.path().join("test_X.bin");
    std::fs::write(&x, vec![0_u8; IMG + 100]).unwrap();
    let err = stl10::load(dir.path(), stl10::Part::Test).unwrap_err();
    match &err {
        Error::FileSize {
            path,
            len,
            expected,
        } => {
            assert_eq!(path, &x);
            assert_eq!(*len, (IMG + 100) as u64);
            assert!(expected.contains("27648"), "{expected}");
        }
        other => panic!("expected FileSize, got {other}"),
    }
}

#[test]
fn label_zero_or_above_ten_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path());
    std::fs::write(dir.path().join("test_y.bin"), [3_u8, 0]).unwrap();
    let err = stl10::load(dir.path(), stl10::Part::Test).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidLabel {
                index: 1,
                value: 0,
                ..
            }
        ),
        "{err}"
    );
    std::fs::write(dir.path().join("test_y.bin"), [11_u8, 1]).unwrap();
    let err = stl10::load(dir.path(), stl10::Part::Test).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidLabel {
                index: 0,
                value: 11,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn missing_label_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path());
    std::fs::remove_file(dir.path().join("test_y.bin")).unwrap();
    let err = stl10::load(dir.path(), stl10::Part::Test).unwrap_err();
    assert!(
        matches!(&err, Error::MissingFile { path, .. } if path.ends_with("test_y.bin")),
        "{err}"
    );
}
