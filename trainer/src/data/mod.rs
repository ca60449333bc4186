//! Datasets: what they are (docs/method.md §8), how they are fetched, how they are read into memory and how
//! they are served in batches.
//!
//! Every dataset becomes one [`ImageSet`]: `N` images of one size, as `N×H×W×3` RGB bytes, with
//! optional labels and the class names. [`load`] picks the files that make up a [`Split`]; the
//! per-format readers live in [`cifar10`], [`stl10`] and [`tiny_imagenet`]; [`fetch`] downloads (or,
//! for CIFAR-10, rebuilds offline) the official files; [`loader`] turns an image set into shuffled
//! batches of augmented view pairs.
//!
//! The per-dataset constants (image size, SSL crop size, normalisation, eval geometry, official
//! URL) live in one table, [`DatasetName::spec`], so that the augmentations, the loaders and the
//! fetcher cannot disagree about them.

pub mod cifar10;
pub mod fetch;
pub mod loader;
pub mod stl10;
pub mod tiny_imagenet;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, Result};

/// The datasets this build knows, by their command-line names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DatasetName {
    /// CIFAR-10: 60,000 32×32 images in 10 classes (`cifar10`).
    Cifar10,
    /// STL-10: 13,000 labelled and 100,000 unlabelled 96×96 images (`stl10`).
    Stl10,
    /// Tiny ImageNet: 110,000 labelled 64×64 images in 200 classes (`tiny-imagenet`).
    TinyImageNet,
}

impl DatasetName {
    /// Every dataset, in the order the CLI lists them.
    pub const ALL: [Self; 3] = [Self::Cifar10, Self::Stl10, Self::TinyImageNet];

    /// The command-line names, in the order of [`Self::ALL`].
    pub const NAMES: [&'static str; 3] = ["cifar10", "stl10", "tiny-imagenet"];

    /// The command-line name (`cifar10`, `stl10`, `tiny-imagenet`).
    pub fn as_str(self) -> &'static str {
        self.spec().name
    }

    /// The dataset's constants: one row of docs/method.md §8's table.
    pub fn spec(self) -> &'static DatasetSpec {
        match self {
            Self::Cifar10 => &CIFAR10,
            Self::Stl10 => &STL10,
            Self::TinyImageNet => &TINY_IMAGENET,
        }
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DatasetName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| Error::UnknownDataset {
                name: s.to_owned(),
                valid: Self::NAMES.join(", "),
            })
    }
}

/// Which part of a dataset to load, named for its use (docs/method.md §8's "SSL split" and "eval split").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// The images self-supervised training sees (CIFAR-10 train; STL-10 train + unlabeled;
    /// Tiny ImageNet train). Labels are absent when part of the split is unlabelled.
    SslTrain,
    /// The labelled images the evaluation trains its probes on (the official train split).
    EvalTrain,
    /// The labelled images the evaluation reports on (CIFAR-10 and STL-10 test, Tiny ImageNet val).
    EvalTest,
}

impl Split {
    /// Every split, in the order of [`Self::NAMES`].
    pub const ALL: [Self; 3] = [Self::SslTrain, Self::EvalTrain, Self::EvalTest];

    /// The names accepted by [`FromStr`].
    pub const NAMES: [&'static str; 3] = ["ssl-train", "eval-train", "eval-test"];

    /// The split's name (`ssl-train`, `eval-train`, `eval-test`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SslTrain => "ssl-train",
            Self::EvalTrain => "eval-train",
            Self::EvalTest => "eval-test",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Split {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| Error::UnknownSplit {
                name: s.to_owned(),
                valid: Self::NAMES.join(", "),
            })
    }
}

/// Per-channel normalisation `(x − mean) / std`, applied to RGB values in `[0, 1]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalization {
    /// Channel means (R, G, B).
    pub mean: [f32; 3],
    /// Channel standard deviations (R, G, B); all positive.
    pub std: [f32; 3],
}

impl Normalization {
    /// No normalisation: mean 0, std 1 (the output is the `[0, 1]` image itself).
    pub const IDENTITY: Self = Self {
        mean: [0.0; 3],
        std: [1.0; 3],
    };

