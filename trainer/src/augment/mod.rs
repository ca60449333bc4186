//! Image augmentations: the SSL recipe of docs/method.md §8 and the evaluation transform.
//!
//! The SSL recipe, applied independently to each of the two views, in this order:
//! 1. colour jitter (brightness 0.4, contrast 0.4, saturation 0.4, hue 0.1, in a random order)
//!    with p = 0.8 ([`color`]);
//! 2. greyscale with p = 0.1;
//! 3. random resized crop (scale 0.2–1, ratio 3/4–4/3) to the dataset's SSL size, bicubic
//!    ([`crop`]);
//! 4. horizontal flip with p = 0.5;
//! 5. normalisation with the dataset's mean and std.
//!
//! Every random choice of a view comes from [`rng::StreamRng::for_view`]`(seed, epoch, index,
//! view)`, so a view is a pure function of those four numbers and the image. Images are
//! converted to `f32` planes once; the crop, resize, flip and normalisation happen in one
//! resampling pass that writes straight into the batch's NCHW buffer.

pub mod color;
pub mod crop;
pub mod planes;
pub mod rng;

use crate::data::{DatasetName, EvalGeometry, ImageRef, Normalization};
use crate::error::{Error, Result};
use color::{ColorJitter, check_probability};
use crop::{AxisWeights, CropBox, RandomResizedCrop, Resample, resample_into};
use planes::Planes;
use rng::StreamRng;

/// Settings of the SSL augmentation recipe.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SslConfig {
    /// Colour jitter and its probability.
    pub jitter: ColorJitter,
    /// Probability of converting to greyscale.
    pub grayscale_p: f32,
    /// Random resized crop (its `size` is the output side).
    pub crop: RandomResizedCrop,
    /// Probability of a horizontal flip.
    pub flip_p: f32,
    /// Normalisation of the output.
    pub normalization: Normalization,
}

impl SslConfig {
    /// The recipe of docs/method.md §8 for a dataset (crop size and normalisation from its spec).
    pub fn for_dataset(name: DatasetName) -> Self {
        let spec = name.spec();
        Self {
            jitter: ColorJitter::SIMCLR,
            grayscale_p: 0.1,
            crop: RandomResizedCrop::simclr(spec.ssl_size),
            flip_p: 0.5,
            normalization: spec.normalization,
        }
    }
}

/// The SSL augmentation: a validated [`SslConfig`].
#[derive(Clone, Debug, PartialEq)]
pub struct SslAugment {
    config: SslConfig,
    affine: [(f32, f32); 3],
}

impl SslAugment {
    /// Validates a configuration.
    pub fn new(config: SslConfig) -> Result<Self> {
        config.jitter.validate()?;
        check_probability("grayscale_p", config.grayscale_p)?;
        config.crop.validate()?;
        check_probability("flip_p", config.flip_p)?;
        config.normalization.validate()?;
        Ok(Self {
            affine: affine(&config.normalization),
            config,
        })
    }

    /// The recipe of docs/method.md §8 for a dataset.
    pub fn for_dataset(name: DatasetName) -> Self {
        let config = SslConfig::for_dataset(name);
        Self {
            affine: affine(&config.normalization),
            config,
        }
    }

    /// The settings.
    pub fn config(&self) -> &SslConfig {
        &self.config
    }

    /// Output side in pixels.
    pub fn size(&self) -> usize {
        self.config.crop.size
    }

    /// `f32`s per output view (`3 × size × size`).
    pub fn view_len(&self) -> usize {
        3 * self.size() * self.size()
    }

    /// Augments one view of `image` with the draws of `rng`, writing `3 × size × size` normalised
    /// values (CHW) into `out`. `out` must hold [`Self::view_len`] values; a shorter buffer is
    /// filled only as far as it goes.
    pub fn view(
        &self,
        image: ImageRef<'_>,
        rng: &mut StreamRng,
        scratch: &mut Scratch,
        out: &mut [f32],
    ) {
        let c = &self.config;
        let Scratch {
            planes,
            tmp,
            weights,
        } = scratch;
        planes.load_rgb8(image);
        if let Some(jitter) = c.jitter.sample(rng) {
            jitter.apply(planes);
        }
        if rng.bernoulli(f64::from(c.grayscale_p)) {
            color::to_grayscale(planes);
        }
        let (h, w) = (planes.height(), planes.width());
        let crop = c.crop.sample(rng, h, w);
        let flip = rng.bernoulli(f64::from(c.flip_p));
        let size = c.crop.size;
        weights.prepare(size, &[crop.width, crop.height]);
        let (Some(wx), Some(wy)) = (weights.get(crop.width), weights.get(crop.height)) else {
            return;
        };
        let r = Resample {
            wx,
            wy,
            window: CropBox::full(size, size),
            flip,
            affine: self.affine,
        };
        resample_into(planes, crop, &r, tmp, out);
    }
}

/// The evaluation transform: optional bicubic resize of the shorter side, optional centre crop,
/// normalisation; no randomness.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalTransform {
    geometry: EvalGeometry,
    normalization: Normalization,
    affine: [(f32, f32); 3],
}

