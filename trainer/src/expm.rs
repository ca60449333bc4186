//! Differentiable, batched matrix exponential on candle tensors.
//!
//! The transport operator `T(c) = blockdiag_k expm(Σ_m c_m Ψ[m,k])` (docs/method.md §2) needs thousands of
//! n×n exponentials per step, and their gradients with respect to both Ψ and c. candle has no
//! `matrix_exp`, so this module provides one, in two implementations of the same algorithm as the
//! CPU reference [`mclr_shared::expm`] and the viewer's shader (so the three agree to rounding):
//! 1. trace shift `expm(A) = e^μ · expm(A − μI)` with μ = tr(A)/n per matrix;
//! 2. a plan (Taylor degree, squaring count s) from [`mclr_shared::expm::plan`] on the 1-norm of
//!    each shifted matrix;
//! 3. the Taylor polynomial of `(A − μI)/2ˢ`, evaluated by Paterson–Stockmeyer in powers of A⁴;
//! 4. s squarings, then the scalar factor e^μ.
//!
//! **On the CPU** ([`expm`]) it is a custom op. The forward pass is [`mclr_shared::expm`]'s
//! algorithm step for step, one matrix per task on rayon's pool, each with its own plan, with the
//! matrix products on the `gemm` crate (SIMD-dispatched at run time; the shared crate's portable
//! loops are for the browser). The backward pass is the adjoint of exactly those steps, written
//! out: for every matrix it replays the forward recurrences
//! (powers X, X², X³, X⁴, the Paterson–Stockmeyer partial sums and the squaring chain, all in a
//! per-thread workspace that stays in cache) and runs them backwards, `d(PQ) = dP·Q + P·dQ`
//! transposed. Replaying instead of saving keeps memory at one workspace per thread, where saving
//! the ~10 intermediates of 2·B·K = 8192 matrices of 64×64 would hold about 1.3 GB per step; the
//! replay costs a third of the backward's products. Nothing is read back from the device.
//!
//! **Elsewhere** (CUDA; and [`expm_composite`] everywhere, kept as the test oracle) it is built
//! from candle ops and differentiated by candle's autograd. To keep the whole batch in lock step
//! (a handful of large batched matmuls, which is what a GPU wants), one Taylor degree serves the
//! batch: the largest any of its matrices' plans asks for. A higher degree than a matrix's own
//! plan only shrinks its truncation error further. The squaring count stays **per matrix**: each
//! matrix is scaled by its own 2^-s and joins the batch's squarings only for its last s steps (a
//! selection, not arithmetic, for the others). Squaring amplifies the polynomial's rounding error
//! about twofold per step, so giving every matrix the batch's largest count measurably loses
//! accuracy: at n = 64 a matrix of 1-norm 0.5 squared five times instead of zero is about 1e-5
//! off in f32 instead of 1e-6. The plan's norms are read back once per call (through
//! [`crate::readback`], which counts it): the only device-to-host read of a training step off
//! the CPU, where a plan computed on the device would have to fix the number of squarings in
//! advance for every matrix.
//!
//! Gradients: the plan depends on A only through a piecewise-constant choice, so both versions
//! differentiate the approximant `e^μ · P(A/2ˢ)^(2ˢ)` exactly. Because the polynomial's
//! truncation error is below the unit roundoff, that derivative agrees with the true Fréchet
//! derivative of expm (the block identity `d expm(A)ᵀ[G] = [expm([[Aᵀ, G], [0, Aᵀ]])]₁₂` of
//! docs/method.md §3) to rounding error; the tests check both that and central finite differences in f64.

use std::any::TypeId;

use candle_core::{
    CpuStorage, CustomOp1, CustomOp3, DType, Device, Layout, Result, Shape, Tensor, bail,
};
use mclr_shared::expm::{ExpmPlan, norm1, plan};
use rayon::prelude::*;

