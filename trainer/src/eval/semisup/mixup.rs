//! Mixup's consistency term (ICT-style, per sample) and the `Beta(½, ½)` draws of its weights.

use candle_core::Tensor;

use super::{forward_tensors, softmax_rows};
use crate::Result;
use crate::augment::rng::StreamRng;
use crate::eval::invalid;

/// The per-row mix `λ_i a_i + (1 − λ_i) b_i` of `a` and `b` (`N × k`) with `lambda` (`N × 1`).
///
/// # Errors
/// [`Error::Candle`](crate::Error::Candle) if the shapes do not broadcast.
pub fn mix(a: &Tensor, b: &Tensor, lambda: &Tensor) -> Result<Tensor> {
    Ok((a.broadcast_mul(lambda)? + b.broadcast_mul(&lambda.affine(-1.0, 1.0)?)?)?)
}

/// Mixup's consistency term on the unlabelled batch `z_u` and its independent partner batch
/// `z_mix` (both `U × d`) with per-row weights `lambda` (`U × 1`):
/// `mean((softmax(clf(mix(z_u, z_mix))) − mix(softmax(ema(z_u)), softmax(ema(z_mix))))²)` over rows
/// and classes, where `clf` has the weights `online` and `ema` the weights `ema` (both
/// `[w1, b1, w2, b2]`), and the target carries no gradient.
///
/// # Errors
/// [`Error::InvalidSetting`](crate::Error::InvalidSetting) unless both weight lists have 4 tensors; [`Error::Candle`](crate::Error::Candle) on
/// mismatched shapes.
pub fn mixup_consistency(
    z_u: &Tensor,
    z_mix: &Tensor,
    lambda: &Tensor,
    online: &[Tensor],
    ema: &[Tensor],
) -> Result<Tensor> {
    let rows = z_u.dim(0)?;
    let both = forward_tensors(&Tensor::cat(&[z_u, z_mix], 0)?, ema)?.detach();
    let soft = candle_nn::ops::softmax_last_dim(&both)?;
    let target = mix(
        &soft.narrow(0, 0, rows)?,
        &soft.narrow(0, rows, z_mix.dim(0)?)?,
        lambda,
    )?
    .detach();
    let predicted = softmax_rows(&forward_tensors(&mix(z_u, z_mix, lambda)?, online)?)?;
    Ok((predicted - target)?.sqr()?.mean_all()?)
}

/// One draw of `Beta(a, b)` by Jöhnk's method, for shape parameters in `(0, 1]` (mixup uses
/// `a = b = 0.5`): with `U, V` uniform on `(0, 1]`, `X = U^(1/a)` and `Y = V^(1/b)` are accepted
/// when `X + Y ≤ 1`, and `X / (X + Y)` is then `Beta(a, b)` distributed. The test and the ratio are
/// computed from logarithms, so tiny `X` and `Y` cannot underflow to `0 / 0`. The acceptance rate
/// is `Γ(a + 1) Γ(b + 1) / Γ(a + b + 1)` (π/4 for `a = b = ½`), which is why larger parameters are
/// refused rather than sampled slowly.
///
/// # Errors
/// [`Error::InvalidSetting`](crate::Error::InvalidSetting) naming `beta shape` unless `0 < a ≤ 1` and `0 < b ≤ 1`.
pub fn sample_beta(rng: &mut StreamRng, a: f64, b: f64) -> Result<f64> {
    for shape in [a, b] {
        if !(shape > 0.0 && shape <= 1.0) {
            return Err(invalid("beta shape", "a number in (0, 1]", shape));
        }
    }
    loop {
        let log_x = (1.0 - rng.unit()).ln() / a;
        let log_y = (1.0 - rng.unit()).ln() / b;
        let log_sum = log_x.max(log_y) + (-(log_x - log_y).abs()).exp().ln_1p();
        if log_sum <= 0.0 {
            return Ok((log_x - log_sum).exp().clamp(0.0, 1.0));
        }
    }
}
