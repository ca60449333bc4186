//! Eigenvalues of a dense real (not necessarily symmetric) matrix, in `f64`.
//!
//! The learned operators Ψ_m are not symmetric, and their spectra say what each one does: a pair
//! a ± ib is a rotation at angular speed b that grows or decays at rate a, a real λ a pure scaling.
//! [`eigenvalues_general`] finds them the classic way (EISPACK `balanc`/`elmhes`/`hqr`, as in
//! Numerical Recipes): balance the matrix, reduce it to upper Hessenberg form by stabilised
//! elementary similarity transforms, then run the implicit double-shift QR iteration of Francis
//! until the matrix is quasi-triangular, reading the eigenvalues off its 1 × 1 and 2 × 2 diagonal
//! blocks. It is `O(n³)`, needs no dependency, and is fit for untrusted input:
//!
//! * the matrix is scaled by a power of two so that its largest entry lies in `[1, 2)` (exact, and
//!   undone on the eigenvalues), so entries near `f64::MAX` or deep in the subnormals neither
//!   overflow nor stall the convergence test;
//! * each eigenvalue gets at most [`MAX_QR_ITERATIONS`] QR sweeps (with exceptional shifts every
//!   ten), and balancing at most [`MAX_BALANCE_SWEEPS`] sweeps; a matrix that needs more is
//!   reported as an error instead of hanging.

use crate::{Error, Result};

/// QR sweeps allowed per eigenvalue before giving up. EISPACK allows 30; exceptional shifts are
/// applied after every ten sweeps without deflation.
pub const MAX_QR_ITERATIONS: usize = 60;

/// Balancing sweeps allowed. Balancing only rescales rows and columns by powers of two and stops
/// on its own after a few sweeps; the cap keeps adversarial input from looping.
pub const MAX_BALANCE_SWEEPS: usize = 100;

/// The eigenvalues `(re, im)` of the real `n × n` matrix `a` (row-major).
///
/// Complex eigenvalues come in conjugate pairs. The result is sorted by real part, largest first,
/// and then by imaginary part, largest first, so the same input gives the same order everywhere.
///
/// # Errors
/// * [`Error::Shape`] naming `a` when `a.len() != n * n`;
/// * [`Error::NonFinite`] naming `a` at the first NaN or infinity;
/// * [`Error::Invalid`] naming `a` when the QR iteration does not converge within
///   [`MAX_QR_ITERATIONS`] sweeps for some eigenvalue, or produces a non-finite value;
/// * [`Error::Invalid`] naming `n` when `n * n` overflows `usize`.
pub fn eigenvalues_general(a: &[f64], n: usize) -> Result<Vec<(f64, f64)>> {
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
    let max_abs = a.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    if max_abs == 0.0 {
        return Ok(vec![(0.0, 0.0); n]);
    }
    // Scale by an exact power of two so that the largest entry lies in [1, 2).
    let exponent = binary_exponent(max_abs).clamp(-1022, 1022);
    let scale = power_of_two(-exponent);
    let unscale = power_of_two(exponent);
    let mut h = Square {
        n,
        a: a.iter().map(|x| x * scale).collect(),
    };
    h.balance();
    h.reduce_to_hessenberg();
    let mut values = h.hessenberg_eigenvalues()?;
    for (re, im) in &mut values {
        *re *= unscale;
        *im *= unscale;
    }
    if values
        .iter()
        .any(|(re, im)| !re.is_finite() || !im.is_finite())
    {
        return Err(Error::invalid(
            "a",
            "the QR iteration produced non-finite values",
        ));
    }
    values.sort_by(|x, y| y.0.total_cmp(&x.0).then(y.1.total_cmp(&x.1)));
    Ok(values)
}

/// A dense row-major square matrix being reduced in place.
struct Square {
    n: usize,
    a: Vec<f64>,
}

impl Square {
    fn get(&self, i: usize, j: usize) -> f64 {
        self.a[i * self.n + j]
    }

    fn set(&mut self, i: usize, j: usize, value: f64) {
        self.a[i * self.n + j] = value;
    }

    fn sub(&mut self, i: usize, j: usize, value: f64) {
        self.a[i * self.n + j] -= value;
    }