use crate::model::matmul::{Element, MatRef, Threads, contiguous_values, matmul};

/// Matrix exponential of every n×n matrix in `a`, differentiable with respect to `a`.
///
/// `a` has shape (..., n, n) with any number of leading batch axes (for the transport operator
/// (B, K, n, n) or (S, B, K, n, n)) and dtype f32 or f64; the result has the same shape and dtype.
/// On the CPU this is the custom op of the module documentation; elsewhere [`expm_composite`].
///
/// # Errors
/// If `a` is not a batch of square matrices, is not f32/f64, or holds NaN or infinite values
/// (the squaring count would be undefined); the message names the argument `a`.
pub fn expm(a: &Tensor) -> Result<Tensor> {
    let (rows, n) = check_square_batch(a)?;
    if !a.device().is_cpu() {
        return expm_composite(a);
    }
    if rows == 0 {
        return a.zeros_like();
    }
    a.contiguous()?.apply_op1(ExpmOp { n })
}

/// The matrix exponential of [`expm`] built from candle ops and differentiated by candle's
/// autograd: what runs on devices other than the CPU, and the tests' oracle for the CPU op.
/// Degree and squaring counts come from the trace-shifted 1-norms, read back from the device once.
///
/// # Errors
/// As [`expm`].
pub fn expm_composite(a: &Tensor) -> Result<Tensor> {
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
        let mut stats = crate::readback::to_f64s(&Tensor::cat(&[columns.max(1)?, finite], 0)?)?;
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

/// The CPU forward pass: [`mclr_shared::expm`]'s algorithm on n×n matrices, with the products on
/// the `gemm` crate (the backward pass replays exactly these steps).
struct ExpmOp {
    n: usize,
}

/// The CPU backward pass: (A, E = expm(A), G) → Ā, the adjoint of [`ExpmOp`] at A applied to G.
struct ExpmBackward {
    n: usize,
}

/// expm of every n×n matrix of `a`, one matrix per task on rayon's pool.
fn forward_batch<T: Element>(a: &[T], n: usize) -> Result<Vec<T>> {
    let nn = n * n;
    if nn == 0 || !a.len().is_multiple_of(nn) {
        bail!("expm: argument `a` must hold whole {n}×{n} matrices");
    }
    let mut out = vec![T::ZERO; a.len()];
    out.par_chunks_exact_mut(nn)
        .zip(a.par_chunks_exact(nn))
        .try_for_each_init(
            || Workspace::new(n),
            |ws, (out, a)| forward_one(a, n, out, ws),
        )?;
    Ok(out)
}

impl CustomOp1 for ExpmOp {
    fn name(&self) -> &'static str {
        "mclr-expm"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = match storage {
            CpuStorage::F32(a) => CpuStorage::F32(forward_batch(
                contiguous_values(a, layout, "expm")?,
                self.n,
            )?),
            CpuStorage::F64(a) => CpuStorage::F64(forward_batch(
                contiguous_values(a, layout, "expm")?,
                self.n,
            )?),
            _ => bail!("expm: argument `a` must be f32 or f64"),
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, a: &Tensor, e: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let grad = a.apply_op3_no_bwd(e, &g.contiguous()?, &ExpmBackward { n: self.n })?;
        Ok(Some(grad))
    }
}

impl CustomOp3 for ExpmBackward {
    fn name(&self) -> &'static str {
        "mclr-expm-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = self.n;
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(a), CpuStorage::F32(e), CpuStorage::F32(g)) => {
                CpuStorage::F32(adjoint_batch(
                    contiguous_values(a, l1, "expm")?,
                    contiguous_values(e, l2, "expm")?,
                    contiguous_values(g, l3, "expm")?,
                    n,
                )?)
            }
            (CpuStorage::F64(a), CpuStorage::F64(e), CpuStorage::F64(g)) => {
                CpuStorage::F64(adjoint_batch(
                    contiguous_values(a, l1, "expm")?,
                    contiguous_values(e, l2, "expm")?,
                    contiguous_values(g, l3, "expm")?,
                    n,
                )?)
            }
            _ => bail!("expm backward: A, E and G must all be f32 or all f64"),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// The plan [`mclr_shared::expm`] uses for a matrix of 1-norm `norm` in precision `T`.
fn plan_for<T: Element>(norm: f64) -> ExpmPlan {
    if TypeId::of::<T>() == TypeId::of::<f64>() {
        plan::<f64>(norm)
    } else {
        plan::<f32>(norm)
    }
}

/// Per-thread scratch of the backward pass: the replayed forward and the adjoints.
struct Workspace<T> {
    /// X, X², X³, X⁴.
    powers: [Vec<T>; 4],
    /// Paterson–Stockmeyer partial sums p_0 … p_{q−1}.
    partial: Vec<Vec<T>>,
    /// Squaring chain P_0 … P_{s−1}.
    chain: Vec<Vec<T>>,
    /// Adjoints of X, X², X³, X⁴.
    adjoints: [Vec<T>; 4],
    /// The running adjoint and a product buffer.
    g: Vec<T>,
    tmp: Vec<T>,
}

impl<T: Element> Workspace<T> {
    fn new(n: usize) -> Self {
        let z = || vec![T::ZERO; n * n];
        Self {
            powers: [z(), z(), z(), z()],
            partial: Vec::new(),
            chain: Vec::new(),
            adjoints: [z(), z(), z(), z()],
            g: z(),
            tmp: z(),
        }
    }
}

fn adjoint_batch<T: Element>(a: &[T], e: &[T], g: &[T], n: usize) -> Result<Vec<T>> {
    let nn = n * n;
    if nn == 0 || !a.len().is_multiple_of(nn) || e.len() != a.len() || g.len() != a.len() {
        bail!("expm backward: A, E and G must hold the same whole number of {n}×{n} matrices");
    }
    let mut out = vec![T::ZERO; a.len()];
    out.par_chunks_exact_mut(nn)
        .zip(a.par_chunks_exact(nn))
        .zip(e.par_chunks_exact(nn).zip(g.par_chunks_exact(nn)))
        .try_for_each_init(
            || Workspace::new(n),
            |ws, ((out, a), (e, g))| adjoint_one(a, e, g, n, out, ws),
        )?;
    Ok(out)
}

/// Taylor coefficient 1/j! in `T`.
fn coef<T: Element>(j: usize) -> T {
    T::from_f64(coefficient(j))
}

/// `dst (+)= op(a) · op(b)` for n×n row-major matrices, `op` transposing where asked.
fn mm<T: Element>(
    dst: &mut [T],
    a: &[T],
    a_t: bool,
    b: &[T],
    b_t: bool,
    accumulate: bool,
    n: usize,
) -> Result<()> {
    fn view<T>(m: &[T], n: usize, transpose: bool) -> MatRef<'_, T> {
        let v = MatRef::row_major(m, n, n);
        if transpose { v.t() } else { v }
    }
    matmul(
        dst,
        view(a, n, a_t),
        view(b, n, b_t),
        accumulate,
        Threads::One,
    )
}

