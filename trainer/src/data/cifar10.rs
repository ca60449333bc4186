//! CIFAR-10 in the official binary format.
//!
//! `data_batch_1.bin` … `data_batch_5.bin` (train) and `test_batch.bin` (test) each hold 10,000
//! records of 3073 bytes: one label byte (0..=9), then the 32×32 red plane, the green plane and the
//! blue plane, each row-major. `batches.meta.txt` lists the class names, one per line.

use std::path::Path;

use super::{DatasetName, ImageSet, file_len, read_class_names, resolve_root};
use crate::error::{Error, Result};

/// Image side in pixels.
pub const SIDE: usize = 32;
/// Bytes per record: one label byte and three 32×32 planes.
pub const RECORD_LEN: usize = 1 + 3 * SIDE * SIDE;
/// Records per official batch file.
pub const RECORDS_PER_FILE: usize = 10_000;
/// The training files, in order.
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// The test file.
pub const TEST_FILE: &str = "test_batch.bin";
/// The class-name file.
pub const META_FILE: &str = "batches.meta.txt";
/// The class names, in label order.
pub const CLASS_NAMES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];
/// The MD5 of each official batch file in `cifar-10-binary.tar.gz`.
///
/// The Toronto page publishes only the archive's MD5. These are the MD5s of the files whose
/// SHA-256 sums ([`FILE_SHA256`]) other projects publish (e.g. torchvision for Ruby), computed
/// from files with exactly those SHA-256 sums. (The MD5s torchvision lists for CIFAR-10,
/// `c99cafc1…` etc., are those of the *Python* pickles, `cifar-10-batches-py/data_batch_1`, which
/// no binary file can match.)
pub const FILE_MD5: [(&str, &str); 6] = [
    ("data_batch_1.bin", "5dd7e06a14cb22eb9f671a540d1b7c25"),
    ("data_batch_2.bin", "5ea93a67294ea407fff1d09f752e9692"),
    ("data_batch_3.bin", "942cd6a4bcdd0dd3c604fbe906cb4421"),
    ("data_batch_4.bin", "ae636b3ba5c66a11e91e8cb52e771fcb"),
    ("data_batch_5.bin", "53f37980c15c3d472c316c40844f3f0d"),
    ("test_batch.bin", "803d5f7f4d78ea53de84dbe85f74fb6d"),
];
/// The published SHA-256 of each official batch file (torchvision for Ruby's `CIFAR10`, and, for
/// `test_batch.bin`, other projects independently).
pub const FILE_SHA256: [(&str, &str); 6] = [
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

/// Loads the 50,000 training images (the five `data_batch_*.bin` files, in order).
pub fn load_train(dir: &Path) -> Result<ImageSet> {
    load_files(dir, &TRAIN_FILES)
}

/// Loads the 10,000 test images (`test_batch.bin`).
pub fn load_test(dir: &Path) -> Result<ImageSet> {
    load_files(dir, &[TEST_FILE])
}

/// Loads and concatenates the given batch files from `dir`. Any whole number of records per file is
/// accepted, so that small files in the official format load too.
pub fn load_files(dir: &Path, files: &[&str]) -> Result<ImageSet> {
    let root = resolve_root(
        DatasetName::Cifar10,
        dir,
        files.first().copied().unwrap_or(""),
    )?;
    let class_names = read_class_names(&root.join(META_FILE), &CLASS_NAMES, CLASS_NAMES.len())?;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for name in files {
        let path = root.join(name);
        let len = file_len(
            &path,
            "a CIFAR-10 batch file (run `mclr data fetch cifar10`)",
        )?;
        if len == 0 || !len.is_multiple_of(RECORD_LEN as u64) {
            return Err(Error::FileSize {
                path,
                len,
                expected: format!(
                    "a non-zero multiple of {RECORD_LEN} bytes (one CIFAR-10 record), \
                     {} bytes for an official batch",
                    RECORD_LEN * RECORDS_PER_FILE
                ),
            });
        }
        let bytes = std::fs::read(&path).map_err(|e| Error::io("reading", &path, e))?;
        decode_records(&path, &bytes, &mut pixels, &mut labels)?;
    }
    ImageSet::new(SIDE, SIDE, pixels, Some(labels), class_names)
}

/// Appends the records in `bytes` (a whole number of them) to `pixels` (HWC) and `labels`.
fn decode_records(
    path: &Path,
    bytes: &[u8],
    pixels: &mut Vec<u8>,
    labels: &mut Vec<u16>,
) -> Result<()> {
    let plane = SIDE * SIDE;
    pixels.reserve(bytes.len() / RECORD_LEN * plane * 3);
    for (index, record) in bytes.chunks_exact(RECORD_LEN).enumerate() {
        let (&label, planes) = record.split_first().unwrap_or((&u8::MAX, &[]));
        if usize::from(label) >= CLASS_NAMES.len() {
            return Err(Error::InvalidLabel {
                path: path.to_path_buf(),
                index,
                value: u64::from(label),
                expected: format!("0..={}", CLASS_NAMES.len() - 1),
            });
        }
        labels.push(u16::from(label));
        let (r, gb) = planes.split_at(plane);
        let (g, b) = gb.split_at(plane);
        pixels.extend(r.iter().zip(g).zip(b).flat_map(|((&r, &g), &b)| [r, g, b]));
    }
    Ok(())
}

/// Encodes images (HWC RGB, 32×32) and labels as official CIFAR-10 records. This is the inverse of
/// loading; the offline fetch and the tests use it to write files in the exact format.
pub fn encode_records(rgb: &[u8], labels: &[u8]) -> Vec<u8> {
    let plane = SIDE * SIDE;
    let mut out = Vec::with_capacity(labels.len() * RECORD_LEN);
    for (image, &label) in rgb.chunks_exact(plane * 3).zip(labels) {
        out.push(label);
        for c in 0..3 {
            out.extend(image.iter().skip(c).step_by(3));
        }
    }
    out
}
