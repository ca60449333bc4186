//! The bundle's operator statistics: each Ψ_m's norm, its usage (the fraction of prior samples
//! with `c_m ≠ 0`) and the class × operator heatmap of mean `|c_m|`, from seeded prior samples
//! at the stored gallery features (see the parent module's docs).
// The prior's heads are read back to the host to be sampled: this is not a training step.
#![allow(clippy::disallowed_methods)]

use candle_core::{DType, Device, Tensor};
use mclr_shared::bundle::{ArrayBlob, OperatorStats};
use mclr_shared::operators::LaplaceSampler;

use super::{BATCH_SIZE, PRIOR_SAMPLES_PER_IMAGE, PRIOR_SEED};
use crate::error::Result;
use crate::model::coefficients::PriorNetwork;

/// What the operator statistics are computed from.
pub(super) struct OperatorInputs<'a> {
    /// Frobenius norm of each Ψ_m.
    pub(super) norms: Vec<f32>,
    /// Stored gallery features, N × d.
    pub(super) features: &'a [f32],
    /// Class of each gallery image.
    pub(super) labels: &'a [u16],
    /// Number of classes C.
    pub(super) classes: usize,
    /// Soft threshold ζ.
    pub(super) threshold: f32,
}

/// Norms, usage and the class × operator heatmap (see the module docs), from
/// [`PRIOR_SAMPLES_PER_IMAGE`] prior samples per gallery image.
pub(super) fn operator_stats(
    inputs: &OperatorInputs<'_>,
    prior: &PriorNetwork,
    device: &Device,
) -> Result<OperatorStats> {
    let m = inputs.norms.len();
    let d = prior.feature_dim();
    let mut sampler = LaplaceSampler::new(PRIOR_SEED);
    let mut nonzero = vec![0_u64; m];
    let mut class_sum = vec![0.0_f64; inputs.classes.saturating_mul(m)];
    let mut class_count = vec![0_u64; inputs.classes];
    let mut samples = 0_u64;
    let rows_per_batch = BATCH_SIZE.saturating_mul(d);
    for (chunk, labels) in inputs
        .features
        .chunks(rows_per_batch.max(1))
        .zip(inputs.labels.chunks(BATCH_SIZE))
    {
        let z = Tensor::from_slice(chunk, (labels.len(), d), device)?;
        let heads = prior.forward(&z)?;
        let loc = heads.loc.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        let logscale = heads.logscale.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        for ((loc, logscale), &label) in loc.iter().zip(&logscale).zip(labels) {
            let c = sampler.sample(loc, logscale, inputs.threshold, PRIOR_SAMPLES_PER_IMAGE)?;
            let class = usize::from(label);
            if let Some(count) = class_count.get_mut(class) {
                *count += PRIOR_SAMPLES_PER_IMAGE as u64;
            }
            for draw in c.chunks_exact(m.max(1)) {
                samples += 1;
                for (j, &value) in draw.iter().enumerate() {
                    if value != 0.0
                        && let Some(slot) = nonzero.get_mut(j)
                    {
                        *slot += 1;
                    }
                    if let Some(slot) = class_sum.get_mut(class * m + j) {
                        *slot += f64::from(value.abs());
                    }
                }
            }
        }
    }
    let usage: Vec<f32> = nonzero
        .iter()
        .map(|&k| (k as f64 / samples.max(1) as f64) as f32)
        .collect();
    let heatmap: Vec<f32> = class_sum
        .chunks_exact(m.max(1))
        .zip(&class_count)
        .flat_map(|(row, &count)| row.iter().map(move |&s| (s / count.max(1) as f64) as f32))
        .collect();
    Ok(OperatorStats {
        norms: ArrayBlob::from_f32(&[m], &inputs.norms)?,
        usage: ArrayBlob::from_f32(&[m], &usage)?,
        class_heatmap: ArrayBlob::from_f32(&[inputs.classes, m], &heatmap)?,
    })
}