/// What [`replay`] leaves besides the workspace: the trace shift, the plan's scale 2^-s, the
/// squaring count and the number of Paterson–Stockmeyer steps.
struct Replay {
    mu: f64,
    scale: f64,
    squarings: usize,
    steps: usize,
}

/// The forward pass of [`mclr_shared::expm`] at `a`, keeping every intermediate in `ws`: the
/// powers of X = (A − μI)/2ˢ, the Paterson–Stockmeyer partial sums p_i and the squaring chain,
/// whose last square is P_s (`ws.g` on return) with expm(A) = e^μ · P_s.
fn replay<T: Element>(a: &[T], n: usize, ws: &mut Workspace<T>) -> Result<Replay> {
    let nn = n * n;
    let mu = a.iter().step_by(n + 1).map(|x| x.to_f64()).sum::<f64>() / n as f64;
    let [x, x2, x3, x4] = &mut ws.powers;
    for (i, (xi, &ai)) in x.iter_mut().zip(a).enumerate() {
        *xi = if i % (n + 1) == 0 {
            T::from_f64(ai.to_f64() - mu)
        } else {
            ai
        };
    }
    let as_f64: Vec<f64> = x.iter().map(|v| v.to_f64()).collect();
    let norm = norm1(&as_f64, n);
    if !norm.is_finite() || !mu.is_finite() {
        bail!("expm: argument `a` holds NaN or infinite values");
    }
    let ExpmPlan { degree, squarings } = plan_for::<T>(norm);
    let s = squarings as usize;
    let scale = T::from_f64(f64::powi(0.5, squarings as i32));
    for v in x.iter_mut() {
        *v = *v * scale;
    }
    mm(x2, x, false, x, false, false, n)?;
    mm(x3, x2, false, x, false, false, n)?;
    mm(x4, x2, false, x2, false, false, n)?;
    let q = (degree / 4).max(1);
    ws.partial.resize_with(q, || vec![T::ZERO; nn]);
    ws.chain
        .resize_with(s.max(ws.chain.len()), || vec![T::ZERO; nn]);
    // p_{q−1} = c_{4q} X⁴ + B_{q−1}; p_i = X⁴ p_{i+1} + B_i, B_i = Σ_{r<4} c_{4i+r} Xʳ.
    let add_chunk = |dst: &mut [T], i: usize, x: &[T], x2: &[T], x3: &[T]| {
        let (c0, c1, c2, c3) = (
            coef::<T>(4 * i),
            coef::<T>(4 * i + 1),
            coef::<T>(4 * i + 2),
            coef::<T>(4 * i + 3),
        );
        for (idx, d) in dst.iter_mut().enumerate() {
            let diag = if idx % (n + 1) == 0 { c0 } else { T::ZERO };
            *d += diag + c1 * x[idx] + c2 * x2[idx] + c3 * x3[idx];
        }
    };
    {
        let top = coef::<T>(4 * q);
        let last = &mut ws.partial[q - 1];
        for (d, &v) in last.iter_mut().zip(x4.iter()) {
            *d = top * v;
        }
        add_chunk(last, q - 1, x, x2, x3);
    }
    for i in (0..q - 1).rev() {
        let (lo, hi) = ws.partial.split_at_mut(i + 1);
        mm(&mut lo[i], x4, false, &hi[0], false, false, n)?;
        add_chunk(&mut lo[i], i, x, x2, x3);
    }
    for j in 0..s {
        if j == 0 {
            ws.chain[0].copy_from_slice(&ws.partial[0]);
        } else {
            let (lo, hi) = ws.chain.split_at_mut(j);
            mm(&mut hi[0], &lo[j - 1], false, &lo[j - 1], false, false, n)?;
        }
    }
    // P_s, the last square (or p_0 itself without squarings).
    match ws.chain[..s].last() {
        Some(p) => mm(&mut ws.g, p, false, p, false, false, n)?,
        None => ws.g.copy_from_slice(&ws.partial[0]),
    }
    Ok(Replay {
        mu,
        scale: scale.to_f64(),
        squarings: s,
        steps: q,
    })
}

