//! Dense symmetric eigendecomposition in `f64`.
//!
//! This is the EISPACK `tred2`/`tql2` pair as published in JAMA: Householder reduction to
//! tridiagonal form, then the implicit QL algorithm with Wilkinson-style shifts. It is `O(n³)` and
//! needs no dependency, which is why both the PCA fit and the tests (as their oracle for anything
//! spectral) use it. Two changes from JAMA make it fit for untrusted input:
//!
//! * the matrix is scaled by a power of two so that its largest entry lies in `[1, 2)` (exact, and
//!   undone on the eigenvalues), so entries near `f64::MAX` or deep in the subnormals neither
//!   overflow nor lose the iteration's convergence test;
//! * each eigenvalue gets at most [`MAX_QL_ITERATIONS`] QL sweeps; a matrix that needs more is
//!   reported as an error instead of hanging.
//!
//! The storage is column-major, so that the Householder updates and the QL rotations run over
//! contiguous memory; the eigenvectors then come out as contiguous rows.

use crate::{Error, Result};

/// QL sweeps allowed per eigenvalue before giving up. EISPACK allows 30; in practice two or three
/// suffice, so reaching this means the input is pathological (or the arithmetic is broken).
pub const MAX_QL_ITERATIONS: usize = 64;

/// Largest `|a[i][j] - a[j][i]|`, relative to the largest `|a[i][j]|`, that is accepted as rounding
/// noise. Anything above it is a caller passing a matrix that is not symmetric.
const SYMMETRY_TOLERANCE: f64 = 1e-6;

/// The eigendecomposition `A = Σᵢ λᵢ vᵢ vᵢᵀ` of a real symmetric `n × n` matrix.
///
/// Eigenvalues are sorted in descending order (ties keep the order QL produced them in) and each
/// eigenvector has unit norm and a deterministic sign: its entry of largest magnitude is positive,
/// and among entries of equal magnitude the one with the lowest index decides. The same input thus
/// gives the same bits on every platform (only IEEE `+ - × ÷ √` are used).
#[derive(Debug, Clone, PartialEq)]
pub struct SymmetricEigen {
    /// Order `n` of the matrix.
    pub n: usize,
    /// The `n` eigenvalues, largest first.
    pub values: Vec<f64>,
    /// `n × n`, row-major: row `i` is the unit eigenvector belonging to `values[i]`. The rows are
    /// orthonormal to working precision.
    pub vectors: Vec<f64>,
}

impl SymmetricEigen {
    /// The eigenvector for `values[i]`, or `None` when `i >= n`.
    pub fn vector(&self, i: usize) -> Option<&[f64]> {
        if i >= self.n {
            return None;
        }
        let start = i.checked_mul(self.n)?;
        self.vectors.get(start..start.checked_add(self.n)?)
    }
}

/// Eigenvalues and eigenvectors of the symmetric `n × n` matrix `a` (row-major).
///
/// The input is symmetrised as `(A + Aᵀ) / 2`, so rounding-level asymmetry (such as from a product
/// `B Bᵀ` computed in floating point) is harmless.
///
/// # Errors
/// * [`Error::Shape`] naming `a` when `a.len() != n * n`;
/// * [`Error::NonFinite`] naming `a` at the first NaN or infinity;
/// * [`Error::Invalid`] naming `a` when the matrix is not symmetric (an entry differs from its
///   mirror by more than `1e-6` times the largest magnitude), or when the QL iteration fails to
///   converge within [`MAX_QL_ITERATIONS`] sweeps for some eigenvalue;
/// * [`Error::Invalid`] naming `n` when `n * n` overflows `usize`.
pub fn symmetric_eigen(a: &[f64], n: usize) -> Result<SymmetricEigen> {
    let len = n
        .checked_mul(n)
        .ok_or_else(|| Error::invalid("n", "n * n overflows usize"))?;
    if a.len() != len {
        return Err(Error::shape("a", &[n, n], &[a.len()]));
    }
    if let Some((index, value)) = a.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::NonFinite {
            field: "a".to_owned(),
            index,
            value: value.to_string(),
        });
    }
    if n == 0 {
        return Ok(SymmetricEigen {
            n,
            values: Vec::new(),
            vectors: Vec::new(),
        });
    }

    let max_abs = a.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    if max_abs == 0.0 {
        return Ok(SymmetricEigen {
            n,
            values: vec![0.0; n],
            vectors: identity(n),
        });
    }
    check_symmetric(a, n, max_abs)?;

    // Scale by an exact power of two so that the largest entry lies in [1, 2).
    let exponent = binary_exponent(max_abs).clamp(-1022, 1022);
    let scale = power_of_two(-exponent);
    let unscale = power_of_two(exponent);

    // Column-major copy of the symmetric part: v[c * n + r] = A[r][c].
    let mut v = vec![0.0; len];
    for (c, column) in v.chunks_exact_mut(n).enumerate() {
        for (r, slot) in column.iter_mut().enumerate() {
            *slot = 0.5 * (a[r * n + c] * scale + a[c * n + r] * scale);
        }
    }

    let mut d = vec![0.0; n];
    let mut e = vec![0.0; n];
    tred2(&mut v, &mut d, &mut e, n);
    tql2(&mut v, &mut d, &mut e, n)?;

    // Sort descending (stable, so equal eigenvalues keep their QL order).
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| d[j].total_cmp(&d[i]));

    let mut values = Vec::with_capacity(n);
    let mut vectors = Vec::with_capacity(len);
    for &i in &order {
        values.push(d[i] * unscale);
        let column = &v[i * n..(i + 1) * n];
        let sign = if column_sign_is_negative(column) {
            -1.0
        } else {
            1.0
        };
        vectors.extend(column.iter().map(|x| sign * x));
    }
    if values.iter().chain(&vectors).any(|x| !x.is_finite()) {
        return Err(Error::invalid(
            "a",
            "eigendecomposition produced non-finite values",
        ));
    }
    Ok(SymmetricEigen { n, values, vectors })
}