    /// Rescales rows and columns by powers of two (a similarity, exact in floating point) until
    /// every row and its column have comparable norms, which makes the eigenvalues better
    /// conditioned (EISPACK `balanc`).
    fn balance(&mut self) {
        const RADIX: f64 = 2.0;
        let n = self.n;
        for _ in 0..MAX_BALANCE_SWEEPS {
            let mut done = true;
            for i in 0..n {
                let (mut c, mut r) = (0.0, 0.0);
                for j in (0..n).filter(|&j| j != i) {
                    c += self.get(j, i).abs();
                    r += self.get(i, j).abs();
                }
                if c == 0.0 || r == 0.0 {
                    continue;
                }
                let s = c + r;
                let mut f = 1.0;
                let mut g = r / RADIX;
                while c < g && f < 1e150 {
                    f *= RADIX;
                    c *= RADIX * RADIX;
                }
                g = r * RADIX;
                while c > g && f > 1e-150 {
                    f /= RADIX;
                    c /= RADIX * RADIX;
                }
                if (c + r) / f < 0.95 * s {
                    done = false;
                    let g = 1.0 / f;
                    for j in 0..n {
                        self.a[i * n + j] *= g;
                        self.a[j * n + i] *= f;
                    }
                }
            }
            if done {
                return;
            }
        }
    }

    /// Reduces to upper Hessenberg form by Gaussian elimination with pivoting (EISPACK `elmhes`),
    /// then clears the multipliers left below the subdiagonal.
    fn reduce_to_hessenberg(&mut self) {
        let n = self.n;
        for m in 1..n.saturating_sub(1) {
            let mut x = 0.0_f64;
            let mut pivot = m;
            for j in m..n {
                if self.get(j, m - 1).abs() > x.abs() {
                    x = self.get(j, m - 1);
                    pivot = j;
                }
            }
            if pivot != m {
                for j in (m - 1)..n {
                    self.a.swap(pivot * n + j, m * n + j);
                }
                for j in 0..n {
                    self.a.swap(j * n + pivot, j * n + m);
                }
            }
            if x == 0.0 {
                continue;
            }
            for i in (m + 1)..n {
                let mut y = self.get(i, m - 1);
                if y == 0.0 {
                    continue;
                }
                y /= x;
                self.set(i, m - 1, y);
                for j in m..n {
                    let v = y * self.get(m, j);
                    self.sub(i, j, v);
                }
                for j in 0..n {
                    let v = y * self.get(j, i);
                    self.a[j * n + m] += v;
                }
            }
        }
        for i in 2..n {
            for j in 0..i - 1 {
                self.set(i, j, 0.0);
            }
        }
    }

