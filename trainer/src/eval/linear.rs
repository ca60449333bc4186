//! The linear probe (docs/method.md §10): a linear layer `d → C` trained on frozen training features and
//! scored top-1 / top-5 on the test features.
//!
//! Training follows the reference: torch's `Adam` (lr 1e-2, L2-style weight decay 5e-6, see
//! the `adam` module), the learning rate multiplied once per epoch by `(1e-6 / 1e-2)^(1/E)` so that
//! it decays from 1e-2 to 1e-6 over `E = 500` epochs, shuffled minibatches of 1000 (the last one
//! may be smaller, as torch's `DataLoader` without `drop_last`), and cross-entropy. The layer is
//! initialised as torch's `nn.Linear`, and every random choice comes from the seed, so a probe is
//! reproducible.

use candle_core::{DType, Device, Tensor};

use super::adam::Adam;
use super::report::ProbeResult;
use super::{Features, ensure_positive, ensure_positive_f64, invalid, linear_layer};
use crate::Result;
use crate::augment::rng::StreamRng;

/// Domain tag of the probe's random streams (initialisation and shuffles).
const PROBE_DOMAIN: u64 = 0x7072_6f62; // "prob"

/// The linear probe's training settings; [`Default`] is docs/method.md §10's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearProbeConfig {
    /// Epochs `E` (the paper: 500).
    pub epochs: usize,
    /// Minibatch size (the paper: 1000).
    pub batch_size: usize,
    /// Initial learning rate (the paper: 1e-2).
    pub lr: f64,
    /// Learning rate reached after the last epoch (the paper: 1e-6); the per-epoch factor is
    /// `(final_lr / lr)^(1/epochs)`.
    pub final_lr: f64,
    /// L2-style weight decay added to the gradient (the paper: 5e-6).
    pub weight_decay: f64,
    /// Seed of the initialisation and the shuffles.
    pub seed: u64,
}

impl Default for LinearProbeConfig {
    fn default() -> Self {
        Self {
            epochs: 500,
            batch_size: 1000,
            lr: 1e-2,
            final_lr: 1e-6,
            weight_decay: 5e-6,
            seed: 0,
        }
    }
}

impl LinearProbeConfig {
    /// Fails with [`crate::Error::InvalidSetting`] on a zero count or a non-positive rate.
    fn validate(&self) -> Result<()> {
        ensure_positive("linear.epochs", self.epochs)?;
        ensure_positive("linear.batch_size", self.batch_size)?;
        ensure_positive_f64("linear.lr", self.lr)?;
        ensure_positive_f64("linear.final_lr", self.final_lr)?;
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(invalid(
                "linear.weight_decay",
                "a finite number >= 0",
                self.weight_decay,
            ));
        }
        Ok(())
    }
}

/// A trained linear probe: `logits = x Wᵀ + b`.
///
/// Kept (rather than only its scores) because docs/method.md §10's identity-preservation protocol trains one
/// probe on clean features and scores it on several perturbed test sets.
#[derive(Debug, Clone)]
pub struct LinearProbe {
    weight: Tensor,
    bias: Tensor,
    dim: usize,
    classes: usize,
    epochs: usize,
    train_rows: usize,
}

impl LinearProbe {
    /// Trains a probe on `train` with `config`, on `device` (the CPU, or a GPU under the `cuda`
    /// feature; the arithmetic is the same).
    ///
    /// # Errors
    /// [`crate::Error::InvalidSetting`] for an invalid `config` or an empty `train`;
    /// [`crate::Error::Candle`] if a tensor operation fails.
    pub fn fit(train: &Features, config: &LinearProbeConfig, device: &Device) -> Result<Self> {
        config.validate()?;
        ensure_positive("linear probe training rows", train.len())?;
        let (dim, classes, rows) = (train.dim(), train.classes(), train.len());
        let mut init = StreamRng::from_words(&[PROBE_DOMAIN, config.seed, u64::MAX]);
        let (weight, bias) = linear_layer(&mut init, dim, classes, device)?;

        let features = train.tensor(device)?;
        let labels: Vec<u32> = train.labels().iter().map(|&l| u32::from(l)).collect();
        let labels = Tensor::from_vec(labels, rows, device)?;
        let mut adam = Adam::new(
            vec![weight.clone(), bias.clone()],
            config.lr,
            config.weight_decay,
        )?;
        let gamma = (config.final_lr / config.lr).powf(1.0 / config.epochs as f64);

        let mut order: Vec<u32> = (0..rows).filter_map(|i| u32::try_from(i).ok()).collect();
        if order.len() != rows {
            return Err(invalid(
                "linear probe training rows",
                format!("at most {}", u32::MAX),
                rows,
            ));
        }
        for epoch in 0..config.epochs {
            StreamRng::from_words(&[PROBE_DOMAIN, config.seed, epoch as u64]).shuffle(&mut order);
            for batch in order.chunks(config.batch_size) {
                let index = Tensor::from_slice(batch, batch.len(), device)?;
                let x = features.index_select(&index, 0)?;
                let y = labels.index_select(&index, 0)?;
                let logits = x
                    .matmul(&weight.as_tensor().t()?)?
                    .broadcast_add(bias.as_tensor())?;
                let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
                adam.step(&loss.backward()?)?;
            }
            adam.lr *= gamma;
        }
        Ok(Self {
            weight: weight.as_tensor().detach(),
            bias: bias.as_tensor().detach(),
            dim,
            classes,
            epochs: config.epochs,
            train_rows: rows,
        })
    }

