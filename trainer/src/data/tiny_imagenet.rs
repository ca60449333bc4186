//! Tiny ImageNet (`tiny-imagenet-200`) in the official folder layout.
//!
//! * `wnids.txt`: the 200 WordNet ids, one per line;
//! * `words.txt`: `wnid \t description` for (a superset of) those ids;
//! * `train/<wnid>/images/*.JPEG`: 500 training images per class;
//! * `val/images/*.JPEG` with `val/val_annotations.txt`: `file \t wnid \t x0 \t y0 \t x1 \t y1`.
//!
//! Classes are numbered by sorted wnid, as torchvision's `ImageFolder` numbers the class folders
//! (the reference trains with `ImageFolder`, so its label indices are these). Within a class, images
//! are in file-name order; the validation set is ordered by (class, file name), as `ImageFolder`
//! would order it after sorting val into class folders. Images are decoded in parallel; all must
//! have the size of the first one (64×64 in the official data); greyscale JPEGs become RGB.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{DatasetName, ImageSet, resolve_root};
use crate::error::{Error, Result};

/// The class-id file.
pub const WNIDS_FILE: &str = "wnids.txt";
/// The class-description file.
pub const WORDS_FILE: &str = "words.txt";
/// The validation annotation file, relative to the dataset root.
pub const VAL_ANNOTATIONS: &str = "val/val_annotations.txt";

/// The class list: wnids in label order and their descriptions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classes {
    /// WordNet ids, sorted; label `k` is `wnids[k]`.
    pub wnids: Vec<String>,
    /// Description of each class from `words.txt` (the wnid itself when it has none).
    pub names: Vec<String>,
}

impl Classes {
    /// Reads `wnids.txt` and (if present) `words.txt` from the dataset root.
    pub fn read(root: &Path) -> Result<Self> {
        let path = root.join(WNIDS_FILE);
        let text = read_text(&path, "the class ids, one WordNet id per line")?;
        let mut wnids: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        if wnids.is_empty() {
            return Err(Error::Parse {
                path,
                line: 0,
                reason: "no class ids".into(),
            });
        }
        wnids.sort();
        if let Some(dup) = wnids.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::Parse {
                path,
                line: 0,
                reason: format!("class id {} is listed twice", dup[0]),
            });
        }
        if u16::try_from(wnids.len()).is_err() {
            return Err(Error::Parse {
                path,
                line: 0,
                reason: format!("{} classes, at most {} supported", wnids.len(), u16::MAX),
            });
        }

        let words_path = root.join(WORDS_FILE);
        let mut words: HashMap<&str, &str> = HashMap::new();
        let words_text = match std::fs::read_to_string(&words_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io("reading", &words_path, e)),
        };
        for line in words_text.lines() {
            if let Some((id, desc)) = line.split_once('\t') {
                words.insert(id.trim(), desc.trim());
            }
        }
        let names = wnids
            .iter()
            .map(|w| {
                words
                    .get(w.as_str())
                    .map_or_else(|| w.clone(), |d| (*d).to_owned())
            })
            .collect();
        Ok(Self { wnids, names })
    }

    /// The label of a wnid.
    pub fn label(&self, wnid: &str) -> Option<u16> {
        self.wnids
            .binary_search_by(|w| w.as_str().cmp(wnid))
            .ok()
            .and_then(|i| u16::try_from(i).ok())
    }
}

/// Loads the training images (`train/<wnid>/images/*`), labelled by class.
pub fn load_train(dir: &Path) -> Result<ImageSet> {
    let root = resolve_root(DatasetName::TinyImageNet, dir, WNIDS_FILE)?;
    let classes = Classes::read(&root)?;
    let mut items = Vec::new();
    for (label, wnid) in (0_u16..).zip(&classes.wnids) {
        let folder = root.join("train").join(wnid).join("images");
        let mut files = list_images(&folder, wnid)?;
        files.sort();
        items.extend(files.into_iter().map(|f| (f, label)));
    }
    decode_all(items, classes.names)
}

