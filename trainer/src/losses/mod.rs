//! The training losses of docs/method.md §6 on candle tensors: the contrastive terms (Lie-InfoNCE in MSE
//! mode, cosine NT-Xent, the SimCLR baseline), manifold matching, the Laplace KL with its weight
//! warm-up, and the encoder-location L2 penalty.
//!
//! Every loss returns a differentiable f32 scalar (a 0-d tensor) reduced as docs/method.md §6 says, and
//! matches the authors' functions recorded in `fixtures/reference/` (README §a, §b, §f) in value
//! and gradient. Shape mistakes are reported through `candle_core::bail!` naming the argument.

mod contrastive;
mod kl;
mod manifold;

pub use contrastive::{
    CONTRASTIVE_DENOMINATOR_EPS, NORMALIZE_EPS, l2_normalize, lie_infonce_mse, nt_xent_cosine,
    simclr_nt_xent,
};
pub use kl::{
    KL_ANNEAL_FLOOR, KL_ANNEAL_ITERS, KL_CYCLE_PERIOD, KL_CYCLE_RAMP_START, KL_EXPONENTIAL_ITERS,
    KL_EXPONENTIAL_START, KL_LINEAR_STEP, KlWarmup, KlWeightSchedule, kl_weight_exponential,
    laplace_kl, laplace_kl_per_sample,
};
pub use manifold::{encoder_location_l2, manifold_matching};

use candle_core::{D, Result, Tensor, bail};

/// Checks that `t` is a matrix and returns its (rows, cols); `name` is the argument reported.
fn matrix_dims(name: &str, t: &Tensor) -> Result<(usize, usize)> {
    match t.dims() {
        &[rows, cols] => Ok((rows, cols)),
        other => bail!("`{name}` must be a (rows, features) matrix, got shape {other:?}"),
    }
}

/// Checks that `t` has exactly the shape of `reference`.
fn ensure_same_shape(
    name: &str,
    t: &Tensor,
    reference_name: &str,
    reference: &Tensor,
) -> Result<()> {
    if t.dims() != reference.dims() {
        bail!(
            "`{name}` has shape {:?} but `{reference_name}` has shape {:?}; they must match",
            t.dims(),
            reference.dims()
        );
    }
    Ok(())
}

/// Checks a temperature: finite and strictly positive.
fn ensure_temperature(tau: f64) -> Result<()> {
    if !(tau.is_finite() && tau > 0.0) {
        bail!("`tau` must be finite and > 0, got {tau}");
    }
    Ok(())
}

/// Row-wise `ln(Σ_c exp(logits[r, c]) + extra)` for a (rows, cols) matrix and a constant
/// `extra ≥ 0`, computed stably: the shift is the (detached) row maximum over the logits and
/// `ln extra`, so nothing overflows and the gradient is exactly the softmax weights. `extra` is the
/// reference's `+ 1e-6` in the contrastive denominators, folded in as one more "column" of value
/// `ln extra` that receives no gradient. Entries of −∞ (masked columns) contribute 0.
fn log_sum_exp_plus(logits: &Tensor, extra: f64) -> Result<Tensor> {
    let ln_extra = extra.ln();
    let shift = logits.max_keepdim(D::Minus1)?.maximum(ln_extra)?.detach();
    let sum = logits
        .broadcast_sub(&shift)?
        .exp()?
        .sum_keepdim(D::Minus1)?;
    let extra_term = shift.affine(-1.0, ln_extra)?.exp()?;
    ((sum + extra_term)?.log()? + shift)?.squeeze(D::Minus1)
}
