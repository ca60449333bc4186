//! Contrastive terms (docs/method.md §6, fixtures README §a): the MSE-mode Lie-InfoNCE used without a
//! projection head, and the cosine NT-Xent used with a head and by the SimCLR baseline.

use candle_core::{D, DType, Result, Tensor, bail};

use super::{ensure_same_shape, ensure_temperature, log_sum_exp_plus, matrix_dims};

/// The `+ 1e-6` the reference adds to every contrastive denominator, `−ln(pos / (Σ + 1e-6))`.
pub const CONTRASTIVE_DENOMINATOR_EPS: f64 = 1e-6;

/// Lower bound on the norm in [`l2_normalize`] (`F.normalize`'s default eps).
pub const NORMALIZE_EPS: f64 = 1e-12;

/// Row-wise L2 normalisation with `F.normalize(x, dim=-1, eps=1e-12)` semantics:
/// `x / max(‖x‖, 1e-12)`. The bound is applied to the squared norm before the square root
/// (`sqrt(max(‖x‖², eps²))`, the same value), so a zero row gets a zero output and a finite
/// gradient instead of the NaN that `sqrt` would give at 0.
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    if x.rank() == 0 {
        bail!("`x` must have a feature axis to normalise, got a scalar");
    }
    let norm = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .maximum(NORMALIZE_EPS * NORMALIZE_EPS)?
        .sqrt()?;
    x.broadcast_div(&norm)
}

/// Lie-InfoNCE in MSE mode, the contrastive term of ManifoldCLR without a projection head
/// (reference `lie_nt_xent_loss(z_aug, z1, z0, temperature=tau, mse=True)`).
///
/// Rows are R = [z_aug; z1] (2B), columns C = [z_aug; z1; z0] (3B), similarity
/// `s_rc = −mean_d (R_r − C_c)² / τ`. The positive of rows i and B+i is the pair (z_aug_i, z1_i).
/// The loss is the mean over the 2B rows of `−s_pos + ln(Σ_c exp(s_rc) + 1e-6)`. As in the
/// reference (quirk 1), each row's own column stays in its denominator: it contributes exp(0) = 1
/// and no gradient. Everything is computed in log space.
///
/// The (2B × 3B) squared distances use `‖R‖² + ‖C‖² − 2 R·Cᵀ` (one matmul instead of a
/// 2B·3B·d broadcast, which would be 3 GiB at B = d = 512), clamped at 0 against rounding; the
/// self distances are set to exactly 0 and the positives' numerators are computed from the
/// direct difference, so neither is subject to that cancellation.
///
/// `z_aug`, `z1`, `z0`: (B, d), same shape; `tau > 0`. Returns a scalar.
pub fn lie_infonce_mse(z_aug: &Tensor, z1: &Tensor, z0: &Tensor, tau: f64) -> Result<Tensor> {
    ensure_temperature(tau)?;
    let (b, d) = matrix_dims("z_aug", z_aug)?;
    ensure_same_shape("z1", z1, "z_aug", z_aug)?;
    ensure_same_shape("z0", z0, "z_aug", z_aug)?;
    if b == 0 || d == 0 {
        bail!(
            "`z_aug` must have at least one row and one feature, got shape {:?}",
            z_aug.dims()
        );
    }
    let scale = -1.0 / (d as f64 * tau);

    let rows = Tensor::cat(&[z_aug, z1], 0)?; // (2B, d)
    let rows_sq = rows.sqr()?.sum_keepdim(1)?; // (2B, 1)
    let z0_sq = z0.sqr()?.sum_keepdim(1)?; // (B, 1)

    // Squared distances to the first 2B columns (the rows themselves), self distances exactly 0.
    let gram_rr = rows.matmul(&rows.t()?)?;
    let dist_rr = pairwise_sq_dist(&rows_sq, &rows_sq, &gram_rr)?;
    let eye = Tensor::eye(2 * b, DType::U8, rows.device())?;
    let dist_rr = eye.where_cond(&dist_rr.zeros_like()?, &dist_rr)?;
    // Squared distances to the B extra negatives z0.
    let gram_r0 = rows.matmul(&z0.t()?)?;
    let dist_r0 = pairwise_sq_dist(&rows_sq, &z0_sq, &gram_r0)?;

    let logits = Tensor::cat(&[&dist_rr, &dist_r0], 1)?.affine(scale, 0.0)?; // (2B, 3B)
    let positive = (z_aug - z1)?.sqr()?.sum(1)?.affine(scale, 0.0)?; // (B,)
    let positive = Tensor::cat(&[&positive, &positive], 0)?; // (2B,)
    (log_sum_exp_plus(&logits, CONTRASTIVE_DENOMINATOR_EPS)? - positive)?.mean_all()
}