/// Loads the validation images (`val/images/*`), labelled through `val/val_annotations.txt`.
pub fn load_val(dir: &Path) -> Result<ImageSet> {
    let root = resolve_root(DatasetName::TinyImageNet, dir, WNIDS_FILE)?;
    let classes = Classes::read(&root)?;
    let ann_path = root.join(VAL_ANNOTATIONS);
    let text = read_text(
        &ann_path,
        "one line `file \\t wnid \\t x0 \\t y0 \\t x1 \\t y1` per validation image",
    )?;
    let images = root.join("val").join("images");
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split('\t');
        let (Some(file), Some(wnid)) = (fields.next(), fields.next()) else {
            return Err(Error::Parse {
                path: ann_path,
                line: i + 1,
                reason: "expected `file \\t wnid \\t x0 \\t y0 \\t x1 \\t y1`".into(),
            });
        };
        let Some(label) = classes.label(wnid.trim()) else {
            return Err(Error::Parse {
                path: ann_path,
                line: i + 1,
                reason: format!("class id `{}` is not in {WNIDS_FILE}", wnid.trim()),
            });
        };
        items.push((images.join(file.trim()), label));
    }
    items.sort_by(|(fa, la), (fb, lb)| la.cmp(lb).then_with(|| fa.cmp(fb)));
    decode_all(items, classes.names)
}

/// Lists the image files (`.jpeg`, `.jpg`, `.png`, any case) in a class folder.
fn list_images(folder: &Path, wnid: &str) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(folder).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::MissingFile {
                path: folder.to_path_buf(),
                expected: format!("the training images of class {wnid}"),
            }
        } else {
            Error::io("listing", folder, e)
        }
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io("listing", folder, e))?.path();
        let is_image = path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
            ["jpeg", "jpg", "png"]
                .iter()
                .any(|x| e.eq_ignore_ascii_case(x))
        });
        if is_image {
            files.push(path);
        }
    }
    Ok(files)
}

/// Decodes every image (in parallel) into one image set; all must have the first one's size.
fn decode_all(items: Vec<(PathBuf, u16)>, class_names: Vec<String>) -> Result<ImageSet> {
    let Some((first_path, _)) = items.first() else {
        return ImageSet::new(1, 1, Vec::new(), Some(Vec::new()), class_names);
    };
    let first = decode(first_path)?;
    let (width, height) = (first.width() as usize, first.height() as usize);
    let image_len = width * height * 3;
    let mut pixels = vec![0_u8; items.len() * image_len];
    pixels
        .par_chunks_mut(image_len)
        .zip(items.par_iter())
        .try_for_each(|(dst, (path, _))| {
            let img = decode(path)?;
            let (w, h) = (img.width() as usize, img.height() as usize);
            if (w, h) != (width, height) {
                return Err(Error::ImageSize {
                    path: path.clone(),
                    expected_width: width,
                    expected_height: height,
                    found_width: w,
                    found_height: h,
                });
            }
            dst.copy_from_slice(img.as_raw());
            Ok(())
        })?;
    let labels = items.into_iter().map(|(_, l)| l).collect();
    ImageSet::new(height, width, pixels, Some(labels), class_names)
}

/// Decodes one image file to RGB8, whatever its colour type.
fn decode(path: &Path) -> Result<image::RgbImage> {
    let reader = image::ImageReader::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::MissingFile {
                path: path.to_path_buf(),
                expected: "an image listed by the dataset".into(),
            }
        } else {
            Error::io("opening", path, e)
        }
    })?;
    let reader = reader
        .with_guessed_format()
        .map_err(|e| Error::io("reading", path, e))?;
    let img = reader.decode().map_err(|source| Error::Image {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(img.into_rgb8())
}

/// Reads a UTF-8 text file, mapping "not found" to [`Error::MissingFile`].
fn read_text(path: &Path, expected: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::MissingFile {
                path: path.to_path_buf(),
                expected: expected.to_owned(),
            }
        } else {
            Error::io("reading", path, e)
        }
    })
}
