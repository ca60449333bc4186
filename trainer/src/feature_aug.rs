//! The paper's feature-space augmentation ablations (`simclr-gaussian`, `simclr-mixup`): naive
//! augmentations of the backbone features z0 that take the place of ManifoldCLR's learned
//! operators, T(c) z0, in the same contrastive term.
//!
//! The reference (`src/model/contrastive/header.py`, `ContrastiveHeader.forward`) computes, with
//! `z0, z1` the backbone features (B, d) of the two views, before any projection head:
//!
//! ```python
//! elif self.header_cfg.enable_mixup_augmentation:
//!     mixup = torch.rand(len(z0), device=z0.device)
//!     z0_aug = mixup*z1 + (1-mixup)*z0
//! elif self.header_cfg.enable_gaussian_augmentation:
//!     dist = torch.linalg.norm(z0 - z1, dim=-1).detach()
//!     noise = torch.randn(len(z0), device=z0.device) * torch.sqrt(dist)
//!     z0_aug = z0 + noise
//! ```
//!
//! `mixup` and `noise` have shape (B,), which broadcasts against (B, d) along the *feature* axis:
//! it runs only because the reference's batch size equals d (512), and then column j gets
//! `mixup[j]` (resp. `noise[j]`, whose std is sqrt of sample j's distance) in every row. That is
//! per-dimension mixing by accident. This module mixes per sample by default (one λ per row; for
//! the noise, independent N(0, 1) entries scaled by the row's own sqrt-distance) and offers the
//! reference's broadcast as [`Layout::PerDimension`]. The mixup partner is the other view z1 of
//! the same image (no permutation of the batch), as in the reference. Gradients flow through z0
//! and (for mixup) z1; the distance that sets the noise scale is detached, as in the reference.

use candle_core::{D, Result, Tensor, bail};

/// How the random values are laid over the (B, d) features.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One λ per row (mixup); independent noise per entry with the row's scale (Gaussian).
    PerSample,
    /// The reference's broadcast: one value per feature dimension j, shared by every row, whose
    /// Gaussian scale is that of sample j. Needs B = d.
    PerDimension,
}

impl Layout {
    /// [`Layout::PerDimension`] when `per_dimension`, else [`Layout::PerSample`].
    pub fn from_flag(per_dimension: bool) -> Self {
        if per_dimension {
            Self::PerDimension
        } else {
            Self::PerSample
        }
    }

    /// The shape of the random draw for (B, d) features: (B, 1) mixup weights / (B, d) noise per
    /// sample, (1, d) for both per dimension (after checking B = d).
    pub fn draw_shape(self, b: usize, d: usize, gaussian: bool) -> Result<(usize, usize)> {
        match self {
            Self::PerSample if gaussian => Ok((b, d)),
            Self::PerSample => Ok((b, 1)),
            Self::PerDimension if b == d => Ok((1, d)),
            Self::PerDimension => bail!(
                "per-dimension feature augmentation broadcasts one draw per sample over the \
                 feature axis, as the reference does, so it needs batch size = feature dimension; \
                 got B = {b}, d = {d}"
            ),
        }
    }
}

/// Gaussian feature noise: `z0 + scale · sqrt(‖z0 − z1‖₂) · ε`, the distance detached.
///
/// Per sample, `eps` is (B, d) standard normal and row i is scaled by sample i's distance. Per
/// dimension (the reference), `eps` is (1, d) with d = B and column j gets `eps_j` scaled by
/// sample j's distance, the same in every row. `z0`, `z1`: (B, d). Gradients reach `z0` only.
pub fn gaussian_noise(
    z0: &Tensor,
    z1: &Tensor,
    eps: &Tensor,
    scale: f64,
    layout: Layout,
) -> Result<Tensor> {
    let (b, d) = z0.dims2()?;
    if z1.dims() != [b, d] {
        bail!("`z1` has shape {:?} but `z0` has ({b}, {d})", z1.dims());
    }
    let expected = layout.draw_shape(b, d, true)?;
    if eps.dims2()? != expected {
        bail!(
            "`eps` must be {expected:?} for {layout:?}, got {:?}",
            eps.dims()
        );
    }
    // sqrt(‖z0 − z1‖₂) per sample, (B, 1), without gradient.
    let std = (z0.detach() - z1.detach())?
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .sqrt()?
        .affine(scale, 0.0)?;
    let std = match layout {
        Layout::PerSample => std,
        Layout::PerDimension => std.reshape((1, b))?,
    };
    let noise = eps.detach().to_dtype(z0.dtype())?.broadcast_mul(&std)?;
    z0.broadcast_add(&noise)
}

/// Feature mixup with the other view: `λ ⊙ z1 + (1 − λ) ⊙ z0`.
///
/// Per sample, `lambda` is (B, 1): every dimension of row i uses λ_i. Per dimension (the
/// reference), `lambda` is (1, d) with d = B: column j uses λ_j in every row. `z0`, `z1`: (B, d).
/// Gradients reach both views; λ is a constant.
pub fn mixup(z0: &Tensor, z1: &Tensor, lambda: &Tensor, layout: Layout) -> Result<Tensor> {
    let (b, d) = z0.dims2()?;
    if z1.dims() != [b, d] {
        bail!("`z1` has shape {:?} but `z0` has ({b}, {d})", z1.dims());
    }
    let expected = layout.draw_shape(b, d, false)?;
    if lambda.dims2()? != expected {
        bail!(
            "`lambda` must be {expected:?} for {layout:?}, got {:?}",
            lambda.dims()
        );
    }
    let lambda = lambda.detach().to_dtype(z0.dtype())?;
    let keep = lambda.affine(-1.0, 1.0)?;
    z1.broadcast_mul(&lambda)? + z0.broadcast_mul(&keep)?
}
