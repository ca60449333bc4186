//! What the training loop knows about its steps, read from the device only when it needs it.
//!
//! A step leaves its loss terms ([`StepOutput::terms`]) and its groups' gradient norms
//! ([`DeferredStepReport::grad_norms`]) on the device. The monitor keeps them, one small tensor
//! per step, and [`StepMonitor::read`] brings every step since the last read back in one
//! transfer: the loop reads at logging steps, at the end of each epoch (before a checkpoint is
//! written) and after a failed step. So a GPU never waits for the host between steps, and a NaN
//! is still caught before anything is saved: [`first_divergence`] finds the first step whose loss
//! terms or gradient norms were not finite.

use std::collections::BTreeMap;

use candle_core::{Result, Tensor};

use super::step::{LossTerms, StepOutput};
use crate::optim::DeferredStepReport;

/// One step as read back: its loss terms, learning rates and gradient norms per group.
#[derive(Debug, Clone, PartialEq)]
pub struct StepValues {
    /// The global iteration.
    pub step: u64,
    /// The loss terms.
    pub terms: LossTerms,
    /// Learning rate per parameter group.
    pub lr: BTreeMap<String, f64>,
    /// Pre-clip gradient norm per parameter group.
    pub grad_norm: BTreeMap<String, f64>,
}

/// The first non-finite value of a run, and where.
#[derive(Debug, Clone, PartialEq)]
pub enum Divergence {
    /// A loss term was NaN or infinite.
    Loss {
        /// The step.
        step: u64,
        /// The term's name ([`LossTerms::NAMES`]).
        term: &'static str,
        /// Its value.
        value: f64,
    },
    /// A group's gradient norm was NaN or infinite (with finite loss terms).
    Gradient {
        /// The step.
        step: u64,
        /// The parameter group.
        group: String,
        /// The norm.
        value: f64,
    },
}

/// Steps not yet read back.
#[derive(Debug, Default)]
pub struct StepMonitor {
    pending: Vec<Pending>,
}

#[derive(Debug)]
struct Pending {
    step: u64,
    /// The five loss terms, then one gradient norm per group: (5 + groups,) f64.
    values: Tensor,
    kl_weight: f64,
    names: Vec<String>,
    lrs: Vec<f64>,
}

impl StepMonitor {
    /// An empty monitor.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps step `step`'s terms and gradient norms, on the device.
    ///
    /// # Errors
    /// If the two tensors cannot be joined (different devices or dtypes).
    pub fn record(
        &mut self,
        step: u64,
        out: &StepOutput,
        report: DeferredStepReport,
    ) -> Result<()> {
        let values = Tensor::cat(&[&out.terms, &report.grad_norms], 0)?;
        self.pending.push(Pending {
            step,
            values,
            kl_weight: out.kl_weight,
            names: report.names,
            lrs: report.lrs,
        });
        Ok(())
    }

    /// How many steps have not been read back yet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Reads every pending step back in one transfer (none if nothing is pending), oldest first.
    ///
    /// # Errors
    /// If the transfer fails or a step's values do not have the length it recorded.
    pub fn read(&mut self) -> Result<Vec<StepValues>> {
        if self.pending.is_empty() {
            return Ok(Vec::new());
        }
        let pending = std::mem::take(&mut self.pending);
        let joined = Tensor::cat(&pending.iter().map(|p| &p.values).collect::<Vec<_>>(), 0)?;
        let values = crate::readback::to_f64s(&joined)?;
        let mut offset = 0;
        let mut steps = Vec::with_capacity(pending.len());
        for p in pending {
            let width = LossTerms::NAMES.len() + p.names.len();
            let Some(row) = values.get(offset..offset + width) else {
                candle_core::bail!("step {}: expected {width} monitored values", p.step);
            };
            offset += width;
            let (terms, norms) = row.split_at(LossTerms::NAMES.len());
            let Some(terms) = LossTerms::from_values(terms, p.kl_weight) else {
                candle_core::bail!("step {}: expected 5 loss terms", p.step);
            };
            steps.push(StepValues {
                step: p.step,
                terms,
                lr: p.names.iter().cloned().zip(p.lrs).collect(),
                grad_norm: p.names.into_iter().zip(norms.iter().copied()).collect(),
            });
        }
        Ok(steps)
    }
}

/// The first step of `steps` with a non-finite loss term or gradient norm (loss terms first).
pub fn first_divergence(steps: &[StepValues]) -> Option<Divergence> {
    steps.iter().find_map(|s| {
        if let Some((term, value)) = s.terms.first_non_finite() {
            return Some(Divergence::Loss {
                step: s.step,
                term,
                value,
            });
        }
        s.grad_norm
            .iter()
            .find(|(_, v)| !v.is_finite())
            .map(|(group, &value)| Divergence::Gradient {
                step: s.step,
                group: group.clone(),
                value,
            })
    })
}