/// expm of one matrix into `out` (see [`replay`]).
fn forward_one<T: Element>(a: &[T], n: usize, out: &mut [T], ws: &mut Workspace<T>) -> Result<()> {
    let Replay { mu, .. } = replay(a, n, ws)?;
    let factor = mu.exp();
    for (o, &p) in out.iter_mut().zip(&ws.g) {
        *o = T::from_f64(p.to_f64() * factor);
    }
    Ok(())
}

/// Ā for one matrix: [`replay`]s the forward pass at `a`, then runs it backwards from G (see the
/// module documentation for the recurrences).
fn adjoint_one<T: Element>(
    a: &[T],
    e: &[T],
    g: &[T],
    n: usize,
    out: &mut [T],
    ws: &mut Workspace<T>,
) -> Result<()> {
    let Replay {
        mu,
        scale,
        squarings: s,
        steps: q,
    } = replay(a, n, ws)?;
    let scale = T::from_f64(scale);
    let [x, x2, _, x4] = &mut ws.powers;

    // Backward. E = e^μ P_s: dL/dμ (direct) = Σ G ⊙ E, and Ḡ = e^μ G.
    let dmu_direct: f64 = g.iter().zip(e).map(|(g, e)| g.to_f64() * e.to_f64()).sum();
    let factor = mu.exp();
    for (d, &v) in ws.g.iter_mut().zip(g) {
        *d = T::from_f64(v.to_f64() * factor);
    }
    // Squarings P_{j+1} = P_j²: Ḡ ← Ḡ P_jᵀ + P_jᵀ Ḡ.
    for j in (0..s).rev() {
        let p = &ws.chain[j];
        mm(&mut ws.tmp, &ws.g, false, p, true, false, n)?;
        mm(&mut ws.tmp, p, true, &ws.g, false, true, n)?;
        std::mem::swap(&mut ws.g, &mut ws.tmp);
    }
    // Paterson–Stockmeyer backwards from p_0.
    let [xb, x2b, x3b, x4b] = &mut ws.adjoints;
    for v in [&mut *xb, &mut *x2b, &mut *x3b, &mut *x4b] {
        v.fill(T::ZERO);
    }
    let add_chunk_adjoint = |i: usize, gbar: &[T], xb: &mut [T], x2b: &mut [T], x3b: &mut [T]| {
        let (c1, c2, c3) = (
            coef::<T>(4 * i + 1),
            coef::<T>(4 * i + 2),
            coef::<T>(4 * i + 3),
        );
        for (((&gv, a1), a2), a3) in gbar
            .iter()
            .zip(xb.iter_mut())
            .zip(x2b.iter_mut())
            .zip(x3b.iter_mut())
        {
            *a1 += c1 * gv;
            *a2 += c2 * gv;
            *a3 += c3 * gv;
        }
    };
    for i in 0..q - 1 {
        add_chunk_adjoint(i, &ws.g, xb, x2b, x3b);
        mm(x4b, &ws.g, false, &ws.partial[i + 1], true, true, n)?;
        mm(&mut ws.tmp, x4, true, &ws.g, false, false, n)?;
        std::mem::swap(&mut ws.g, &mut ws.tmp);
    }
    add_chunk_adjoint(q - 1, &ws.g, xb, x2b, x3b);
    let top = coef::<T>(4 * q);
    for (d, &v) in x4b.iter_mut().zip(&ws.g) {
        *d += top * v;
    }
    // X⁴ = X²X², X³ = X²X, X² = XX.
    mm(x2b, x4b, false, x2, true, true, n)?;
    mm(x2b, x2, true, x4b, false, true, n)?;
    mm(x2b, x3b, false, x, true, true, n)?;
    mm(xb, x2, true, x3b, false, true, n)?;
    mm(xb, x2b, false, x, true, true, n)?;
    mm(xb, x, true, x2b, false, true, n)?;
    // S̄ = X̄/2ˢ; Ā = S̄ + (dL/dμ − tr S̄)/n · I.
    let trace: f64 = xb.iter().step_by(n + 1).map(|v| v.to_f64()).sum::<f64>() * scale.to_f64();
    let diag = T::from_f64((dmu_direct - trace) / n as f64);
    for (i, (o, &v)) in out.iter_mut().zip(xb.iter()).enumerate() {
        *o = v * scale + if i % (n + 1) == 0 { diag } else { T::ZERO };
    }
    Ok(())
}
