//! Differentiable, batched matrix exponential on candle tensors.
//!
//! The transport operator `T(c) = blockdiag_k expm(Σ_m c_m Ψ[m,k])` (SPEC §2) needs thousands of
//! n×n exponentials per step, and their gradients with respect to both Ψ and c. candle has no
//! `matrix_exp`, so this module builds one from candle ops (batched matmul, elementwise ops) and
//! lets candle's autograd differentiate it.
//!
//! It runs the same algorithm as the CPU reference [`mclr_shared::expm`] and the viewer's shader, so
//! the three agree to rounding:
//! 1. trace shift `expm(A) = e^μ · expm(A − μI)` with μ = tr(A)/n per matrix;
//! 2. a plan (Taylor degree, squaring count s) from [`mclr_shared::expm::plan`] on the 1-norm of
//!    each shifted matrix, read back from the device detached;
//! 3. the Taylor polynomial of `(A − μI)/2ˢ`, evaluated by Paterson–Stockmeyer in powers of A⁴;
//! 4. s squarings, then the scalar factor e^μ.
//!
//! To keep the whole batch in lock step (a handful of large batched matmuls instead of one small
//! program per matrix, which is what makes this fast on a GPU), one Taylor degree serves the batch:
//! the largest any of its matrices' plans asks for. A higher degree than a matrix's own plan only
//! shrinks its truncation error further, so this costs nothing in accuracy. The squaring count, on
//! the other hand, stays **per matrix**: each matrix is scaled by its own 2^-s and joins the
//! batch's squarings only for its last s steps (a selection, not arithmetic, for the others).
//! Squaring amplifies the polynomial's rounding error about twofold per step, so giving every
//! matrix the batch's largest count (what a single plan per batch would do) measurably loses
//! accuracy: at n = 64 a matrix of 1-norm 0.5 squared five times instead of zero is about 1e-5 off
//! in f32 instead of 1e-6. The matmul count is the same either way: that of the largest plan.
//!
//! Gradients: the plan depends on A only through a detached, piecewise-constant choice, so autograd
//! differentiates the approximant `e^μ · P(A/2ˢ)^(2ˢ)` exactly. Because the polynomial's truncation
//! error is below the unit roundoff, that derivative agrees with the true Fréchet derivative of expm
//! (the block identity `d expm(A)ᵀ[G] = [expm([[Aᵀ, G], [0, Aᵀ]])]₁₂` of SPEC §3) to rounding error;
//! the tests check both that and central finite differences in f64.

use candle_core::{DType, Device, Result, Tensor, bail};
use mclr_shared::expm::plan;

/// Matrix exponential of every n×n matrix in `a`, differentiable with respect to `a`.
///
/// `a` has shape (..., n, n) with any number of leading batch axes (for the transport operator
/// (B, K, n, n) or (S, B, K, n, n)) and dtype f32 or f64; the result has the same shape and dtype.
/// Degree and squaring counts come from the trace-shifted 1-norms (see the module documentation),
/// so this call synchronises with the device once to read those norms back.
///
/// # Errors
/// If `a` is not a batch of square matrices, is not f32/f64, or holds NaN or infinite values
/// (the squaring count would be undefined); the message names the argument `a`.
pub fn expm(a: &Tensor) -> Result<Tensor> {
    let (rows, n) = check_square_batch(a)?;
    if rows == 0 {
        return a.zeros_like();
    }
    let dims = a.dims().to_vec();
    let a = a.reshape((rows, n, n))?;
    let dtype = a.dtype();
    let device = a.device().clone();
    let eye = Tensor::eye(n, dtype, &device)?;

    // Trace shift, differentiable: μ (R, 1, 1) and A − μI.
    let mu = (a.broadcast_mul(&eye)?.sum_keepdim((1, 2))? / n as f64)?;
    let shifted = a.broadcast_sub(&mu.broadcast_mul(&eye)?)?;

    let plan = BatchPlan::new(&shifted)?;
    let x = plan.scale(&shifted)?;
    let x2 = x.matmul(&x)?;
    let x3 = x2.matmul(&x)?;
    let x4 = x2.matmul(&x2)?;

    // Paterson–Stockmeyer: P = B_0 + X⁴(B_1 + X⁴(… + X⁴(B_{q−1} + c_{4q} X⁴))),
    // with B_i = c_{4i} I + c_{4i+1} X + c_{4i+2} X² + c_{4i+3} X³ and c_j = 1/j!.
    let q = (plan.degree / 4).max(1);
    let chunk = |i: usize| -> Result<Tensor> {
        let sum = ((x.affine(coefficient(4 * i + 1), 0.0)?
            + x2.affine(coefficient(4 * i + 2), 0.0)?)?
            + x3.affine(coefficient(4 * i + 3), 0.0)?)?;
        sum.broadcast_add(&eye.affine(coefficient(4 * i), 0.0)?)
    };
    let mut p = (x4.affine(coefficient(4 * q), 0.0)? + chunk(q - 1)?)?;
    for i in (0..q - 1).rev() {
        p = (x4.matmul(&p)? + chunk(i)?)?;
    }
    for step in 0..plan.max_squarings {
        let squared = p.matmul(&p)?;
        p = match plan.squaring_mask(step, &device)? {
            None => squared,
            Some(mask) => mask.broadcast_as(p.shape())?.where_cond(&squared, &p)?,
        };
    }
    p.broadcast_mul(&mu.exp()?)?.reshape(dims)
}