/// `max(‖a_r‖² + ‖b_c‖² − 2 a_r·b_c, 0)` from the row norms (R, 1), (C, 1) and the Gram (R, C).
fn pairwise_sq_dist(a_sq: &Tensor, b_sq: &Tensor, gram: &Tensor) -> Result<Tensor> {
    a_sq.broadcast_add(&b_sq.t()?)?
        .sub(&gram.affine(2.0, 0.0)?)?
        .relu()
}

/// Cosine NT-Xent between two views, the contrastive term of ManifoldCLR with a projection head
/// (`a` = proj(z_aug), `b` = proj(z1)) and of the SimCLR baseline.
///
/// Both inputs are L2-normalised inside ([`l2_normalize`]), so gradients flow through the
/// normalisation as in the reference. With Z = [â; b̂] (2B rows) and `s_ij = ẑ_i·ẑ_j / τ`, the loss
/// is the mean over the 2B rows of `−s_pos + ln(Σ_{j≠i} exp(s_ij) + 1e-6)`; the positive of row i
/// is the same sample's other view. This is the reference's `lie_nt_xent_loss(mse=False)`, whose
/// `− exp(‖x‖/τ)` self-term removal equals masking the diagonal for unit vectors (quirk 2); the
/// other two SimCLR implementations in the reference lack only the 1e-6 (≈ 3e-8 relative).
///
/// `a`, `b`: (B, d), same shape; `tau > 0`. Returns a scalar.
pub fn nt_xent_cosine(a: &Tensor, b: &Tensor, tau: f64) -> Result<Tensor> {
    ensure_temperature(tau)?;
    let (rows, d) = matrix_dims("a", a)?;
    ensure_same_shape("b", b, "a", a)?;
    if rows == 0 || d == 0 {
        bail!(
            "`a` must have at least one row and one feature, got shape {:?}",
            a.dims()
        );
    }
    let (a, b) = (l2_normalize(a)?, l2_normalize(b)?);
    let z = Tensor::cat(&[&a, &b], 0)?; // (2B, d)
    let sim = z.matmul(&z.t()?)?.affine(1.0 / tau, 0.0)?;
    let eye = Tensor::eye(2 * rows, DType::U8, z.device())?;
    let masked = Tensor::new(f32::NEG_INFINITY, z.device())?
        .to_dtype(sim.dtype())?
        .broadcast_as(sim.shape())?;
    let logits = eye.where_cond(&masked, &sim)?;
    let positive = (&a * &b)?.sum(1)?.affine(1.0 / tau, 0.0)?; // (B,)
    let positive = Tensor::cat(&[&positive, &positive], 0)?;
    (log_sum_exp_plus(&logits, CONTRASTIVE_DENOMINATOR_EPS)? - positive)?.mean_all()
}

/// The SimCLR baseline's loss (docs/method.md §6): cosine NT-Xent between the two views' projections
/// `h0` = proj(z0) and `h1` = proj(z1), or the backbone features themselves without a head.
/// Same function as [`nt_xent_cosine`]; this name is the entry point the baseline trainer calls.
pub fn simclr_nt_xent(h0: &Tensor, h1: &Tensor, tau: f64) -> Result<Tensor> {
    nt_xent_cosine(h0, h1, tau)
}