    /// The logits of `features` (row-major, `rows × dim`), row-major `rows × classes`.
    ///
    /// # Errors
    /// [`crate::Error::Shape`] when `features.len()` is not a multiple of the probe's dimension;
    /// [`crate::Error::Candle`] if a tensor operation fails.
    pub fn logits(&self, features: &[f32]) -> Result<Vec<f32>> {
        if !features.len().is_multiple_of(self.dim) {
            return Err(crate::Error::Shape {
                what: "probe input features",
                expected: features.len() / self.dim * self.dim,
                found: features.len(),
            });
        }
        let rows = features.len() / self.dim;
        let x = Tensor::from_slice(features, (rows, self.dim), self.weight.device())?;
        let logits = x
            .matmul(&self.weight.t()?)?
            .broadcast_add(&self.bias)?
            .to_dtype(DType::F32)?;
        Ok(logits.flatten_all()?.to_vec1()?)
    }

    /// Top-1 and top-5 accuracy on `test`.
    ///
    /// A row counts as correct at `k` when fewer than `k` classes rank above its true class, a
    /// class ranking above when its logit is larger, or equal with a smaller class index (so ties
    /// are resolved deterministically). With at most five classes top-5 is 1.
    ///
    /// # Errors
    /// [`crate::Error::InvalidSetting`] when `test` has another dimension or class count than the
    /// training features; [`crate::Error::Candle`] if a tensor operation fails.
    pub fn evaluate(&self, test: &Features) -> Result<ProbeResult> {
        if test.dim() != self.dim || test.classes() != self.classes {
            return Err(invalid(
                "test features",
                format!(
                    "{} columns and {} classes (as the probe)",
                    self.dim, self.classes
                ),
                format!("{} columns and {} classes", test.dim(), test.classes()),
            ));
        }
        let logits = self.logits(test.data())?;
        let (mut top1, mut top5) = (0_usize, 0_usize);
        for (row, &label) in logits.chunks_exact(self.classes).zip(test.labels()) {
            let rank = class_rank(row, usize::from(label));
            top1 += usize::from(rank < 1);
            top5 += usize::from(rank < 5);
        }
        let n = test.len().max(1) as f64;
        Ok(ProbeResult {
            top1: top1 as f64 / n,
            top5: top5 as f64 / n,
            epochs: self.epochs,
            train_rows: self.train_rows,
            test_rows: test.len(),
        })
    }
}

/// Trains a probe on `train` (on `device`) and scores it on `test` (docs/method.md §10's linear evaluation).
///
/// # Errors
/// As [`LinearProbe::fit`] and [`LinearProbe::evaluate`].
pub fn linear_probe(
    train: &Features,
    test: &Features,
    config: &LinearProbeConfig,
    device: &Device,
) -> Result<ProbeResult> {
    train.ensure_compatible(test)?;
    LinearProbe::fit(train, config, device)?.evaluate(test)
}

/// How many classes rank above class `label` in `row`: a larger logit, or an equal one with a
/// smaller index. Also the `argmax` tie rule used by the other protocols.
pub(crate) fn class_rank(row: &[f32], label: usize) -> usize {
    let Some(&own) = row.get(label) else {
        return row.len();
    };
    row.iter()
        .enumerate()
        .filter(|&(c, &v)| v > own || (v == own && c < label))
        .count()
}

/// The index of the largest value of `row` (the smallest such index on ties; 0 when empty).
pub(crate) fn argmax<T: PartialOrd + Copy>(row: &[T]) -> usize {
    let mut best = 0;
    for (c, &v) in row.iter().enumerate() {
        if row.get(best).is_some_and(|&b| v > b) {
            best = c;
        }
    }
    best
}
