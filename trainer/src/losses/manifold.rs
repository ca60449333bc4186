//! Manifold matching and the encoder-location penalty (docs/method.md §6).

use candle_core::{Result, Tensor, bail};

use super::{ensure_same_shape, matrix_dims};

/// Manifold-matching loss `L_m = mean (T(c) z0 − sg z1)²` over every element.
///
/// `z_hat` = T(c) z0 comes from the caller (neither z0 nor Ψ detached, so the loss trains the
/// backbone, the operators and the encoder); `z1` is detached here, as docs/method.md §6 prescribes. Both
/// must have the same shape.
pub fn manifold_matching(z_hat: &Tensor, z1: &Tensor) -> Result<Tensor> {
    ensure_same_shape("z1", z1, "z_hat", z_hat)?;
    if z_hat.elem_count() == 0 {
        bail!("`z_hat` is empty (shape {:?})", z_hat.dims());
    }
    (z_hat - z1.detach())?.sqr()?.mean_all()
}

/// Encoder-location L2 penalty `mean_b Σ_m μ_bm²` on the encoder's locations `mu` (B, M). It keeps
/// the inferred coefficients near 0 so that T(c) stays close to the identity (docs/method.md §6, weighted by
/// `w_shift` in head and thresholded configs).
pub fn encoder_location_l2(mu: &Tensor) -> Result<Tensor> {
    let (b, _) = matrix_dims("mu", mu)?;
    if b == 0 {
        bail!("`mu` has no rows");
    }
    mu.sqr()?.sum_all()?.affine(1.0 / b as f64, 0.0)
}
