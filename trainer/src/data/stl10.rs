//! STL-10 in the official binary format.
//!
//! `*_X.bin` hold 96×96 RGB images of 27,648 bytes each, stored the way Matlab wrote them: channel
//! by channel, and within a channel column by column (element order `[channel][x][y]`).
//! `*_y.bin` hold one label byte per image, 1..=10 (mapped to 0..=9 here). `unlabeled_X.bin` has no
//! label file. `class_names.txt` lists the class names, one per line.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use super::{DatasetName, ImageSet, file_len, read_class_names, resolve_root};
use crate::error::{Error, Result};

/// Image side in pixels.
pub const SIDE: usize = 96;
/// Bytes per image.
pub const IMAGE_LEN: usize = SIDE * SIDE * 3;
/// The class-name file.
pub const CLASS_NAMES_FILE: &str = "class_names.txt";
/// The class names, in label order (label 1 in the files is `airplane`).
pub const CLASS_NAMES: [&str; 10] = [
    "airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck",
];
/// The official MD5 of each file in the archive's `stl10_binary/` folder.
pub const FILE_MD5: [(&str, &str); 5] = [
    ("train_X.bin", "918c2871b30a85fa023e0c44e0bee87f"),
    ("train_y.bin", "5a34089d4802c674881badbb80307741"),
    ("test_X.bin", "7f263ba9f9e0b06b93213547f721ac82"),
    ("test_y.bin", "36f9794fa4beb8a2c72628de14fa638e"),
    ("unlabeled_X.bin", "5242ba1fed5e4be9e1e742405eb56ca4"),
];

/// One of the three official parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    /// 5,000 labelled training images (`train_X.bin`, `train_y.bin`).
    Train,
    /// 8,000 labelled test images (`test_X.bin`, `test_y.bin`).
    Test,
    /// 100,000 unlabelled images (`unlabeled_X.bin`).
    Unlabeled,
}

impl Part {
    /// The image file and, for labelled parts, the label file.
    pub fn files(self) -> (&'static str, Option<&'static str>) {
        match self {
            Self::Train => ("train_X.bin", Some("train_y.bin")),
            Self::Test => ("test_X.bin", Some("test_y.bin")),
            Self::Unlabeled => ("unlabeled_X.bin", None),
        }
    }
}

/// Loads one part from `dir`. Any whole number of images is accepted, so small files in the
/// official format load too.
pub fn load(dir: &Path, part: Part) -> Result<ImageSet> {
    let (x_name, y_name) = part.files();
    let root = resolve_root(DatasetName::Stl10, dir, x_name)?;
    let class_names = read_class_names(
        &root.join(CLASS_NAMES_FILE),
        &CLASS_NAMES,
        CLASS_NAMES.len(),
    )?;

    let x_path = root.join(x_name);
    let len = file_len(
        &x_path,
        "an STL-10 image file (run `mclr data fetch stl10`)",
    )?;
    if len == 0 || !len.is_multiple_of(IMAGE_LEN as u64) {
        return Err(Error::FileSize {
            path: x_path,
            len,
            expected: format!("a non-zero multiple of {IMAGE_LEN} bytes (one 96×96×3 image)"),
        });
    }
    let n = usize::try_from(len / IMAGE_LEN as u64).map_err(|_| Error::FileSize {
        path: x_path.clone(),
        len,
        expected: "a size that fits in memory".into(),
    })?;

    let labels = match y_name {
        Some(y_name) => Some(read_labels(&root.join(y_name), n, x_name)?),
        None => None,
    };
    let pixels = read_images(&x_path, n)?;
    ImageSet::new(SIDE, SIDE, pixels, labels, class_names)
}

/// Reads `n` labels (1..=10 on disk) as 0..=9.
fn read_labels(path: &Path, n: usize, x_name: &str) -> Result<Vec<u16>> {
    let bytes = std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::MissingFile {
                path: path.to_path_buf(),
                expected: format!("one label byte per image in {x_name}"),
            }
        } else {
            Error::io("reading", path, e)
        }
    })?;
    if bytes.len() != n {
        return Err(Error::RecordCount {
            path: path.to_path_buf(),
            what: "labels",
            found: bytes.len(),
            expected: n,
            reason: format!("one per image in {x_name}"),
        });
    }
    bytes
        .iter()
        .enumerate()
        .map(|(index, &b)| {
            if (1..=10).contains(&b) {
                Ok(u16::from(b - 1))
            } else {
                Err(Error::InvalidLabel {
                    path: path.to_path_buf(),
                    index,
                    value: u64::from(b),
                    expected: "1..=10".into(),
                })
            }
        })
        .collect()
}

/// Streams `n` images from `path`, transposing each from `[c][x][y]` to HWC.
fn read_images(path: &Path, n: usize) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut pixels = vec![0_u8; n * IMAGE_LEN];
    let mut record = vec![0_u8; IMAGE_LEN];
    for dst in pixels.chunks_exact_mut(IMAGE_LEN) {
        reader
            .read_exact(&mut record)
            .map_err(|e| Error::io("reading", path, e))?;
        column_major_to_hwc(&record, dst);
    }
    Ok(pixels)
}

/// Transposes one image from the file order `[c][x][y]` to `[y][x][c]`.
fn column_major_to_hwc(src: &[u8], dst: &mut [u8]) {
    let plane = SIDE * SIDE;
    for (c, channel) in src.chunks_exact(plane).enumerate() {
        for (x, column) in channel.chunks_exact(SIDE).enumerate() {
            for (y, &v) in column.iter().enumerate() {
                if let Some(d) = dst.get_mut((y * SIDE + x) * 3 + c) {
                    *d = v;
                }
            }
        }
    }
}

/// Encodes HWC RGB 96×96 images in the file order `[c][x][y]`: the inverse of loading, used by
/// the tests to write files in the exact format.
pub fn encode_images(rgb: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rgb.len());
    for image in rgb.chunks_exact(IMAGE_LEN) {
        for c in 0..3 {
            for x in 0..SIDE {
                for y in 0..SIDE {
                    out.push(image.get((y * SIDE + x) * 3 + c).copied().unwrap_or(0));
                }
            }
        }
    }
    out
}
