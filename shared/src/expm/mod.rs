//! Batched matrix exponential of small square blocks, in f32 and f64.
//!
//! ManifoldCLR's transport operator is `T(c) = expm(Σ_m c_m Ψ_m)` applied block by block, so every
//! training step and every frame of the viewer exponentiates thousands of n×n blocks (n = 64). This
//! module is the CPU reference for that work: the trainer's differentiable expm and the viewer's
//! WGSL shader run the *same* algorithm and are tested against it.
//!
//! Algorithm (one for both precisions, chosen to map well onto a GPU): scaling and squaring around a
//! truncated Taylor series evaluated by Paterson–Stockmeyer in powers of A⁴.
//! * [`plan`] picks a degree D (a multiple of 4) and a squaring count s from `‖A‖₁` so that
//!   `‖A/2ˢ‖₁ ≤ θ_D`, at the fewest matrix products (D/4 + 2 + s), preferring fewer squarings;
//! * `P = Σ_{j≤D} (A/2ˢ)ʲ / j!`;
//! * `expm(A) ≈ P^(2ˢ)` by s squarings.
//!
//! Each θ_D keeps the series' truncation error `Σ_{j>D} θʲ/j!` under half the unit roundoff of
//! the precision (a test checks the tables). For f32 θ is also capped at 1: rounding in the
//! polynomial grows like `u·e^{2θ}` when eigenvalues are negative, and θ ≈ 1 balances that against
//! the error each squaring adds. An independent f64 Padé-13 implementation ([`expm_pade13`],
//! Higham 2005) is kept as the test oracle.
//!
//! [`expm_action`] computes `expm(A)·v` without forming `expm(A)`, for matrices used once on one
//! vector (the semi-supervised protocol's per-feature moves); it shares the trace shift and θ table.

use crate::{Error, Result};

mod action;

pub use action::expm_action;
pub(crate) use action::{ActionScratch, expm_action_in_place};

/// Floating-point types the exponential is implemented for (f32 and f64). Sealed.
pub trait Real:
    Copy
    + PartialOrd
    + Send
    + Sync
    + std::fmt::Debug
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::AddAssign
    + std::ops::MulAssign
    + private::Sealed
{
    /// Taylor degrees (multiples of 4, ascending) and the largest `‖A‖₁` each may be used for.
    const TAYLOR_TABLE: &'static [(usize, f64)];
    /// Unit roundoff u (half the machine epsilon): the action's series stops below it.
    const UNIT_ROUNDOFF: f64;
    /// Zero.
    const ZERO: Self;
    /// One.
    const ONE: Self;
    /// Conversion from f64 (rounding for f32).
    fn from_f64(x: f64) -> Self;
    /// Widening conversion to f64.
    fn to_f64(self) -> f64;
    /// Absolute value.
    fn abs(self) -> Self;
    /// Whether the value is NaN.
    fn is_nan(self) -> bool;
}

