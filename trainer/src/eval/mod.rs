//! Evaluation protocols on frozen features (docs/method.md §10).
//!
//! Every protocol here works on in-memory features, independent of the backbone that produced
//! them: a [`Features`] set holds `N × d` row-major `f32` features and their `u16` class labels,
//! checked once when it is built (shape, finiteness, label range) so that the protocols can trust
//! it. A later step wires these to `mclr eval RUN`.
//!
//! * [`linear`]: the linear probe (Adam, exponential learning-rate decay, top-1 and top-5);
//! * [`knn`]: k-nearest-neighbour classification (cosine majority vote, and lightly's weighted
//!   vote), on [`mclr_shared::geometry::KnnIndex`];
//! * [`kmeans`](mod@kmeans): k-means (k-means++ seeding, Lloyd iterations) and cluster purity;
//! * [`semisup`]: the few-labels semi-supervised protocol with a pluggable feature augmentation;
//! * [`report`]: the serialisable results (`results.json`).
// Evaluation reads features and logits back by design: it is not part of a training step.
#![allow(clippy::disallowed_methods)]

mod adam;
pub mod augment_nn;
pub mod features;
pub mod identity;
pub mod kmeans;
pub mod knn;
pub mod linear;
pub mod markdown;
pub mod report;
pub mod semisup;
pub mod suite;

use candle_core::{Device, Tensor};

use crate::augment::rng::StreamRng;
use crate::{Error, Result};

pub use kmeans::{KMeans, KMeansConfig, kmeans, kmeans_purity, purity};
pub use knn::{KnnVote, knn_accuracy, knn_predict};
pub use linear::{LinearProbe, LinearProbeConfig, linear_probe};
pub use report::{
    ClusteringResult, KnnResult, ProbeResult, PseudoLabelCounts, PseudoLabelTrend, Report,
    SemiSupervisedResult,
};
pub use semisup::{Augmentation, Method, SemiSupervisedConfig, semi_supervised};

pub use augment_nn::{AugmentNnSetting, AugmentationNnConfig, augmentation_nn};
pub use identity::{
    IdentityConfig, RepeatScores, identity_preservation, identity_preservation_with, mean_scales,
    score_identity,
};
pub use report::{AugmentationNnResult, IdentityResult, MeanStd};

/// A labelled set of feature vectors: `len × dim` row-major `f32` features, one `u16` label per
/// row, and the number of classes the labels range over.
///
/// Built once with [`Features::new`], which checks the invariants every protocol relies on, so
/// that the protocols themselves need not re-validate.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    data: Vec<f32>,
    dim: usize,
    labels: Vec<u16>,
    classes: usize,
}

impl Features {
    /// Wraps `data` (row-major, `labels.len() × dim`) with its labels in `0..classes`.
    ///
    /// # Errors
    /// * [`Error::InvalidSetting`] naming `dim` or `classes` when either is 0, naming `features`
    ///   at the first NaN or infinity, or naming `labels` at the first label `>= classes`;
    /// * [`Error::Shape`] naming `features` when `data.len() != labels.len() * dim`.
    pub fn new(data: Vec<f32>, dim: usize, labels: Vec<u16>, classes: usize) -> Result<Self> {
        if dim == 0 {
            return Err(invalid("dim", "at least 1", "0"));
        }
        if classes == 0 {
            return Err(invalid("classes", "at least 1", "0"));
        }
        let expected = labels.len().saturating_mul(dim);
        if data.len() != expected {
            return Err(Error::Shape {
                what: "features",
                expected,
                found: data.len(),
            });
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(invalid(
                "features",
                "finite values",
                format!("{} at row {}, column {}", data[i], i / dim, i % dim),
            ));
        }
        if let Some((i, &label)) = labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| usize::from(l) >= classes)
        {
            return Err(invalid(
                "labels",
                format!("labels in 0..{classes}"),
                format!("{label} at row {i}"),
            ));
        }
        Ok(Self {
            data,
            dim,
            labels,
            classes,
        })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Feature dimension `d`.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of classes `C`; every label is below it.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The features, row-major `len × dim`.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The labels, one per row.
    pub fn labels(&self) -> &[u16] {
        &self.labels
    }

    /// The same features with other labels (e.g. shuffled ones, for a chance-level control).
    ///
    /// # Errors
    /// As [`Features::new`]: a label count that differs from the row count, or a label out of
    /// range.
    pub fn with_labels(&self, labels: Vec<u16>) -> Result<Self> {
        Self::new(self.data.clone(), self.dim, labels, self.classes)
    }

