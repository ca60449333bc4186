//! The learning-rate schedule: linear warm-up, then cosine annealing to a per-group floor.
//!
//! This reproduces the reference's `LinearWarmupCosineAnnealingLR` (pl_bolts) as the authors' trainer
//! builds it, including the details pinned by `fixtures/reference/lr_schedule.safetensors` (README §f,
//! quirk 7): the learning rate is 0 at iteration 0, reaches its peak at iteration `W − 1`, is exactly
//! the base rate at `W`, and anneals to the group's own floor at `T`. The warm-up length `W` is a
//! float, because the reference computes it as `warmup_epochs · (num_iters / num_epochs)`.

use candle_core::{Result, bail};

/// Linear warm-up over `warmup_iters` iterations followed by cosine annealing from `base_lr` to
/// `floor` at `max_iters`, evaluated in closed form for any iteration.
///
/// With `W = warmup_iters`, `T = max_iters` and `t` the iteration (the number of optimiser steps
/// taken so far):
/// * `t < W`: `t · base / max(1, W − 1)`, so `lr(0) = 0` and the peak is reached at `W − 1`;
/// * `t = W`: exactly `base`;
/// * `W < t < T`: `floor + ½ (base − floor) (1 + cos(π (t − W) / (T − W)))`;
/// * `t ≥ T`: `floor` (the reference's cosine would rise again past `T`; training never gets there,
///   and holding the floor is the safe reading).
///
/// The values are validated once by [`LinearWarmupCosine::new`], so [`lr_at`](Self::lr_at) is total
/// and always finite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearWarmupCosine {
    base_lr: f64,
    floor: f64,
    warmup_iters: f64,
    max_iters: u64,
}

impl LinearWarmupCosine {
    /// Builds a schedule from the peak rate, the floor it anneals to, the warm-up length in
    /// iterations (a float, as in the reference) and the total number of iterations.
    ///
    /// Rates and the warm-up length must be finite and non-negative. A warm-up of 0 means no
    /// warm-up (`lr(0) = base`). A warm-up as long as the run or longer is allowed (tiny demo
    /// configurations): the rate then ramps linearly for the whole run, as in the reference.
    pub fn new(base_lr: f64, floor: f64, warmup_iters: f64, max_iters: u64) -> Result<Self> {
        if !(base_lr.is_finite() && base_lr >= 0.0) {
            bail!("learning-rate schedule: base lr must be finite and >= 0, found {base_lr}");
        }
        if !(floor.is_finite() && floor >= 0.0) {
            bail!("learning-rate schedule: floor must be finite and >= 0, found {floor}");
        }
        if !(warmup_iters.is_finite() && warmup_iters >= 0.0) {
            bail!(
                "learning-rate schedule: warm-up iterations must be finite and >= 0, found {warmup_iters}"
            );
        }
        Ok(Self {
            base_lr,
            floor,
            warmup_iters,
            max_iters,
        })
    }

    /// Builds a schedule the way the reference trainer does, from epochs: warm-up
    /// `W = warmup_epochs · iters_per_epoch` and `T = epochs · iters_per_epoch`.
    ///
    /// docs/method.md §7 warms up over 10 epochs, so `W = 10 · iters_per_epoch`.
    pub fn from_epochs(
        base_lr: f64,
        floor: f64,
        warmup_epochs: f64,
        iters_per_epoch: u64,
        epochs: u64,
    ) -> Result<Self> {
        let Some(max_iters) = epochs.checked_mul(iters_per_epoch) else {
            bail!(
                "learning-rate schedule: {epochs} epochs of {iters_per_epoch} iterations overflow u64"
            );
        };
        Self::new(
            base_lr,
            floor,
            warmup_epochs * iters_per_epoch as f64,
            max_iters,
        )
    }

    /// The learning rate to use at iteration `iter` (0-based; the rate after `iter` scheduler
    /// steps in the reference, which steps its scheduler once per iteration).
    pub fn lr_at(&self, iter: u64) -> f64 {
        let t = iter as f64;
        let w = self.warmup_iters;
        if t < w {
            // The reference's closed form guards W − 1 with max(1, ·); for W ≥ 2 this is t·base/(W−1).
            return t * self.base_lr / (w - 1.0).max(1.0);
        }
        if t == w {
            return self.base_lr;
        }
        if iter >= self.max_iters {
            return self.floor;
        }
        let progress = std::f64::consts::PI * (t - w) / (self.max_iters as f64 - w);
        self.floor + 0.5 * (self.base_lr - self.floor) * (1.0 + progress.cos())
    }

    /// The peak learning rate.
    pub fn base_lr(&self) -> f64 {
        self.base_lr
    }

    /// The learning rate the cosine anneals to.
    pub fn floor(&self) -> f64 {
        self.floor
    }

    /// The warm-up length in iterations.
    pub fn warmup_iters(&self) -> f64 {
        self.warmup_iters
    }

    /// The iteration at which the floor is reached.
    pub fn max_iters(&self) -> u64 {
        self.max_iters
    }
}