/// `n × n` identity, row-major.
fn identity(n: usize) -> Vec<f64> {
    let mut out = vec![0.0; n * n];
    for (i, row) in out.chunks_exact_mut(n).enumerate() {
        if let Some(x) = row.get_mut(i) {
            *x = 1.0;
        }
    }
    out
}

/// Fails unless `a` (validated `n × n`, finite, largest magnitude `max_abs`) is symmetric to within
/// [`SYMMETRY_TOLERANCE`].
fn check_symmetric(a: &[f64], n: usize, max_abs: f64) -> Result<()> {
    let tolerance = SYMMETRY_TOLERANCE * max_abs;
    for i in 0..n {
        for j in 0..i {
            let (upper, lower) = (a[j * n + i], a[i * n + j]);
            // Halve before subtracting so that entries near f64::MAX cannot overflow.
            if (0.5 * lower - 0.5 * upper).abs() > 0.5 * tolerance {
                return Err(Error::invalid(
                    "a",
                    format!(
                        "matrix is not symmetric: a[{i}][{j}] = {lower} but a[{j}][{i}] = {upper}"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// `e` such that `x` lies in `[2^e, 2^(e+1))` for positive normal `x`; `-1023` for subnormals.
fn binary_exponent(x: f64) -> i32 {
    // The biased exponent field is 11 bits, so the cast is lossless.
    let biased = ((x.to_bits() >> 52) & 0x7ff) as i32;
    biased - 1023
}

/// `2^e` for `e` in `-1022..=1023`, built from its bits so that it is exact.
fn power_of_two(e: i32) -> f64 {
    let biased = u64::try_from(e + 1023).unwrap_or(1023);
    f64::from_bits(biased << 52)
}

/// Whether the vector needs flipping so that its largest-magnitude entry (lowest index on ties)
/// becomes positive.
fn column_sign_is_negative(column: &[f64]) -> bool {
    let mut best = 0.0_f64;
    let mut negative = false;
    for &x in column {
        if x.abs() > best {
            best = x.abs();
            negative = x < 0.0;
        }
    }
    negative
}

/// `sqrt(a² + b²)` without destructive overflow or underflow. Written out rather than calling
/// `f64::hypot` (the platform's libm) so that results are bit-identical on every target.
fn hypot(a: f64, b: f64) -> f64 {
    let (a, b) = (a.abs(), b.abs());
    let (big, small) = if a >= b { (a, b) } else { (b, a) };
    if big == 0.0 {
        return 0.0;
    }
    let ratio = small / big;
    big * (1.0 + ratio * ratio).sqrt()
}

/// Householder reduction of the symmetric matrix in `v` (column-major, `v[c * n + r] = V[r][c]`) to
/// tridiagonal form. On return `d` holds the diagonal, `e[1..]` the subdiagonal and `v` the
/// accumulated orthogonal transformation. Translated from JAMA's `tred2`; `n >= 1`.
fn tred2(v: &mut [f64], d: &mut [f64], e: &mut [f64], n: usize) {
    for (j, dj) in d.iter_mut().enumerate() {
        *dj = v[j * n + n - 1];
    }

    for i in (1..n).rev() {
        let scale: f64 = d[..i].iter().map(|x| x.abs()).sum();
        let mut h = 0.0;
        if scale == 0.0 {
            e[i] = d[i - 1];
            for j in 0..i {
                d[j] = v[j * n + i - 1];
                v[j * n + i] = 0.0;
                v[i * n + j] = 0.0;
            }
        } else {
            // Generate the Householder vector.
            for dk in &mut d[..i] {
                *dk /= scale;
                h += *dk * *dk;
            }
            let mut f = d[i - 1];
            let mut g = h.sqrt();
            if f > 0.0 {
                g = -g;
            }
            e[i] = scale * g;
            h -= f * g;
            d[i - 1] = f - g;
            e[..i].fill(0.0);

            // Apply the similarity transformation to the remaining columns.
            for j in 0..i {
                f = d[j];
                v[i * n + j] = f;
                g = e[j] + v[j * n + j] * f;
                let column = &v[j * n + j + 1..j * n + i];
                for ((&vkj, &dk), ek) in column.iter().zip(&d[j + 1..i]).zip(&mut e[j + 1..i]) {
                    g += vkj * dk;
                    *ek += vkj * f;
                }
                e[j] = g;
            }
            f = 0.0;
            for (ej, &dj) in e[..i].iter_mut().zip(&d[..i]) {
                *ej /= h;
                f += *ej * dj;
            }
            let hh = f / (h + h);
            for (ej, &dj) in e[..i].iter_mut().zip(&d[..i]) {
                *ej -= hh * dj;
            }
            for j in 0..i {
                let (f, g) = (d[j], e[j]);
                let column = &mut v[j * n + j..j * n + i];
                for ((vkj, &ek), &dk) in column.iter_mut().zip(&e[j..i]).zip(&d[j..i]) {
                    *vkj -= f * ek + g * dk;
                }
                d[j] = v[j * n + i - 1];
                v[j * n + i] = 0.0;
            }
        }
        d[i] = h;
    }

    // Accumulate the transformations.
    for i in 0..n - 1 {
        v[i * n + n - 1] = v[i * n + i];
        v[i * n + i] = 1.0;
        let h = d[i + 1];
        let (left, right) = v.split_at_mut((i + 1) * n);
        let next = &mut right[..=i];
        if h != 0.0 {
            for (dk, &vk) in d[..=i].iter_mut().zip(next.iter()) {
                *dk = vk / h;
            }
            for column in left.chunks_exact_mut(n) {
                let column = &mut column[..=i];
                let g: f64 = next.iter().zip(column.iter()).map(|(a, b)| a * b).sum();
                for (vkj, &dk) in column.iter_mut().zip(&d[..=i]) {
                    *vkj -= g * dk;
                }
            }
        }
        next.fill(0.0);
    }
    for (j, dj) in d.iter_mut().enumerate() {
        *dj = v[j * n + n - 1];
        v[j * n + n - 1] = 0.0;
    }
    v[n * n - 1] = 1.0;
    e[0] = 0.0;
}

/// Implicit QL iteration on the tridiagonal matrix from [`tred2`]: on return `d` holds the
/// (unsorted) eigenvalues and column `i` of `v` the eigenvector of `d[i]`. Translated from JAMA's
/// `tql2`, with an iteration cap; `n >= 1`.
fn tql2(v: &mut [f64], d: &mut [f64], e: &mut [f64], n: usize) -> Result<()> {
    e.copy_within(1.., 0);
    e[n - 1] = 0.0;

    let mut f = 0.0;
    let mut tst1 = 0.0_f64;
    let eps = f64::EPSILON;
    for l in 0..n {
        // Find a negligible subdiagonal element.
        tst1 = tst1.max(d[l].abs() + e[l].abs());
        let mut m = l;
        while m < n - 1 && e[m].abs() > eps * tst1 {
            m += 1;
        }

        // If m == l, d[l] is already an eigenvalue; otherwise iterate.
        if m > l {
            let mut iterations = 0;
            loop {
                iterations += 1;
                if iterations > MAX_QL_ITERATIONS {
                    return Err(Error::invalid(
                        "a",
                        format!(
                            "QL iteration did not converge for eigenvalue {l} within \
                             {MAX_QL_ITERATIONS} sweeps"
                        ),
                    ));
                }

                // Compute the implicit shift.
                let mut g = d[l];
                let mut p = (d[l + 1] - g) / (2.0 * e[l]);
                let mut r = hypot(p, 1.0);
                if p < 0.0 {
                    r = -r;
                }
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                let dl1 = d[l + 1];
                let mut h = g - d[l];
                for di in &mut d[l + 2..] {
                    *di -= h;
                }
                f += h;

                // Implicit QL transformation.
                p = d[m];
                let (mut c, mut c2, mut c3) = (1.0, 1.0, 1.0);
                let el1 = e[l + 1];
                let (mut s, mut s2) = (0.0, 0.0);
                for i in (l..m).rev() {
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    g = c * e[i];
                    h = c * p;
                    r = hypot(p, e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    c = p / r;
                    p = c * d[i] - s * g;
                    d[i + 1] = h + s * (c * g + s * d[i]);

                    // Accumulate the rotation into columns i and i + 1.
                    let (left, right) = v.split_at_mut((i + 1) * n);
                    let column_i = &mut left[i * n..];
                    let column_next = &mut right[..n];
                    for (vi, vn) in column_i.iter_mut().zip(column_next.iter_mut()) {
                        let h = *vn;
                        *vn = s * *vi + c * h;
                        *vi = c * *vi - s * h;
                    }
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = c * p;

                // Converged (a NaN also ends the loop; the caller rejects non-finite output).
                if e[l].abs() <= eps * tst1 || e[l].is_nan() {
                    break;
                }
            }
        }
        d[l] += f;
        e[l] = 0.0;
    }
    Ok(())
}