    /// The rows at `indices`, in that order (duplicates allowed).
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] naming `indices` at the first index `>= len`.
    pub fn subset(&self, indices: &[usize]) -> Result<Self> {
        let mut data = Vec::with_capacity(indices.len() * self.dim);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            let (Some(row), Some(&label)) = (
                self.data.get(i * self.dim..(i + 1) * self.dim),
                self.labels.get(i),
            ) else {
                return Err(invalid(
                    "indices",
                    format!("row indices in 0..{}", self.len()),
                    i.to_string(),
                ));
            };
            data.extend_from_slice(row);
            labels.push(label);
        }
        Ok(Self {
            data,
            dim: self.dim,
            labels,
            classes: self.classes,
        })
    }

    /// A seeded uniform random subset of `n` distinct rows (all rows, shuffled, when `n >= len`):
    /// docs/method.md §10 clusters 5,000 test features.
    pub fn sample(&self, n: usize, seed: u64) -> Self {
        let mut indices: Vec<usize> = (0..self.len()).collect();
        StreamRng::from_words(&[SAMPLE_DOMAIN, seed]).shuffle(&mut indices);
        indices.truncate(n);
        // Every index is below `len`, so the subset cannot fail; fall back to a clone regardless.
        self.subset(&indices).unwrap_or_else(|_| self.clone())
    }

    /// The features as an `(len, dim)` tensor on `device`.
    pub(crate) fn tensor(&self, device: &Device) -> Result<Tensor> {
        Ok(Tensor::from_slice(
            &self.data,
            (self.len(), self.dim),
            device,
        )?)
    }

    /// Fails unless `other` has the same feature dimension and class count (a train/test pair).
    pub(crate) fn ensure_compatible(&self, other: &Self) -> Result<()> {
        if self.dim != other.dim {
            return Err(invalid(
                "test features",
                format!("dimension {} (as the training features)", self.dim),
                other.dim.to_string(),
            ));
        }
        if self.classes != other.classes {
            return Err(invalid(
                "test features",
                format!("{} classes (as the training features)", self.classes),
                other.classes.to_string(),
            ));
        }
        Ok(())
    }
}

/// Domain tag of the [`Features::sample`] stream.
const SAMPLE_DOMAIN: u64 = 0x7375_6273; // "subs"

/// Shorthand for an [`Error::InvalidSetting`].
// `found` is taken by value so that call sites can pass numbers and `format!`s alike.
#[allow(clippy::needless_pass_by_value)]
pub(crate) fn invalid(
    setting: &'static str,
    expected: impl Into<String>,
    found: impl ToString,
) -> Error {
    Error::InvalidSetting {
        setting,
        expected: expected.into(),
        found: found.to_string(),
    }
}

/// Fails with [`Error::InvalidSetting`] naming `setting` when `value` is 0.
pub(crate) fn ensure_positive(setting: &'static str, value: usize) -> Result<()> {
    if value == 0 {
        return Err(invalid(setting, "at least 1", "0"));
    }
    Ok(())
}

/// Fails with [`Error::InvalidSetting`] naming `setting` unless `value` is finite and `> 0`.
pub(crate) fn ensure_positive_f64(setting: &'static str, value: f64) -> Result<()> {
    if !(value.is_finite() && value > 0.0) {
        return Err(invalid(setting, "a finite number > 0", value));
    }
    Ok(())
}

/// Fraction of `predictions` equal to `labels` (0 for none).
pub(crate) fn accuracy(predictions: &[u16], labels: &[u16]) -> f64 {
    if labels.is_empty() {
        return 0.0;
    }
    let correct = predictions
        .iter()
        .zip(labels)
        .filter(|(p, l)| p == l)
        .count();
    correct as f64 / labels.len() as f64
}

/// The weight `(out_dim, in_dim)` and bias `(out_dim)` of a linear layer initialised as torch's
/// `nn.Linear` is (both `U(−1/√in_dim, 1/√in_dim)`), drawn from `rng` so that a seed fixes them.
pub(crate) fn linear_layer(
    rng: &mut StreamRng,
    in_dim: usize,
    out_dim: usize,
    device: &Device,
) -> Result<(candle_core::Var, candle_core::Var)> {
    let bound = 1.0 / (in_dim.max(1) as f64).sqrt();
    let mut draw =
        |n: usize| -> Vec<f32> { (0..n).map(|_| rng.uniform(-bound, bound) as f32).collect() };
    let weight = Tensor::from_vec(draw(in_dim * out_dim), (out_dim, in_dim), device)?;
    let bias = Tensor::from_vec(draw(out_dim), out_dim, device)?;
    Ok((
        candle_core::Var::from_tensor(&weight)?,
        candle_core::Var::from_tensor(&bias)?,
    ))
}
