//! The action of the exponential on a vector, `expm(A)·v`, without forming `expm(A)`.
//!
//! Where each matrix is used once, on one vector, forming the exponential wastes most of its
//! work: the semi-supervised protocol moves every feature by its own sampled `T(c̃)`, so each
//! n×n block is exponentiated to be applied once. [`expm`](super::expm) costs `D/4 + 2 + s`
//! n×n products (n³ each); the action costs `t·D` matrix–vector products (n² each), with t
//! growing with `‖A‖₁`. At n = 64 and the norms trained operators reach, that is 5–20× less work.
//!
//! Algorithm (Al-Mohy & Higham 2011, "Computing the action of the matrix exponential", without
//! their norm estimation):
//! * the trace shift of [`expm`](super::expm): `expm(A) v = e^μ · expm(B) v`, `B = A − μI`,
//!   μ = tr A / n;
//! * `expm(B) v = (expm(B/t))ᵗ v`: t steps, each a Taylor polynomial of degree D applied by D
//!   matrix–vector products. (D, t) come from the same table as [`plan`](super::plan): the
//!   smallest `t·D` with `‖B‖₁ / t ≤ θ_D`, so each step's truncation error is below half the
//!   unit roundoff, as for the full exponential;
//! * a step's series stops early once two consecutive terms are below the unit roundoff relative
//!   to the partial sum (their test), which is where vectors in slowly moving directions save.

use super::{Real, norm1};
use crate::{Error, Result};

/// `expm(A)·v` for one row-major n×n matrix `a` and a vector `v` of n values.
///
/// Agrees with `expm(a)` applied to `v` to the precision's rounding (a test checks it against
/// the f64 Padé oracle). Errors if the sizes disagree or `a` or `v` holds a non-finite value.
pub fn expm_action<T: Real>(a: &[T], n: usize, v: &[T]) -> Result<Vec<T>> {
    let nn = n
        .checked_mul(n)
        .ok_or_else(|| Error::invalid("expm block size", format!("{n}×{n} overflows")))?;
    if n == 0 || a.len() != nn || v.len() != n {
        return Err(Error::invalid(
            "expm action input",
            format!(
                "{} matrix values and {} vector values are not one {n}×{n} matrix and its vector",
                a.len(),
                v.len()
            ),
        ));
    }
    let mut out = v.to_vec();
    let mut scratch = ActionScratch::new(n);
    scratch.a.copy_from_slice(a);
    expm_action_in_place(&mut scratch, &mut out).map_err(|value| Error::NonFinite {
        field: "expm action input".into(),
        index: 0,
        value: value.to_string(),
    })?;
    Ok(out)
}

/// The matrix and scratch vectors of one action, reused across a batch. Callers write the
/// matrix into [`a`](Self::a) (it is shifted in place) and call [`expm_action_in_place`].
pub(crate) struct ActionScratch<T> {
    /// The n×n matrix A, row-major; overwritten with `A − μI`.
    pub(crate) a: Vec<T>,
    term: Vec<T>,
    next: Vec<T>,
    sum: Vec<T>,
}

impl<T: Real> ActionScratch<T> {
    /// Scratch for n×n matrices.
    pub(crate) fn new(n: usize) -> Self {
        Self {
            a: vec![T::ZERO; n * n],
            term: vec![T::ZERO; n],
            next: vec![T::ZERO; n],
            sum: vec![T::ZERO; n],
        }
    }
}

/// `v ← expm(A)·v` for the matrix in `scratch.a` (n = `v.len()`). Returns the offending value
/// (the trace shift or the norm, or a result entry) if something is not finite.
pub(crate) fn expm_action_in_place<T: Real>(
    scratch: &mut ActionScratch<T>,
    v: &mut [T],
) -> std::result::Result<(), f64> {
    let n = v.len();
    let ActionScratch { a, term, next, sum } = scratch;
    let trace: f64 = a.iter().step_by(n + 1).map(|x| x.to_f64()).sum();
    let mu = trace / n as f64;
    for x in a.iter_mut().step_by(n + 1) {
        *x = T::from_f64(x.to_f64() - mu);
    }
    let norm = norm1(a, n).to_f64();
    if !norm.is_finite() || !mu.is_finite() {
        return Err(if norm.is_finite() { mu } else { norm });
    }
    let (degree, steps) = action_plan::<T>(norm);
    let tol = T::UNIT_ROUNDOFF;
    for _ in 0..steps {
        term.copy_from_slice(v);
        sum.copy_from_slice(v);
        let mut previous = inf_norm(term);
        for j in 1..=degree {
            // term ← B·term / (t·j): the j-th Taylor term of expm(B/t) applied to v.
            let scale = T::from_f64(1.0 / (steps as f64 * j as f64));
            for (y, row) in next.iter_mut().zip(a.chunks_exact(n)) {
                *y = dot(row, term) * scale;
            }
            std::mem::swap(term, next);
            for (s, &x) in sum.iter_mut().zip(term.iter()) {
                *s += x;
            }
            let current = inf_norm(term);
            if previous + current <= tol * inf_norm(sum) {
                break;
            }
            previous = current;
        }
        v.copy_from_slice(sum);
    }
    let shift = T::from_f64(mu.exp());
    for x in v.iter_mut() {
        *x *= shift;
        if !x.to_f64().is_finite() {
            return Err(x.to_f64());
        }
    }
    Ok(())
}

/// Taylor degree D and step count t for a shifted matrix of 1-norm `norm`: the fewest
/// matrix–vector products `t·D` with `norm / t ≤ θ_D` (ties: the lower degree).
pub(crate) fn action_plan<T: Real>(norm: f64) -> (usize, u64) {
    T::TAYLOR_TABLE
        .iter()
        .map(|&(degree, theta)| (degree, ((norm / theta).ceil() as u64).max(1)))
        .min_by_key(|&(degree, steps)| (steps.saturating_mul(degree as u64), degree))
        .unwrap_or((1, 1))
}

/// Largest absolute value, widened to f64.
fn inf_norm<T: Real>(x: &[T]) -> f64 {
    x.iter().fold(0.0f64, |m, v| m.max(v.abs().to_f64()))
}

/// Dot product in eight independent partial sums, so that it vectorises.
fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::ZERO; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: T = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .fold(T::ZERO, |s, (&x, &y)| s + x * y);
    for (x, y) in a8.zip(b8) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}