    /// Checks that every std is finite and positive and every mean finite.
    pub fn validate(&self) -> Result<()> {
        let ok = self.std.iter().all(|s| s.is_finite() && *s > 0.0)
            && self.mean.iter().all(|m| m.is_finite());
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidSetting {
                setting: "normalization",
                expected: "finite means and finite, positive standard deviations".into(),
                found: format!("mean {:?}, std {:?}", self.mean, self.std),
            })
        }
    }
}

/// The evaluation transform's geometry: an optional resize of the shorter side, then an optional
/// centre crop (docs/method.md §8: STL-10 resizes to 70 and crops 64; the others use the image as is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvalGeometry {
    /// Resize so that the shorter side has this many pixels (bicubic), keeping the aspect ratio.
    pub resize: Option<usize>,
    /// Then crop a centred square of this side.
    pub centre_crop: Option<usize>,
}

/// One row of docs/method.md §8's data table plus what the fetcher needs: the single source of truth for a
/// dataset's constants.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetSpec {
    /// Command-line name.
    pub name: &'static str,
    /// Human name, e.g. "CIFAR-10".
    pub title: &'static str,
    /// Native image side in pixels (all images are square).
    pub image_size: usize,
    /// Number of classes.
    pub num_classes: usize,
    /// Output side of the SSL crops.
    pub ssl_size: usize,
    /// Normalisation used by both the SSL and the eval transforms.
    pub normalization: Normalization,
    /// Geometry of the eval transform.
    pub eval: EvalGeometry,
    /// Official archive.
    pub url: &'static str,
    /// MD5 of the official archive, lowercase hex.
    pub archive_md5: &'static str,
    /// Size of the official archive in bytes: a download is stopped (and refused) past it.
    pub archive_bytes: u64,
    /// The top-level folder inside the official archive.
    pub archive_root: &'static str,
}

const CIFAR10: DatasetSpec = DatasetSpec {
    name: "cifar10",
    title: "CIFAR-10",
    image_size: 32,
    num_classes: 10,
    ssl_size: 32,
    normalization: Normalization {
        mean: [0.4914, 0.4822, 0.4465],
        std: [0.2023, 0.1994, 0.2010],
    },
    eval: EvalGeometry {
        resize: None,
        centre_crop: None,
    },
    url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    archive_md5: "c32a1d4ab5d03f1284b67883e8d87530",
    archive_bytes: 170_052_171,
    archive_root: "cifar-10-batches-bin",
};

const STL10: DatasetSpec = DatasetSpec {
    name: "stl10",
    title: "STL-10",
    image_size: 96,
    num_classes: 10,
    ssl_size: 64,
    normalization: Normalization {
        mean: [0.43, 0.42, 0.39],
        std: [0.27, 0.26, 0.27],
    },
    eval: EvalGeometry {
        resize: Some(70),
        centre_crop: Some(64),
    },
    url: "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",
    archive_md5: "91f7769df0f17e558f3565bffb0c7dfb",
    archive_bytes: 2_640_397_119,
    archive_root: "stl10_binary",
};

const TINY_IMAGENET: DatasetSpec = DatasetSpec {
    name: "tiny-imagenet",
    title: "Tiny ImageNet",
    image_size: 64,
    num_classes: 200,
    ssl_size: 64,
    normalization: Normalization {
        mean: [0.480, 0.448, 0.398],
        std: [0.277, 0.269, 0.282],
    },
    eval: EvalGeometry {
        resize: None,
        centre_crop: None,
    },
    url: "http://cs231n.stanford.edu/tiny-imagenet-200.zip",
    archive_md5: "90528d7ca1a48142e341f4ef8d21d0de",
    archive_bytes: 248_100_043,
    archive_root: "tiny-imagenet-200",
};

/// Images of one size in memory: `N×H×W×3` RGB bytes (HWC, row-major), optional labels, class
/// names. Constructed through [`ImageSet::new`], which checks that the buffers agree with the
/// shape, so code that holds an `ImageSet` can index it without further checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSet {
    height: usize,
    width: usize,
    pixels: Vec<u8>,
    labels: Option<Vec<u16>>,
    class_names: Vec<String>,
}

