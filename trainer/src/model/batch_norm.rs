//! Batch normalisation with PyTorch's defaults (momentum 0.1, ε = 1e-5, affine), shared by the
//! backbone (2-D, per channel) and the projection head (1-D, per feature).
//!
//! This is candle-nn's [`candle_nn::BatchNorm`], which already has torch's semantics: in training
//! mode it normalises with the batch's biased variance and updates the running statistics as
//! `running = (1 − momentum)·running + momentum·batch`, using the *unbiased* variance for
//! `running_var`; in evaluation mode it normalises with the running statistics and updates
//! nothing. The wrapper adds what candle leaves out: a typed error where torch raises one (a single
//! value per channel in training mode, whose unbiased variance is 0/0), and a way to tell the
//! running statistics apart from the trainable parameters.
//!
//! The running statistics live in the same [`candle_nn::VarMap`] as the parameters (so that
//! checkpoints hold them), under `<prefix>.running_mean` and `<prefix>.running_var`. They never
//! receive a gradient, but an optimiser that walks the whole map must skip them (see
//! [`is_running_stat`]) and parameter counts must not include them.

use candle_core::{Result, Tensor, bail};
use candle_nn::{BatchNormConfig, ModuleT, VarBuilder};

/// Weight of the current batch in the running statistics (PyTorch's default).
pub const MOMENTUM: f64 = 0.1;
/// Added to the variance before the square root (PyTorch's default).
pub const EPS: f64 = 1e-5;
/// Name suffix of the running mean in a [`candle_nn::VarMap`].
pub const RUNNING_MEAN: &str = "running_mean";
/// Name suffix of the running variance in a [`candle_nn::VarMap`].
pub const RUNNING_VAR: &str = "running_var";

/// Whether the variable called `name` is a batch-norm running statistic (a buffer updated by the
/// forward pass) rather than a trainable parameter. Optimisers and parameter counts skip these.
pub fn is_running_stat(name: &str) -> bool {
    name.rsplit('.')
        .next()
        .is_some_and(|last| last == RUNNING_MEAN || last == RUNNING_VAR)
}

/// An affine batch-norm layer over dimension 1 of its input: (B, C) or (B, C, H, W).
#[derive(Debug, Clone)]
pub struct BatchNorm {
    inner: candle_nn::BatchNorm,
    num_features: usize,
}

impl BatchNorm {
    /// A layer over `num_features` channels whose weight (init 1), bias (init 0), running mean
    /// (init 0) and running variance (init 1) are `weight`, `bias`, `running_mean` and
    /// `running_var` under `vb`.
    pub fn new(num_features: usize, vb: VarBuilder<'_>) -> Result<Self> {
        let config = BatchNormConfig {
            eps: EPS,
            remove_mean: true,
            affine: true,
            momentum: MOMENTUM,
        };
        Ok(Self {
            inner: candle_nn::batch_norm(num_features, config, vb)?,
            num_features,
        })
    }

    /// Number of channels (the size of dimension 1 of the input).
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// The running mean (C), as the evaluation mode uses it.
    pub fn running_mean(&self) -> &Tensor {
        self.inner.running_mean()
    }

    /// The running variance (C), as the evaluation mode uses it.
    pub fn running_var(&self) -> &Tensor {
        self.inner.running_var()
    }
}

impl ModuleT for BatchNorm {
    /// Normalises `x` with the batch statistics and updates the running ones (`train`), or with
    /// the running statistics (`!train`). In training mode every channel needs at least two values
    /// (B·H·W ≥ 2), as in PyTorch.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let dims = x.dims();
        if dims.len() < 2 || dims[1] != self.num_features {
            bail!(
                "batch norm over {} channels expects (B, {}, ...), got {:?}",
                self.num_features,
                self.num_features,
                dims
            );
        }
        if train {
            let per_channel = x.elem_count() / self.num_features.max(1);
            if per_channel < 2 {
                bail!(
                    "batch norm in training mode needs more than one value per channel, got input {dims:?}"
                );
            }
        }
        self.inner.forward_t(x, train)
    }
}
