//! What a bundle holds. Field order is wire order: bincode writes the fields of each struct in
//! declaration order, so reordering, inserting or removing a field is a new format version.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::array::{ArrayBlob, raw_bytes};

/// Everything the viewer needs from one training run. The sections appear on the wire in the
/// order of the fields.
///
/// Shapes use M operators, K blocks of size n (feature dimension d = K·n), N gallery images and
/// C classes. [`super::validate`] checks that all sections agree on them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bundle {
    /// How the run was produced and how well it did.
    pub metadata: RunMetadata,
    /// The learned generators Ψ, shape (M, K, n, n), f32: operator m acts on block k of the
    /// feature vector as the n×n matrix `operators[m, k]`.
    pub operators: ArrayBlob,
    /// The prior network: features z0 (input d) to the scale and location of the Laplace
    /// distribution over the M coefficients.
    pub prior: MlpWeights,
    /// The coefficient encoder: `concat(z0, z1)` (input 2d) to the scale and location of the
    /// coefficients that transport z0 to z1.
    pub encoder: MlpWeights,
    /// Features of the images the viewer searches and plots.
    pub gallery: Gallery,
    /// One thumbnail per gallery image, as a single sprite sheet.
    pub thumbnails: Thumbnails,
    /// The 2-D (or more) projection the viewer plots features in.
    pub pca: PcaBasis,
    /// Precomputed per-operator statistics for the viewer's summary panels.
    pub stats: OperatorStats,
    /// The run around the model (format v3): when the model was saved, whether it is a live
    /// snapshot of a run still training, and the training curves. Empty for v1 and v2 files.
    pub run: RunRecord,
}

impl Bundle {
    /// M, the number of operators (after [`super::validate`]; 0 if the shape is malformed).
    pub fn num_operators(&self) -> usize {
        dim(&self.operators.shape, 0)
    }

    /// K, the number of blocks of the block-diagonal operators.
    pub fn blocks(&self) -> usize {
        dim(&self.operators.shape, 1)
    }

    /// n, the size of each block.
    pub fn block_size(&self) -> usize {
        dim(&self.operators.shape, 2)
    }

    /// d = K·n, the feature dimension the operators act on.
    pub fn feature_dim(&self) -> usize {
        self.blocks().saturating_mul(self.block_size())
    }

    /// N, the number of gallery images.
    pub fn num_gallery(&self) -> usize {
        dim(&self.gallery.features.shape, 0)
    }

    /// C, the number of classes.
    pub fn num_classes(&self) -> usize {
        self.gallery.class_names.len()
    }
}

/// Dimension `i` of `shape`, or 0 if it is missing or does not fit a `usize`.
fn dim(shape: &[u64], i: usize) -> usize {
    shape
        .get(i)
        .and_then(|&d| usize::try_from(d).ok())
        .unwrap_or(0)
}

/// How a run was produced and how well it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMetadata {
    /// Dataset the run trained on, e.g. `cifar10`.
    pub dataset: String,
    /// Training method, e.g. `manifoldclr` or `simclr`.
    pub method: String,
    /// The run's full configuration as TOML text, so that the run can be reproduced.
    pub config_toml: String,
    /// Program that wrote the bundle, e.g. `mclr 0.1.0`.
    pub producer: String,
    /// Training epochs completed.
    pub epochs: u32,
    /// Optimiser steps completed.
    pub steps: u64,
    /// Soft threshold ζ applied to coefficients sampled from the prior; finite and ≥ 0.
    pub threshold: f32,
    /// Evaluation results by name, e.g. `linear.top1` → 0.87. Finite. Those of a run recorded
    /// beside this one (e.g. SimCLR at the same budget) are named `compare.<label>.<metric>`
    /// ([`COMPARE_PREFIX`]).
    pub metrics: BTreeMap<String, f64>,
}

/// First segment of the metric names of a run recorded beside a bundle's own:
/// `compare.<label>.<metric>`, where `<label>` has no dot.
pub const COMPARE_PREFIX: &str = "compare";

/// One fully connected layer, in `PyTorch`'s layout: `y = x · Wᵀ + b`.
///
/// The weight may be stored at reduced precision (format v2): the prior and encoder MLPs are
/// most of a bundle's bytes, and the viewer only needs them to a few significant digits. Read
/// the weight through [`LinearWeights::dense_weight`], which undoes any quantisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearWeights {
    /// W, shape (out, in): f32, f16, or i8 with `weight_scale`.
    pub weight: ArrayBlob,
    /// b, shape (out), f32.
    pub bias: ArrayBlob,
    /// For an i8 `weight` only: the f32 scale of each row, shape (out), finite and ≥ 0, so that
    /// `W[r, c] = weight_scale[r] · weight[r, c]`. `None` for f32 and f16 weights.
    pub weight_scale: Option<ArrayBlob>,
}