impl ImageSet {
    /// Builds an image set, checking that `pixels` holds a whole number of `height×width×3` images,
    /// that `labels` (if any) has one entry per image and that every label indexes `class_names`.
    pub fn new(
        height: usize,
        width: usize,
        pixels: Vec<u8>,
        labels: Option<Vec<u16>>,
        class_names: Vec<String>,
    ) -> Result<Self> {
        let image_len = height * width * 3;
        if image_len == 0 {
            return Err(Error::InvalidSetting {
                setting: "image size",
                expected: "height and width of at least 1 pixel".into(),
                found: format!("{height}x{width}"),
            });
        }
        if !pixels.len().is_multiple_of(image_len) {
            return Err(Error::Shape {
                what: "pixel bytes (a multiple of height×width×3)",
                expected: pixels.len().next_multiple_of(image_len),
                found: pixels.len(),
            });
        }
        let n = pixels.len() / image_len;
        if let Some(labels) = &labels {
            if labels.len() != n {
                return Err(Error::Shape {
                    what: "labels",
                    expected: n,
                    found: labels.len(),
                });
            }
            if let Some(bad) = labels
                .iter()
                .find(|&&l| usize::from(l) >= class_names.len())
            {
                return Err(Error::InvalidSetting {
                    setting: "labels",
                    expected: format!("labels below the number of classes ({})", class_names.len()),
                    found: bad.to_string(),
                });
            }
        }
        Ok(Self {
            height,
            width,
            pixels,
            labels,
            class_names,
        })
    }

    /// Concatenates image sets of the same size, in order. Labels are kept only if every part has
    /// them; class names are taken from the first part that has any.
    pub fn concat(parts: Vec<Self>) -> Result<Self> {
        let mut parts = parts.into_iter();
        let Some(mut out) = parts.next() else {
            return Err(Error::InvalidSetting {
                setting: "image sets to concatenate",
                expected: "at least one".into(),
                found: "none".into(),
            });
        };
        for part in parts {
            if (part.height, part.width) != (out.height, out.width) {
                return Err(Error::InvalidSetting {
                    setting: "image sets to concatenate",
                    expected: format!("images of {}x{} pixels", out.width, out.height),
                    found: format!("{}x{}", part.width, part.height),
                });
            }
            out.labels = match (out.labels.take(), part.labels) {
                (Some(mut a), Some(b)) => {
                    a.extend_from_slice(&b);
                    Some(a)
                }
                _ => None,
            };
            if out.class_names.is_empty() {
                out.class_names = part.class_names;
            }
            out.pixels.extend_from_slice(&part.pixels);
        }
        Ok(out)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.pixels.len() / self.image_len()
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.pixels.is_empty()
    }

    /// Image height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Image width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Bytes per image (`height × width × 3`).
    pub fn image_len(&self) -> usize {
        self.height * self.width * 3
    }

    /// All pixels, `N×H×W×3` RGB.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// Image `index` as `H×W×3` RGB bytes, or `None` past the end.
    pub fn image(&self, index: usize) -> Option<&[u8]> {
        let len = self.image_len();
        let start = index.checked_mul(len)?;
        self.pixels.get(start..start.checked_add(len)?)
    }

    /// Image `index` as a borrowed view with its shape, or `None` past the end.
    pub fn image_ref(&self, index: usize) -> Option<ImageRef<'_>> {
        self.image(index).map(|rgb| ImageRef {
            height: self.height,
            width: self.width,
            rgb,
        })
    }

    /// The labels (class indices into [`Self::class_names`]), or `None` for an unlabelled set.
    pub fn labels(&self) -> Option<&[u16]> {
        self.labels.as_deref()
    }

    /// Label of image `index`, if the set is labelled and the index is in range.
    pub fn label(&self, index: usize) -> Option<u16> {
        self.labels.as_ref().and_then(|l| l.get(index).copied())
    }

    /// Class names; label `k` means `class_names()[k]`.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// The first `n` images (all if there are fewer), with their labels: how evaluation and export
    /// take a reproducible slice of a split.
    ///
    /// # Errors
    /// Only if the slice fails [`ImageSet::new`]'s checks, which a prefix of a valid set passes.
    pub fn prefix(&self, n: usize) -> Result<Self> {
        let n = n.min(self.len());
        let bytes = self.image_len().saturating_mul(n);
        Self::new(
            self.height(),
            self.width(),
            self.pixels().get(..bytes).unwrap_or_default().to_vec(),
            self.labels().map(|l| l.iter().take(n).copied().collect()),
            self.class_names.clone(),
        )
    }

    /// How many images carry each label, or `None` for an unlabelled set.
    pub fn class_counts(&self) -> Option<Vec<usize>> {
        let labels = self.labels.as_ref()?;
        let mut counts = vec![0; self.class_names.len()];
        for &l in labels {
            if let Some(c) = counts.get_mut(usize::from(l)) {
                *c += 1;
            }
        }
        Some(counts)
    }
}

