//! Laplace sampling of coefficients with the soft threshold (docs/method.md §5, fixtures README §c).

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use super::sign;
use crate::{Error, Result};

/// Clamp applied to `1 − 2|u|` before its logarithm, so u = ±½ gives a finite deviation.
pub const NOISE_LOG_CLAMP: (f32, f32) = (1e-6, 1e6);

/// The Laplace deviation ε = −b·sign(u)·ln(clamp(1 − 2|u|)) for centred uniform noise
/// u ∈ [−½, ½) and scale b = exp(`logscale`). Positive u gives a positive deviation; u = 0 gives 0.
pub fn laplace_deviation(u: f32, logscale: f32) -> f32 {
    -logscale.exp()
        * sign(u)
        * (1.0 - 2.0 * u.abs())
            .clamp(NOISE_LOG_CLAMP.0, NOISE_LOG_CLAMP.1)
            .ln()
}

/// The soft threshold's forward value: `μ + sign(ε)(|ε| − ζ)` where `|ε| > ζ`, otherwise exactly
/// 0 (not μ). It acts on the deviation, as the released code does; ε = 0 gives 0 even for ζ = 0.
/// (In training the gradient passes straight through as if the result were μ + ε.)
pub fn soft_threshold(loc: f32, eps: f32, zeta: f32) -> f32 {
    let shrunk = eps.signum() * (eps.abs() - zeta).max(0.0);
    if shrunk == 0.0 { 0.0 } else { loc + shrunk }
}

/// One coefficient sample from Laplace(`loc`, exp(`logscale`)) with threshold `zeta`, given
/// centred noise `u`.
pub fn reparameterize(loc: f32, logscale: f32, u: f32, zeta: f32) -> f32 {
    soft_threshold(loc, laplace_deviation(u, logscale), zeta)
}

/// Seeded coefficient sampler: the same seed gives the same samples on every platform
/// (ChaCha8), which is what lets a shared viewer link reproduce a prior-sample cloud.
#[derive(Debug, Clone)]
pub struct LaplaceSampler {
    rng: ChaCha8Rng,
}

impl LaplaceSampler {
    /// A sampler whose stream is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// Centred uniform noise u ∈ [−½, ½) on the f32 grid of 2⁻²⁴, matching `U[0,1) − ½`.
    pub fn noise(&mut self) -> f32 {
        (self.rng.next_u32() >> 8) as f32 * (1.0 / 16_777_216.0) - 0.5
    }

    /// `samples` draws for each coefficient of the distribution (`loc`, `logscale`), laid out as
    /// (samples, len) with the threshold `zeta` applied.
    pub fn sample(
        &mut self,
        loc: &[f32],
        logscale: &[f32],
        zeta: f32,
        samples: usize,
    ) -> Result<Vec<f32>> {
        if loc.len() != logscale.len() {
            return Err(Error::shape("logscale", &[loc.len()], &[logscale.len()]));
        }
        if !(zeta.is_finite() && zeta >= 0.0) {
            return Err(Error::invalid(
                "threshold",
                format!("must be finite and >= 0, got {zeta}"),
            ));
        }
        let mut out = Vec::with_capacity(samples.saturating_mul(loc.len()));
        for _ in 0..samples {
            for (&mu, &ls) in loc.iter().zip(logscale) {
                let u = self.noise();
                out.push(reparameterize(mu, ls, u, zeta));
            }
        }
        Ok(out)
    }
}