/// Checks that `a` is a batch of square f32/f64 matrices (n ≥ 1); returns (R, n), R being the
/// number of matrices (0 for an empty batch).
fn check_square_batch(a: &Tensor) -> Result<(usize, usize)> {
    let dims = a.dims();
    let (n_rows, n_cols) = match dims {
        [.., r, c] => (*r, *c),
        _ => bail!("expm: argument `a` must have shape (..., n, n), found {dims:?}"),
    };
    if n_rows != n_cols || n_rows == 0 {
        bail!("expm: argument `a` must hold square n×n matrices with n ≥ 1, found shape {dims:?}");
    }
    if !matches!(a.dtype(), DType::F32 | DType::F64) {
        bail!(
            "expm: argument `a` must be f32 or f64, found {:?}",
            a.dtype()
        );
    }
    let rows = dims[..dims.len() - 2].iter().product();
    Ok((rows, n_rows))
}

/// How a batch is evaluated: one Taylor degree for all, one squaring count per matrix.
struct BatchPlan {
    /// The largest degree any matrix's own plan asks for.
    degree: usize,
    /// Squaring count of each matrix, from its own plan.
    squarings: Vec<u32>,
    /// The largest of `squarings`: the number of squaring steps the batch runs.
    max_squarings: u32,
    dtype: DType,
}

impl BatchPlan {
    /// Plans the batch `shifted` (R, n, n) from its 1-norms, read back detached in one transfer.
    /// Rejects non-finite input, whose squaring count would be undefined.
    fn new(shifted: &Tensor) -> Result<Self> {
        // Column sums of |A| per matrix: (R, n); their maximum is each matrix's 1-norm.
        let columns = shifted.detach().abs()?.sum(1)?;
        // 0·x is 0 for finite x and NaN for ±∞ or NaN, so this sum is 0 exactly when every column
        // sum is finite (a max reduction alone may skip NaN on some backends).
        let finite = columns.affine(0.0, 0.0)?.sum_all()?.reshape(1)?;
        let mut stats = Tensor::cat(&[columns.max(1)?, finite], 0)?
            .to_dtype(DType::F64)?
            .to_vec1::<f64>()?;
        let finite = stats.pop().unwrap_or(f64::NAN);
        if finite != 0.0 || stats.iter().any(|x| !x.is_finite()) {
            bail!("expm: argument `a` holds NaN or infinite values");
        }
        let dtype = shifted.dtype();
        let plans = stats.iter().map(|&norm| match dtype {
            DType::F64 => plan::<f64>(norm),
            _ => plan::<f32>(norm),
        });
        let (mut degree, mut squarings) = (0, Vec::with_capacity(stats.len()));
        for p in plans {
            degree = degree.max(p.degree);
            squarings.push(p.squarings);
        }
        let max_squarings = squarings.iter().copied().max().unwrap_or(0);
        Ok(Self {
            degree,
            squarings,
            max_squarings,
            dtype,
        })
    }

    /// `shifted / 2^s` with each matrix's own s (exact: powers of two).
    fn scale(&self, shifted: &Tensor) -> Result<Tensor> {
        let factor = |s: u32| f64::powi(0.5, s as i32);
        if self.squarings.iter().all(|&s| s == self.max_squarings) {
            return shifted.affine(factor(self.max_squarings), 0.0);
        }
        let factors: Vec<f64> = self.squarings.iter().map(|&s| factor(s)).collect();
        let factors = Tensor::from_vec(factors, (self.squarings.len(), 1, 1), shifted.device())?
            .to_dtype(self.dtype)?;
        shifted.broadcast_mul(&factors)
    }

    /// Which matrices square at `step` (0-based) of the batch's squarings, as an (R, 1, 1) u8
    /// mask; `None` when all do. A matrix with s squarings takes part in the last s steps, so
    /// until then it holds its polynomial value, whose norm is at most e^θ and cannot overflow.
    fn squaring_mask(&self, step: u32, device: &Device) -> Result<Option<Tensor>> {
        let remaining = self.max_squarings - step;
        if self.squarings.iter().all(|&s| s >= remaining) {
            return Ok(None);
        }
        let mask: Vec<u8> = self
            .squarings
            .iter()
            .map(|&s| u8::from(s >= remaining))
            .collect();
        Tensor::from_vec(mask, (self.squarings.len(), 1, 1), device).map(Some)
    }
}

/// Taylor coefficient 1/j!.
fn coefficient(j: usize) -> f64 {
    1.0 / (1..=j).map(|k| k as f64).product::<f64>()
}