    /// The eigenvalues of the upper Hessenberg matrix by the implicit double-shift QR iteration
    /// (EISPACK `hqr`). Destroys the matrix.
    #[allow(clippy::too_many_lines, clippy::many_single_char_names)]
    fn hessenberg_eigenvalues(&mut self) -> Result<Vec<(f64, f64)>> {
        let n = self.n;
        let eps = f64::EPSILON;
        let mut values = vec![(0.0, 0.0); n];
        let mut anorm = 0.0;
        for i in 0..n {
            for j in i.saturating_sub(1)..n {
                anorm += self.get(i, j).abs();
            }
        }
        // `hi` eigenvalues remain; the active block ends at row nn = hi − 1.
        let mut hi = n;
        let mut shift = 0.0;
        let mut its = 0;
        while hi > 0 {
            let nn = hi - 1;
            // Look for a negligible subdiagonal element that splits the matrix.
            let mut l = nn;
            while l > 0 {
                let mut s = self.get(l - 1, l - 1).abs() + self.get(l, l).abs();
                if s == 0.0 {
                    s = anorm;
                }
                if self.get(l, l - 1).abs() <= eps * s {
                    self.set(l, l - 1, 0.0);
                    break;
                }
                l -= 1;
            }
            let mut x = self.get(nn, nn);
            if l == nn {
                // One root found.
                values[nn] = (x + shift, 0.0);
                hi -= 1;
                its = 0;
                continue;
            }
            let mut y = self.get(nn - 1, nn - 1);
            let mut w = self.get(nn, nn - 1) * self.get(nn - 1, nn);
            if l + 1 == nn {
                // Two roots found: the eigenvalues of the trailing 2 × 2 block.
                let p = 0.5 * (y - x);
                let q = p * p + w;
                let z = q.abs().sqrt();
                x += shift;
                if q >= 0.0 {
                    let z = p + z.copysign(p);
                    let second = if z == 0.0 { x + z } else { x - w / z };
                    values[nn - 1] = (x + z, 0.0);
                    values[nn] = (second, 0.0);
                } else {
                    values[nn - 1] = (x + p, z);
                    values[nn] = (x + p, -z);
                }
                hi -= 2;
                its = 0;
                continue;
            }
            if its >= MAX_QR_ITERATIONS {
                return Err(Error::invalid(
                    "a",
                    format!("the QR iteration did not converge in {MAX_QR_ITERATIONS} sweeps"),
                ));
            }
            if its > 0 && its % 10 == 0 {
                // Exceptional shift.
                shift += x;
                for i in 0..=nn {
                    self.sub(i, i, x);
                }
                let s = self.get(nn, nn - 1).abs() + self.get(nn - 1, nn - 2).abs();
                x = 0.75 * s;
                y = x;
                w = -0.4375 * s * s;
            }
            its += 1;
            // Form the shift and look for two consecutive small subdiagonal elements.
            let (mut p, mut q, mut r);
            let mut m = nn - 2;
            loop {
                let z = self.get(m, m);
                let rr = x - z;
                let ss = y - z;
                p = (rr * ss - w) / self.get(m + 1, m) + self.get(m, m + 1);
                q = self.get(m + 1, m + 1) - z - rr - ss;
                r = self.get(m + 2, m + 1);
                let s = p.abs() + q.abs() + r.abs();
                p /= s;
                q /= s;
                r /= s;
                if m == l {
                    break;
                }
                let u = self.get(m, m - 1).abs() * (q.abs() + r.abs());
                let v = p.abs()
                    * (self.get(m - 1, m - 1).abs() + z.abs() + self.get(m + 1, m + 1).abs());
                if u <= eps * v {
                    break;
                }
                m -= 1;
            }
            for i in m..nn - 1 {
                self.set(i + 2, i, 0.0);
                if i != m {
                    self.set(i + 2, i - 1, 0.0);
                }
            }
            // Double QR step on rows l..=nn and columns m..=nn.
            for k in m..nn {
                if k != m {
                    p = self.get(k, k - 1);
                    q = self.get(k + 1, k - 1);
                    r = if k + 1 != nn {
                        self.get(k + 2, k - 1)
                    } else {
                        0.0
                    };
                    x = p.abs() + q.abs() + r.abs();
                    if x != 0.0 {
                        p /= x;
                        q /= x;
                        r /= x;
                    }
                }
                let s = (p * p + q * q + r * r).sqrt().copysign(p);
                if s == 0.0 {
                    continue;
                }
                if k == m {
                    if l != m {
                        let v = -self.get(k, k - 1);
                        self.set(k, k - 1, v);
                    }
                } else {
                    self.set(k, k - 1, -s * x);
                }
                p += s;
                x = p / s;
                y = q / s;
                let z = r / s;
                q /= p;
                r /= p;
                for j in k..=nn {
                    let mut pj = self.get(k, j) + q * self.get(k + 1, j);
                    if k + 1 != nn {
                        pj += r * self.get(k + 2, j);
                        self.sub(k + 2, j, pj * z);
                    }
                    self.sub(k + 1, j, pj * y);
                    self.sub(k, j, pj * x);
                }
                let mmin = nn.min(k + 3);
                for i in l..=mmin {
                    let mut pi = x * self.get(i, k) + y * self.get(i, k + 1);
                    if k + 1 != nn {
                        pi += z * self.get(i, k + 2);
                        self.sub(i, k + 2, pi * r);
                    }
                    self.sub(i, k + 1, pi * q);
                    self.sub(i, k, pi);
                }
            }
        }
        Ok(values)
    }
}

/// The unbiased binary exponent of a positive normal `x` (`x = 1.f × 2^e`).
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
