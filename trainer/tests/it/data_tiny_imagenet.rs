//! Tiny ImageNet folders: round trips through a small synthetic dataset in the official layout
//! (two classes, JPEGs encoded by the `image` crate), and the errors for bad inputs.
// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use crate::support::write_jpeg;
use mclr_trainer::Error;
use mclr_trainer::data::{self, DatasetName, Split, tiny_imagenet};

const SIDE: u32 = 8;

/// A solid-colour image whose colour encodes `(class, k)`.
fn colour(class: usize, k: usize) -> [u8; 3] {
    [
        40 + 150 * class as u8,
        30 + 40 * k as u8,
        200 - 50 * k as u8,
    ]
}

fn solid(rgb: [u8; 3]) -> Vec<u8> {
    rgb.iter()
        .copied()
        .cycle()
        .take((SIDE * SIDE * 3) as usize)
        .collect()
}

/// wnids listed out of order (n02 first) so that the sorting is observable.
const WNIDS: [&str; 2] = ["n02000002", "n01000001"];

fn write_dataset(root: &Path) {
    std::fs::write(root.join("wnids.txt"), WNIDS.join("\n") + "\n").unwrap();
    std::fs::write(
        root.join("words.txt"),
        "n00000000\tentity\nn01000001\tgoldfish, Carassius auratus\nn02000002\ttabby, tabby cat\n",
    )
    .unwrap();
    // Sorted classes: n01000001 → label 0, n02000002 → label 1.
    for (class, wnid) in ["n01000001", "n02000002"].iter().enumerate() {
        for k in 0..3 {
            let path = root
                .join("train")
                .join(wnid)
                .join("images")
                .join(format!("{wnid}_{k}.JPEG"));
            write_jpeg(&path, SIDE, SIDE, &solid(colour(class, k)));
        }
        std::fs::write(
            root.join("train")
                .join(wnid)
                .join(format!("{wnid}_boxes.txt")),
            "ignored\n",
        )
        .unwrap();
    }
    // Validation: val_0 is class 1, val_1 class 0, val_2 class 1.
    let val = [(1, 0), (0, 1), (1, 2)];
    let mut ann = String::new();
    for (i, &(class, k)) in val.iter().enumerate() {
        let name = format!("val_{i}.JPEG");
        write_jpeg(
            &root.join("val").join("images").join(&name),
            SIDE,
            SIDE,
            &solid(colour(class, k)),
        );
        ann += &format!(
            "{name}\t{}\t0\t0\t7\t7\n",
            ["n01000001", "n02000002"][class]
        );
    }
    std::fs::write(root.join("val").join("val_annotations.txt"), ann).unwrap();
}

/// The image as the `image` crate decodes it: the oracle for the loader's pixels.
fn decoded(path: &Path) -> Vec<u8> {
    image::open(path).unwrap().to_rgb8().into_raw()
}

fn assert_close_to(image: &[u8], rgb: [u8; 3]) {
    for px in image.chunks_exact(3) {
        for c in 0..3 {
            assert!(
                px[c].abs_diff(rgb[c]) <= 4,
                "pixel {px:?} is not close to {rgb:?}"
            );
        }
    }
}

#[test]
fn train_folders_load_with_classes_in_sorted_wnid_order() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path());
    let set = data::load(DatasetName::TinyImageNet, dir.path(), Split::SslTrain).unwrap();
    assert_eq!(set.len(), 6);
    assert_eq!((set.height(), set.width()), (8, 8));
    assert_eq!(set.labels().unwrap(), &[0, 0, 0, 1, 1, 1]);
    assert_eq!(
        set.class_names(),
        &["goldfish, Carassius auratus", "tabby, tabby cat"]
    );
    for (i, (class, wnid)) in [(0, "n01000001"), (1, "n02000002")]
        .iter()
        .flat_map(|&(c, w)| (0..3).map(move |k| ((c, k), w)))
        .enumerate()
    {
        let (class, k) = class;
        let path = dir
            .path()
            .join("train")
            .join(wnid)
            .join("images")
            .join(format!("{wnid}_{k}.JPEG"));
        assert_eq!(set.image(i).unwrap(), &decoded(&path)[..], "image {i}");
        assert_close_to(set.image(i).unwrap(), colour(class, k));
    }
    let eval_train = data::load(DatasetName::TinyImageNet, dir.path(), Split::EvalTrain).unwrap();
    assert_eq!(eval_train, set);
}