mod private {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

impl Real for f32 {
    const TAYLOR_TABLE: &'static [(usize, f64)] = &[(4, 0.08), (8, 0.6), (12, 1.0)];
    const UNIT_ROUNDOFF: f64 = f32::EPSILON as f64 / 2.0;
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn abs(self) -> Self {
        f32::abs(self)
    }
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
}

impl Real for f64 {
    const TAYLOR_TABLE: &'static [(usize, f64)] =
        &[(8, 0.064), (12, 0.317), (16, 0.79), (20, 1.45), (24, 2.26)];
    const UNIT_ROUNDOFF: f64 = f64::EPSILON / 2.0;
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn from_f64(x: f64) -> Self {
        x
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn abs(self) -> Self {
        f64::abs(self)
    }
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
}

/// The 1-norm (largest absolute column sum) of the row-major n×n matrix `a`.
///
/// This is the norm that picks the number of squarings; callers must pass exactly n² values.
pub fn norm1<T: Real>(a: &[T], n: usize) -> T {
    let mut col = vec![T::ZERO; n];
    for row in a.chunks_exact(n.max(1)) {
        for (acc, &x) in col.iter_mut().zip(row) {
            *acc += x.abs();
        }
    }
    // NaN propagates: a NaN column sum compares false and is kept by the fold below.
    col.into_iter()
        .fold(T::ZERO, |m, x| if x > m || x.is_nan() { x } else { m })
}

/// Number of squarings for a matrix of 1-norm `norm1` with threshold `theta`: the smallest
/// `s ≥ 0` with `norm1 / 2ˢ ≤ theta`. The trainer's differentiable expm uses the same rule on a
/// detached norm, and the WGSL shader mirrors it.
pub fn squarings(norm1: f64, theta: f64) -> u32 {
    if norm1 <= theta || norm1.is_nan() {
        return 0;
    }
    let mut s = (norm1 / theta).log2().ceil().max(0.0) as u32;
    // Guard against log2 rounding down at exact powers of two.
    while norm1 / f64::powi(2.0, s as i32) > theta {
        s += 1;
    }
    s
}

/// How one exponential is evaluated: Taylor degree and number of squarings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpmPlan {
    /// Degree D of the Taylor polynomial (a multiple of 4).
    pub degree: usize,
    /// Number of squarings s; the polynomial is evaluated at A/2ˢ.
    pub squarings: u32,
}

impl ExpmPlan {
    /// Matrix products the plan costs: A², A³, A⁴, D/4 − 1 Horner steps, s squarings.
    pub fn matrix_products(&self) -> u32 {
        (self.degree / 4 + 2) as u32 + self.squarings
    }
}

/// The cheapest plan for a matrix of 1-norm `norm1` in precision `T` (ties: fewer squarings).
/// The trainer's differentiable expm and the WGSL shader follow the same plan, so all three agree.
pub fn plan<T: Real>(norm1: f64) -> ExpmPlan {
    let mut best = ExpmPlan {
        degree: 12,
        squarings: u32::MAX,
    };
    for &(degree, theta) in T::TAYLOR_TABLE {
        let candidate = ExpmPlan {
            degree,
            squarings: squarings(norm1, theta),
        };
        let key = |p: &ExpmPlan| (p.matrix_products(), p.squarings);
        if best.squarings == u32::MAX || key(&candidate) < key(&best) {
            best = candidate;
        }
    }
    best
}

/// Exponential of one row-major n×n matrix.
pub fn expm<T: Real>(a: &[T], n: usize) -> Result<Vec<T>> {
    expm_batch(a, n)
}

/// Exponentials of a batch of row-major n×n matrices stored back to back (`a.len()` must be a
/// multiple of n²). Spread over threads when the `parallel` feature is on; results are identical
/// either way.
pub fn expm_batch<T: Real>(a: &[T], n: usize) -> Result<Vec<T>> {
    let mut out = vec![T::ZERO; a.len()];
    expm_batch_into(a, n, &mut out)?;
    Ok(out)
}

/// [`expm_batch`] writing into a caller-provided buffer of the same length as `a`, so hot loops
/// (the viewer's animation) allocate nothing per call.
pub fn expm_batch_into<T: Real>(a: &[T], n: usize, out: &mut [T]) -> Result<()> {
    let nn = check_batch(a.len(), n)?;
    if out.len() != a.len() {
        return Err(Error::shape("expm output", &[a.len()], &[out.len()]));
    }
    if nn == 0 {
        return Ok(());
    }
    let run = |ws: &mut Workspace<T>, (index, (a, out)): (usize, (&[T], &mut [T]))| {
        expm_one(a, n, out, ws).map_err(|v| Error::NonFinite {
            field: format!("expm input matrix {index}"),
            index: 0,
            value: v.to_string(),
        })
    };
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        a.par_chunks_exact(nn)
            .zip(out.par_chunks_exact_mut(nn))
            .enumerate()
            .try_for_each_init(|| Workspace::new(n), run)
    }
    #[cfg(not(feature = "parallel"))]
    {
        let mut ws = Workspace::new(n);
        a.chunks_exact(nn)
            .zip(out.chunks_exact_mut(nn))
            .enumerate()
            .try_for_each(|item| run(&mut ws, item))
    }
}

/// Checks that a buffer of `len` values holds whole n×n matrices; returns n².
fn check_batch(len: usize, n: usize) -> Result<usize> {
    let nn = n
        .checked_mul(n)
        .ok_or_else(|| Error::invalid("expm block size", format!("{n}×{n} overflows")))?;
    if n == 0 || !len.is_multiple_of(nn) {
        return Err(Error::invalid(
            "expm input",
            format!("{len} values are not a whole number of {n}×{n} matrices"),
        ));
    }
    Ok(nn)
}

/// Scratch matrices for one exponential, reused across a batch.
struct Workspace<T> {
    a: Vec<T>,
    a2: Vec<T>,
    a3: Vec<T>,
    a4: Vec<T>,
    tmp: Vec<T>,
}