/// A small MLP with two heads, as the prior and the coefficient encoder are: the trunk's layers
/// have `LeakyReLU` (slope 0.01) between them and none after the last; both heads read the trunk's
/// output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpWeights {
    /// Hidden layers, at least one; each layer's `in` is the previous layer's `out`.
    pub trunk: Vec<LinearWeights>,
    /// Head producing the (pre-activation) scale of the Laplace distribution of each of the M
    /// coefficients.
    pub scale_head: LinearWeights,
    /// Head producing the location of each of the M coefficients.
    pub loc_head: LinearWeights,
}

/// The images the viewer can search and plot, as features from the trained backbone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gallery {
    /// Dataset split the images come from, e.g. `test`.
    pub split: String,
    /// Features, shape (N, d), f16 or f32.
    pub features: ArrayBlob,
    /// Class of each image, shape (N), u16, each below `class_names.len()`.
    pub labels: ArrayBlob,
    /// Name of each class, indexed by label; at least one.
    pub class_names: Vec<String>,
    /// Index of each image in its dataset split, shape (N), u32.
    pub source_indices: ArrayBlob,
}

/// Encoding of the thumbnail sprite sheet (decoded by the browser, not by this crate).
///
/// The variant order is part of the wire format: append, never reorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImageFormat {
    /// PNG (lossless).
    Png,
    /// Baseline or progressive JPEG.
    Jpeg,
}

/// All gallery thumbnails in one image: tile i is at column `i % columns`, row `i / columns`,
/// each `tile_px` × `tile_px` pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thumbnails {
    /// Encoding of `sheet`.
    pub format: ImageFormat,
    /// Width and height of one tile in pixels; > 0.
    pub tile_px: u32,
    /// Tiles per row of the sheet; > 0.
    pub columns: u32,
    /// Number of tiles: one per gallery image.
    pub count: u32,
    /// The encoded image; empty when `sheet_file` names where it is.
    #[serde(
        serialize_with = "serde_bytes::serialize",
        deserialize_with = "raw_bytes::deserialize"
    )]
    pub sheet: Vec<u8>,
    /// Format v3: a plain file name (no folder) of the sheet, stored beside the bundle instead of
    /// inside it. A run's live bundle, rewritten at every checkpoint, references the sheet it
    /// wrote once rather than carrying it again. `None` (and always for v1/v2) means `sheet`
    /// holds the image.
    pub sheet_file: Option<String>,
}

/// A linear projection of features for plotting: `p = components · (z − mean)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PcaBasis {
    /// Mean feature, shape (d), f32.
    pub mean: ArrayBlob,
    /// Principal directions as rows, shape (P, d) with P ≥ 2, f32.
    pub components: ArrayBlob,
    /// Variance of the features along each direction, shape (P), f32.
    pub explained_variance: ArrayBlob,
}

/// Per-operator summaries the trainer computes once so that the viewer need not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorStats {
    /// Frobenius norm of each `Ψ_m` (over all its blocks), shape (M), f32, ≥ 0.
    pub norms: ArrayBlob,
    /// Fraction of training pairs whose coefficient `c_m` was non-zero, shape (M), f32 in [0, 1].
    pub usage: ArrayBlob,
    /// Mean `|c̃_m|` under the prior for the images of each class, shape (C, M), f32.
    pub class_heatmap: ArrayBlob,
}

/// What a bundle records about its run besides the model (format v3).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// When the model in the bundle was saved by the trainer (the checkpoint it comes from), in
    /// milliseconds since the Unix epoch; 0 if unknown (v1/v2). The viewer shows its age.
    pub saved_unix_ms: u64,
    /// True for a live snapshot written by `mclr train` at a checkpoint: a small gallery and
    /// no evaluation, replaced as the run goes on. False for an exported bundle.
    pub live: bool,
    /// Training curves: the run's own log first, then any runs it is compared with (for
    /// example SimCLR at the same budget). Each is the run's `metrics.jsonl`, one JSON object
    /// per logged step; [`crate::curves`] reads it.
    pub training_logs: Vec<TrainingLog>,
}

/// One run's training log as the trainer wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingLog {
    /// What to call the run in a legend, e.g. `manifoldclr` or `simclr`.
    pub label: String,
    /// The run's `metrics.jsonl`, verbatim.
    pub jsonl: String,
}