#[test]
fn val_images_take_labels_from_annotations_ordered_by_class_then_file() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path());
    let set = data::load(DatasetName::TinyImageNet, dir.path(), Split::EvalTest).unwrap();
    assert_eq!(set.len(), 3);
    // Class 0: val_1; class 1: val_0, val_2.
    assert_eq!(set.labels().unwrap(), &[0, 1, 1]);
    for (i, name) in ["val_1.JPEG", "val_0.JPEG", "val_2.JPEG"]
        .iter()
        .enumerate()
    {
        let path = dir.path().join("val").join("images").join(name);
        assert_eq!(set.image(i).unwrap(), &decoded(&path)[..], "{name}");
    }
    assert_close_to(set.image(0).unwrap(), colour(0, 1));
}

#[test]
fn greyscale_jpeg_becomes_rgb_with_equal_channels() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path());
    let path = dir.path().join("train/n01000001/images/n01000001_1.JPEG");
    let grey = image::GrayImage::from_pixel(SIDE, SIDE, image::Luma([90]));
    grey.save_with_format(&path, image::ImageFormat::Jpeg)
        .unwrap();
    let set = tiny_imagenet::load_train(dir.path()).unwrap();
    for px in set.image(1).unwrap().chunks_exact(3) {
        assert_eq!(px[0], px[1]);
        assert_eq!(px[1], px[2]);
        assert!(px[0].abs_diff(90) <= 2, "{px:?}");
    }
}

#[test]
fn unreadable_image_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path());
    let path = dir.path().join("train/n02000002/images/n02000002_2.JPEG");
    std::fs::write(&path, b"\xff\xd8\xff\xe0 this is not a jpeg").unwrap();
    let err = tiny_imagenet::load_train(dir.path()).unwrap_err();
    assert!(
        matches!(&err, Error::Image { path: p, .. } if *p == path),
        "{err}"
    );
    assert!(err.to_string().contains("n02000002_2.JPEG"), "{err}");
}

#[test]
fn image_of_another_size_is_rejected_with_both_sizes() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path());
    let path = dir.path().join("train/n02000002/images/n02000002_0.JPEG");
    write_jpeg(&path, 8, 6, &[128; 8 * 6 * 3]);
    let err = tiny_imagenet::load_train(dir.path()).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::ImageSize { path: p, expected_width: 8, expected_height: 8, found_width: 8, found_height: 6 }
                if *p == path
        ),
        "{err}"
    );
}

#[test]
fn annotation_with_an_unknown_class_is_rejected_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path());
    let ann = dir.path().join("val/val_annotations.txt");
    let mut text = std::fs::read_to_string(&ann).unwrap();
    text += "val_9.JPEG\tn09999999\t0\t0\t1\t1\n";
    std::fs::write(&ann, text).unwrap();
    let err = tiny_imagenet::load_val(dir.path()).unwrap_err();
    assert!(
        matches!(&err, Error::Parse { path, line: 4, reason } if *path == ann && reason.contains("n09999999")),
        "{err}"
    );
}

#[test]
fn missing_class_folder_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path());
    std::fs::remove_dir_all(dir.path().join("train/n01000001")).unwrap();
    let err = tiny_imagenet::load_train(dir.path()).unwrap_err();
    assert!(
        matches!(&err, Error::MissingFile { path, .. } if path.ends_with("n01000001/images")),
        "{err}"
    );
}

#[test]
fn missing_wnids_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = tiny_imagenet::load_train(dir.path()).unwrap_err();
    assert!(
        matches!(&err, Error::MissingFile { path, .. } if path.ends_with("wnids.txt")),
        "{err}"
    );
}
