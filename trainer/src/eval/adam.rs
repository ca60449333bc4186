//! The optimiser of the evaluation heads: `torch.optim.Adam` with its L2-style weight decay.
//!
//! docs/method.md §10's probes use torch's `Adam(weight_decay=wd)`, which adds `wd · p` to the gradient
//! *before* the moment updates (unlike AdamW's decoupled decay in [`crate::optim`]). candle-nn's
//! `AdamW` only decouples, so this small optimiser reproduces torch's update exactly:
//!
//! ```text
//! g ← g + wd·p;  m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²
//! p ← p − lr/(1−β₁ᵗ) · m / (√v / √(1−β₂ᵗ) + ε)
//! ```
//! with torch's defaults β₁ = 0.9, β₂ = 0.999, ε = 1e-8.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use crate::Result;

/// torch's default first-moment decay.
const BETA1: f64 = 0.9;
/// torch's default second-moment decay.
const BETA2: f64 = 0.999;
/// torch's default denominator guard.
const EPS: f64 = 1e-8;

/// Adam with L2-style weight decay over a fixed list of parameters.
#[derive(Debug)]
pub(crate) struct Adam {
    params: Vec<Var>,
    first: Vec<Tensor>,
    second: Vec<Tensor>,
    step: i32,
    /// Current learning rate (the caller schedules it).
    pub(crate) lr: f64,
    weight_decay: f64,
}

impl Adam {
    /// An optimiser over `params` with zeroed moments.
    pub(crate) fn new(params: Vec<Var>, lr: f64, weight_decay: f64) -> Result<Self> {
        let first = params
            .iter()
            .map(|p| p.as_tensor().zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let second = first.clone();
        Ok(Self {
            params,
            first,
            second,
            step: 0,
            lr,
            weight_decay,
        })
    }

    /// Applies one update from `grads`; parameters without a gradient are left alone.
    pub(crate) fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step = self.step.saturating_add(1);
        let bias1 = 1.0 - BETA1.powi(self.step);
        let bias2_sqrt = (1.0 - BETA2.powi(self.step)).sqrt();
        let step_size = self.lr / bias1;
        for ((param, first), second) in self
            .params
            .iter()
            .zip(self.first.iter_mut())
            .zip(self.second.iter_mut())
        {
            let Some(grad) = grads.get(param.as_tensor()) else {
                continue;
            };
            let p = param.as_tensor().detach();
            let grad = if self.weight_decay == 0.0 {
                grad.clone()
            } else {
                (grad + (&p * self.weight_decay)?)?
            };
            *first = ((&*first * BETA1)? + (&grad * (1.0 - BETA1))?)?;
            *second = ((&*second * BETA2)? + (grad.sqr()? * (1.0 - BETA2))?)?;
            let denom = ((second.sqrt()? / bias2_sqrt)? + EPS)?;
            let update = ((&*first / denom)? * step_size)?;
            param.set(&(p - update)?)?;
        }
        Ok(())
    }
}
