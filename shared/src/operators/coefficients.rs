//! The coefficient distributions: the encoder's posterior q(c | z0, z1) and the learned prior
//! p(c | z0), both Laplace, with the clamps and offsets of docs/method.md §4, and the prior's warm-up.

use super::{Mlp, sign};
use crate::{Error, Result};

/// ln of the fixed prior scale b = 0.01, added to every log-scale head.
pub const SCALE_PRIOR_LN: f32 = -4.605_170_2; // ln(0.01)
/// Location of the fixed ("hyper") prior, and the encoder's location offset.
pub const SHIFT_PRIOR: f32 = 0.05;
/// Offset added to the encoder's clamped location.
pub const ENCODER_LOC_OFFSET: f32 = SHIFT_PRIOR;
/// Clamp of the encoder's raw log-scale head, before adding [`SCALE_PRIOR_LN`].
pub const ENCODER_LOGSCALE_RANGE: (f32, f32) = (-100.0, 3.0);
/// Upper clamp of the prior's raw log-scale head (it has no lower clamp).
pub const PRIOR_LOGSCALE_MAX: f32 = 3.0;
/// Symmetric clamp of both location heads.
pub const LOC_CLAMP: f32 = 5.0;

/// A batch of Laplace distributions over coefficients: rows × M locations and log-scales
/// (natural log of b, density ∝ exp(−|x − μ|/b)).
#[derive(Debug, Clone, PartialEq)]
pub struct LaplaceParams {
    /// Locations μ.
    pub loc: Vec<f32>,
    /// Log-scales ln b.
    pub logscale: Vec<f32>,
}

/// q(c | z0, z1): infers the coefficients that carry z0 to z1 (the viewer's "transport A → B").
#[derive(Debug, Clone, PartialEq)]
pub struct CoefficientEncoder {
    mlp: Mlp,
}

impl CoefficientEncoder {
    /// Wraps an MLP whose input is concat(z0, z1), i.e. twice the feature dimension.
    pub fn new(mlp: Mlp) -> Result<Self> {
        if !mlp.input_dim().is_multiple_of(2) {
            return Err(Error::invalid(
                "encoder.trunk[0]",
                format!(
                    "input width {} is not 2·d for concat(z0, z1)",
                    mlp.input_dim()
                ),
            ));
        }
        Ok(Self { mlp })
    }

    /// Feature dimension d.
    pub fn feature_dim(&self) -> usize {
        self.mlp.input_dim() / 2
    }

    /// The underlying network.
    pub fn mlp(&self) -> &Mlp {
        &self.mlp
    }

    /// Posterior parameters for feature pairs (rows × d each):
    /// ln b = clamp(h_scale, −100, 3) + ln 0.01 and μ = clamp(h_loc, −5, 5) + 0.05.
    pub fn posterior(&self, z0: &[f32], z1: &[f32]) -> Result<LaplaceParams> {
        let d = self.feature_dim();
        if z0.len() != z1.len() {
            return Err(Error::shape(
                "z1",
                &[z0.len() / d.max(1), d],
                &[z1.len() / d.max(1), d],
            ));
        }
        let x: Vec<f32> = z0
            .chunks_exact(d)
            .zip(z1.chunks_exact(d))
            .flat_map(|(a, b)| a.iter().chain(b).copied())
            .collect();
        if x.len() != z0.len() * 2 {
            return Err(Error::invalid(
                "z0",
                format!("{} values are not rows of width {d}", z0.len()),
            ));
        }
        let out = self.mlp.forward(&x)?;
        let (lo, hi) = ENCODER_LOGSCALE_RANGE;
        Ok(LaplaceParams {
            logscale: out
                .scale
                .iter()
                .map(|h| h.clamp(lo, hi) + SCALE_PRIOR_LN)
                .collect(),
            loc: out
                .loc
                .iter()
                .map(|h| h.clamp(-LOC_CLAMP, LOC_CLAMP) + ENCODER_LOC_OFFSET)
                .collect(),
        })
    }
}

/// p(c | z0): which moves are plausible at z0 (the viewer's "sample the prior").
#[derive(Debug, Clone, PartialEq)]
pub struct PriorNetwork {
    mlp: Mlp,
}

impl PriorNetwork {
    /// Wraps an MLP whose input is one feature.
    pub fn new(mlp: Mlp) -> Self {
        Self { mlp }
    }

    /// The underlying network.
    pub fn mlp(&self) -> &Mlp {
        &self.mlp
    }

    /// The fully warmed prior (what evaluation and export use):
    /// ln b = min(h_scale, 3) + ln 0.01 and μ = clamp(h_loc, −5, 5).
    pub fn prior(&self, z0: &[f32]) -> Result<LaplaceParams> {
        let out = self.mlp.forward(z0)?;
        Ok(LaplaceParams {
            logscale: out
                .scale
                .iter()
                .map(|h| h.min(PRIOR_LOGSCALE_MAX) + SCALE_PRIOR_LN)
                .collect(),
            loc: out
                .loc
                .iter()
                .map(|h| h.clamp(-LOC_CLAMP, LOC_CLAMP))
                .collect(),
        })
    }
}

/// Warm-up weight w = min(iter / W, 1) of the learned prior at training iteration `iter`.
pub fn prior_warmup_weight(iter: u64, warmup_iters: u64) -> f32 {
    if warmup_iters == 0 {
        1.0
    } else {
        (iter as f64 / warmup_iters as f64).min(1.0) as f32
    }
}

/// Blends the learned prior with the fixed one during warm-up (docs/method.md §4):
/// ln b ← w·ln b_p + (1−w)·ln 0.01 and μ ← w·μ_p + (1−w)·0.05·sign(w·μ_p).
/// At w = 0 the location is exactly 0 (sign(0) = 0), as in the reference.
pub fn warm_up_prior(learned: &LaplaceParams, w: f32) -> LaplaceParams {
    LaplaceParams {
        logscale: learned
            .logscale
            .iter()
            .map(|&l| w * l + (1.0 - w) * SCALE_PRIOR_LN)
            .collect(),
        loc: learned
            .loc
            .iter()
            .map(|&m| w * m + (1.0 - w) * SHIFT_PRIOR * sign(w * m))
            .collect(),
    }
}