impl<T: Real> Workspace<T> {
    fn new(n: usize) -> Self {
        let z = || vec![T::ZERO; n * n];
        Self {
            a: z(),
            a2: z(),
            a3: z(),
            a4: z(),
            tmp: z(),
        }
    }
}

/// `c = a · b` for row-major n×n matrices (i-k-j order so the inner loop vectorises).
pub(crate) fn matmul<T: Real>(a: &[T], b: &[T], c: &mut [T], n: usize) {
    for (c_row, a_row) in c.chunks_exact_mut(n).zip(a.chunks_exact(n)) {
        c_row.fill(T::ZERO);
        for (&aik, b_row) in a_row.iter().zip(b.chunks_exact(n)) {
            for (cij, &bkj) in c_row.iter_mut().zip(b_row) {
                *cij += aik * bkj;
            }
        }
    }
}

/// Exponential of one matrix into `out`. Returns the offending 1-norm if the input is not finite.
///
/// The trace is shifted out first (`expm(A) = e^μ · expm(A − μI)`, μ = tr A / n): it shrinks the
/// norm the plan sees, and a scalar factor is exact where squaring a decaying matrix is not.
fn expm_one<T: Real>(a: &[T], n: usize, out: &mut [T], ws: &mut Workspace<T>) -> Result<(), f64> {
    let trace: f64 = a.iter().step_by(n + 1).map(|x| x.to_f64()).sum();
    let mu = trace / n as f64;
    for (i, (x, &y)) in ws.a.iter_mut().zip(a).enumerate() {
        *x = if i % (n + 1) == 0 {
            T::from_f64(y.to_f64() - mu)
        } else {
            y
        };
    }
    let norm = norm1(&ws.a, n).to_f64();
    if !norm.is_finite() || !mu.is_finite() {
        return Err(if norm.is_finite() { mu } else { norm });
    }
    let ExpmPlan {
        degree,
        squarings: s,
    } = plan::<T>(norm);
    let scale = T::from_f64(f64::powi(0.5, s as i32));
    for x in &mut ws.a {
        *x *= scale;
    }
    matmul(&ws.a, &ws.a, &mut ws.a2, n);
    matmul(&ws.a2, &ws.a, &mut ws.a3, n);
    matmul(&ws.a2, &ws.a2, &mut ws.a4, n);

    // Paterson–Stockmeyer: P = B_0 + A⁴(B_1 + A⁴(… + A⁴(B_{q−1} + c_{4q} A⁴))),
    // with B_i = c_{4i} I + c_{4i+1} A + c_{4i+2} A² + c_{4i+3} A³ and c_j = 1/j!.
    let q = (degree / 4).max(1);
    let coef = |j: usize| T::from_f64(1.0 / factorial(j));
    let chunk = |i: usize, dst: &mut [T], ws: &Workspace<T>| {
        let (c0, c1, c2, c3) = (
            coef(4 * i),
            coef(4 * i + 1),
            coef(4 * i + 2),
            coef(4 * i + 3),
        );
        for (idx, d) in dst.iter_mut().enumerate() {
            let diag = if idx % (n + 1) == 0 { c0 } else { T::ZERO };
            *d += diag + c1 * ws.a[idx] + c2 * ws.a2[idx] + c3 * ws.a3[idx];
        }
    };
    let top = coef(4 * q);
    for (d, &x) in out.iter_mut().zip(&ws.a4) {
        *d = top * x;
    }
    chunk(q - 1, out, ws);
    for i in (0..q - 1).rev() {
        matmul(&ws.a4, out, &mut ws.tmp, n);
        out.copy_from_slice(&ws.tmp);
        chunk(i, out, ws);
    }
    for _ in 0..s {
        matmul(out, out, &mut ws.tmp, n);
        out.copy_from_slice(&ws.tmp);
    }
    if mu != 0.0 {
        let factor = T::from_f64(mu.exp());
        for x in out.iter_mut() {
            *x *= factor;
        }
    }
    Ok(())
}

fn factorial(j: usize) -> f64 {
    (1..=j).map(|k| k as f64).product()
}

/// Higham's (2005) scaling-and-squaring Padé-13 exponential in f64: the test oracle.
///
/// Independent of [`expm`]'s Taylor scheme on purpose, so that agreement between the two means
/// something. Slow (an LU solve per matrix); not for hot paths.
pub fn expm_pade13(a: &[f64], n: usize) -> Result<Vec<f64>> {
    let nn = check_batch(a.len(), n)?;
    let mut out = Vec::with_capacity(a.len());
    for (index, m) in a.chunks_exact(nn).enumerate() {
        out.extend(pade13_one(m, n).ok_or_else(|| {
            Error::invalid(
                format!("expm input matrix {index}"),
                "not finite, or the Padé denominator is singular",
            )
        })?);
    }
    Ok(out)
}