impl EvalTransform {
    /// A transform with the given geometry and normalisation.
    pub fn new(geometry: EvalGeometry, normalization: Normalization) -> Result<Self> {
        normalization.validate()?;
        if geometry.resize == Some(0) || geometry.centre_crop == Some(0) {
            return Err(Error::InvalidSetting {
                setting: "eval geometry",
                expected: "resize and crop sides of at least 1 pixel".into(),
                found: format!("{geometry:?}"),
            });
        }
        Ok(Self {
            geometry,
            normalization,
            affine: affine(&normalization),
        })
    }

    /// docs/method.md §8's eval transform of a dataset (STL-10: resize 70, centre crop 64; others: none).
    pub fn for_dataset(name: DatasetName) -> Self {
        let spec = name.spec();
        Self {
            geometry: spec.eval,
            normalization: spec.normalization,
            affine: affine(&spec.normalization),
        }
    }

    /// The size after the resize (shorter side to `resize`, the other side scaled and truncated,
    /// as torchvision's `Resize(int)`), before the crop.
    fn resized(&self, height: usize, width: usize) -> (usize, usize) {
        match self.geometry.resize {
            None => (height, width),
            Some(s) if height <= width => (s, (s as f64 * width as f64 / height as f64) as usize),
            Some(s) => ((s as f64 * height as f64 / width as f64) as usize, s),
        }
    }

    /// Output `(height, width)` for an input of `height × width`, or an error when the centre crop
    /// is larger than the (resized) image.
    pub fn output_size(&self, height: usize, width: usize) -> Result<(usize, usize)> {
        let (rh, rw) = self.resized(height, width);
        match self.geometry.centre_crop {
            None => Ok((rh, rw)),
            Some(c) if c <= rh && c <= rw => Ok((c, c)),
            Some(c) => Err(Error::InvalidSetting {
                setting: "eval centre crop",
                expected: format!("at most the resized image's {rh}x{rw} pixels"),
                found: c.to_string(),
            }),
        }
    }

    /// Transforms `image` into `out` (CHW, `3 × output_size`). Images for which
    /// [`Self::output_size`] fails are left unwritten.
    pub fn apply(&self, image: ImageRef<'_>, scratch: &mut Scratch, out: &mut [f32]) {
        let Ok((oh, ow)) = self.output_size(image.height, image.width) else {
            return;
        };
        let (rh, rw) = self.resized(image.height, image.width);
        let Scratch { planes, tmp, .. } = scratch;
        planes.load_rgb8(image);
        let wx = AxisWeights::bicubic(image.width, rw);
        let wy = AxisWeights::bicubic(image.height, rh);
        // torchvision's center_crop: top = round((H − h) / 2).
        let window = CropBox {
            top: ((rh - oh) as f64 / 2.0).round_ties_even() as usize,
            left: ((rw - ow) as f64 / 2.0).round_ties_even() as usize,
            height: oh,
            width: ow,
        };
        let r = Resample {
            wx: &wx,
            wy: &wy,
            window,
            flip: false,
            affine: self.affine,
        };
        resample_into(
            planes,
            CropBox::full(image.height, image.width),
            &r,
            tmp,
            out,
        );
    }

    /// The normalisation.
    pub fn normalization(&self) -> &Normalization {
        &self.normalization
    }
}

/// Per-thread working memory of the augmentations, reused from image to image so that the hot
/// path does not allocate: the `f32` planes, the resampler's intermediate rows and a cache of
/// bicubic weights by input length.
#[derive(Clone, Debug, Default)]
pub struct Scratch {
    planes: Planes,
    tmp: Vec<f32>,
    weights: WeightCache,
}

impl Scratch {
    /// Empty scratch space; it grows to what the first images need.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Bicubic weights to one output length, by input length.
#[derive(Clone, Debug, Default)]
struct WeightCache {
    out_len: usize,
    by_in_len: Vec<Option<AxisWeights>>,
}

impl WeightCache {
    /// Makes sure the weights from each of `in_lens` to `out_len` are cached.
    fn prepare(&mut self, out_len: usize, in_lens: &[usize]) {
        if out_len != self.out_len {
            self.out_len = out_len;
            self.by_in_len.clear();
        }
        for &n in in_lens {
            if self.by_in_len.len() <= n {
                self.by_in_len.resize(n + 1, None);
            }
            if let Some(slot @ None) = self.by_in_len.get_mut(n) {
                *slot = Some(AxisWeights::bicubic(n, out_len));
            }
        }
    }

    fn get(&self, in_len: usize) -> Option<&AxisWeights> {
        self.by_in_len.get(in_len)?.as_ref()
    }
}

/// `(v − mean) / std` as `v·scale + offset`.
fn affine(n: &Normalization) -> [(f32, f32); 3] {
    std::array::from_fn(|c| {
        let scale = 1.0 / n.std[c];
        (scale, -n.mean[c] * scale)
    })
}