/// A borrowed RGB image: `height×width×3` bytes, HWC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageRef<'a> {
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
    /// `height × width × 3` bytes, row-major, R, G, B interleaved.
    pub rgb: &'a [u8],
}

/// Loads one split of a dataset from `dir` (the folder `mclr data fetch NAME --dir DIR` wrote; the
/// official archive's top-level folder inside it is accepted too).
///
/// | dataset | ssl-train | eval-train | eval-test |
/// |---|---|---|---|
/// | cifar10 | train (50k) | train | test (10k) |
/// | stl10 | train + unlabeled (105k, no labels) | train (5k) | test (8k) |
/// | tiny-imagenet | train (100k) | train | val (10k) |
pub fn load(name: DatasetName, dir: &Path, split: Split) -> Result<ImageSet> {
    match (name, split) {
        (DatasetName::Cifar10, Split::SslTrain | Split::EvalTrain) => cifar10::load_train(dir),
        (DatasetName::Cifar10, Split::EvalTest) => cifar10::load_test(dir),
        (DatasetName::Stl10, Split::SslTrain) => ImageSet::concat(vec![
            stl10::load(dir, stl10::Part::Train)?,
            stl10::load(dir, stl10::Part::Unlabeled)?,
        ]),
        (DatasetName::Stl10, Split::EvalTrain) => stl10::load(dir, stl10::Part::Train),
        (DatasetName::Stl10, Split::EvalTest) => stl10::load(dir, stl10::Part::Test),
        (DatasetName::TinyImageNet, Split::SslTrain | Split::EvalTrain) => {
            tiny_imagenet::load_train(dir)
        }
        (DatasetName::TinyImageNet, Split::EvalTest) => tiny_imagenet::load_val(dir),
    }
}

/// Finds the folder holding a dataset's files: `dir` itself, or the archive's top-level folder
/// inside it (for people who extracted the official archive by hand). `marker` is a file name that
/// must exist there.
pub(crate) fn resolve_root(name: DatasetName, dir: &Path, marker: &str) -> Result<PathBuf> {
    if !dir.is_dir() {
        return Err(Error::MissingDirectory {
            path: dir.to_path_buf(),
            hint: format!("mclr data fetch {name} --dir {}", dir.display()),
        });
    }
    let nested = dir.join(name.spec().archive_root);
    if !dir.join(marker).exists() && nested.join(marker).exists() {
        Ok(nested)
    } else {
        Ok(dir.to_path_buf())
    }
}

/// Reads a file's size, mapping "not found" to [`Error::MissingFile`] with `expected` as the hint.
pub(crate) fn file_len(path: &Path, expected: &str) -> Result<u64> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::MissingFile {
            path: path.to_path_buf(),
            expected: expected.to_owned(),
        }),
        Err(e) => Err(Error::io("reading", path, e)),
    }
}

/// Reads a class-name list (one name per line, blank lines ignored) if the file exists, checking
/// the count; otherwise returns `fallback`.
pub(crate) fn read_class_names(
    path: &Path,
    fallback: &[&str],
    expected: usize,
) -> Result<Vec<String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(fallback.iter().map(|s| (*s).to_owned()).collect());
        }
        Err(e) => return Err(Error::io("reading", path, e)),
    };
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if names.len() != expected {
        return Err(Error::RecordCount {
            path: path.to_path_buf(),
            what: "class names",
            found: names.len(),
            expected,
            reason: "one per class".into(),
        });
    }
    Ok(names)
}