const PADE13: [f64; 14] = [
    64_764_752_532_480_000.0,
    32_382_376_266_240_000.0,
    7_771_770_303_897_600.0,
    1_187_353_796_428_800.0,
    129_060_195_264_000.0,
    10_559_470_521_600.0,
    670_442_572_800.0,
    33_522_128_640.0,
    1_323_241_920.0,
    40_840_800.0,
    960_960.0,
    16_380.0,
    182.0,
    1.0,
];
const THETA13: f64 = 5.371_920_351_148_152;

fn pade13_one(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let norm = norm1(a, n);
    if !norm.is_finite() {
        return None;
    }
    let s = squarings(norm, THETA13);
    let scale = f64::powi(0.5, s as i32);
    let a: Vec<f64> = a.iter().map(|x| x * scale).collect();
    let nn = n * n;
    let mut a2 = vec![0.0; nn];
    let mut a4 = vec![0.0; nn];
    let mut a6 = vec![0.0; nn];
    matmul(&a, &a, &mut a2, n);
    matmul(&a2, &a2, &mut a4, n);
    matmul(&a4, &a2, &mut a6, n);
    let b = &PADE13;
    let eye = |i: usize| if i.is_multiple_of(n + 1) { 1.0 } else { 0.0 };
    let lin = |c6: f64, c4: f64, c2: f64, c0: f64| -> Vec<f64> {
        (0..nn)
            .map(|i| c6 * a6[i] + c4 * a4[i] + c2 * a2[i] + c0 * eye(i))
            .collect()
    };
    // U = A [A6 (b13 A6 + b11 A4 + b9 A2) + b7 A6 + b5 A4 + b3 A2 + b1 I]
    let mut inner = vec![0.0; nn];
    matmul(&a6, &lin(b[13], b[11], b[9], 0.0), &mut inner, n);
    let rest = lin(b[7], b[5], b[3], b[1]);
    let sum: Vec<f64> = inner.iter().zip(&rest).map(|(x, y)| x + y).collect();
    let mut u = vec![0.0; nn];
    matmul(&a, &sum, &mut u, n);
    // V = A6 (b12 A6 + b10 A4 + b8 A2) + b6 A6 + b4 A4 + b2 A2 + b0 I
    let mut v = vec![0.0; nn];
    matmul(&a6, &lin(b[12], b[10], b[8], 0.0), &mut v, n);
    for (x, y) in v.iter_mut().zip(lin(b[6], b[4], b[2], b[0])) {
        *x += y;
    }
    let p: Vec<f64> = v.iter().zip(&u).map(|(v, u)| v - u).collect();
    let q: Vec<f64> = v.iter().zip(&u).map(|(v, u)| v + u).collect();
    let mut r = solve(p, q, n)?;
    let mut tmp = vec![0.0; nn];
    for _ in 0..s {
        matmul(&r, &r, &mut tmp, n);
        std::mem::swap(&mut r, &mut tmp);
    }
    Some(r)
}

/// Solves `P X = Q` for n×n matrices by LU with partial pivoting; `None` if P is singular.
fn solve(mut p: Vec<f64>, mut q: Vec<f64>, n: usize) -> Option<Vec<f64>> {
    for col in 0..n {
        let pivot =
            (col..n).max_by(|&i, &j| p[i * n + col].abs().total_cmp(&p[j * n + col].abs()))?;
        if p[pivot * n + col] == 0.0 {
            return None;
        }
        if pivot != col {
            for j in 0..n {
                p.swap(pivot * n + j, col * n + j);
                q.swap(pivot * n + j, col * n + j);
            }
        }
        let d = p[col * n + col];
        for row in col + 1..n {
            let f = p[row * n + col] / d;
            if f != 0.0 {
                for j in col..n {
                    p[row * n + j] -= f * p[col * n + j];
                }
                for j in 0..n {
                    q[row * n + j] -= f * q[col * n + j];
                }
            }
        }
    }
    for row in (0..n).rev() {
        for j in 0..n {
            let mut acc = q[row * n + j];
            for k in row + 1..n {
                acc -= p[row * n + k] * q[k * n + j];
            }
            q[row * n + j] = acc / p[row * n + row];
        }
    }
    Some(q)
}
