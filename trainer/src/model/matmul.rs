//! A bounds-checked, strided matrix product on host slices, for the CPU kernels of this crate
//! (convolution, and anything else that needs `C (+)= A·B` on views candle cannot express without
//! copies).
//!
//! It wraps the `gemm` crate, the same pure-Rust, SIMD-dispatching GEMM that candle's own CPU
//! matmul calls, so the products here are exactly as fast and as accurate as candle's. The wrapper
//! is the one place in the crate that calls `unsafe` code: it checks every index the product can
//! touch against the slices before handing raw pointers over.

use candle_core::{Layout, Result, bail};

/// Element types the kernels run in: f32 for training, f64 for finite-difference tests.
pub trait Element:
    Copy
    + Default
    + PartialEq
    + Send
    + Sync
    + std::fmt::Debug
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::AddAssign
    + 'static
{
    /// Zero.
    const ZERO: Self;
    /// One.
    const ONE: Self;
    /// Conversion from f64 (rounding for f32).
    fn from_f64(x: f64) -> Self;
    /// Widening conversion to f64.
    fn to_f64(self) -> f64;
}

impl Element for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

impl Element for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn from_f64(x: f64) -> Self {
        x
    }
    fn to_f64(self) -> f64 {
        self
    }
}

/// The values a contiguous `layout` addresses in `data`: how the custom ops of this crate read
/// their CPU arguments (their wrappers make every argument contiguous first). `op` names the
/// operation in the error.
pub fn contiguous_values<'a, T>(data: &'a [T], layout: &Layout, op: &str) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) if end <= data.len() => Ok(&data[start..end]),
        _ => bail!("{op}: arguments must be contiguous"),
    }
}

/// A read-only matrix view: `rows × cols` elements of `data`, element (r, c) at
/// `r · row_stride + c · col_stride`.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a, T> {
    /// The backing values.
    pub data: &'a [T],
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Distance between consecutive rows.
    pub row_stride: usize,
    /// Distance between consecutive columns.
    pub col_stride: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// A dense row-major `rows × cols` matrix.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose, as a view of the same values.
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// Whether every element the view addresses lies inside `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.data.len()
    }
}

/// How many threads one product may use: products inside an already parallel loop run on one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// The calling thread only.
    One,
    /// Every thread of rayon's pool.
    All,
}

/// `dst = lhs · rhs`, or `dst += lhs · rhs` with `accumulate`, where `dst` is a dense row-major
/// `lhs.rows × rhs.cols` matrix.
///
/// # Errors
/// If the inner dimensions differ, `dst` is not exactly `lhs.rows · rhs.cols` long, or a view
/// addresses values outside its slice.
pub fn matmul<T: Element>(
    dst: &mut [T],
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
    accumulate: bool,
    threads: Threads,
) -> Result<()> {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    if rhs.rows != k {
        bail!(
            "matmul: inner dimensions differ ({m}×{k} · {}×{n})",
            rhs.rows
        );
    }
    if dst.len() != m * n {
        bail!(
            "matmul: destination holds {} values, expected {m}×{n}",
            dst.len()
        );
    }
    if !lhs.in_bounds() || !rhs.in_bounds() {
        bail!("matmul: a strided view addresses values outside its slice");
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            dst.fill(T::ZERO);
        }
        return Ok(());
    }
    let parallelism = match threads {
        Threads::One => gemm::Parallelism::None,
        Threads::All => gemm::Parallelism::Rayon(rayon::current_num_threads()),
    };
    let stride = |s: usize| s as isize;
    // SAFETY: the checks above guarantee that every element gemm reads, (r, c) of each view for
    // r < rows and c < cols, lies inside its slice, and that every element it writes, (r, c) of
    // the dense m×n destination, lies inside `dst`. `dst` is borrowed mutably, so it aliases
    // neither input. T is f32 or f64 (sealed by `Element`'s impls), types gemm supports.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            stride(n),
            accumulate,
            lhs.data.as_ptr(),
            stride(lhs.col_stride),
            stride(lhs.row_stride),
            rhs.data.as_ptr(),
            stride(rhs.col_stride),
            stride(rhs.row_stride),
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum();
            }
        }
        out
    }

    #[test]
    fn strided_products_match_the_naive_product() -> Result<()> {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.91).cos()).collect();
        let want = naive(&a, &b, m, k, n);
        let mut got = vec![0.0; m * n];
        matmul(
            &mut got,
            MatRef::row_major(&a, m, k),
            MatRef::row_major(&b, k, n),
            false,
            Threads::One,
        )?;
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-12);
        }
        // Aᵀ stored row-major, read through a transposed view; accumulate onto the first result.
        let at: Vec<f64> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        matmul(
            &mut got,
            MatRef::row_major(&at, k, m).t(),
            MatRef::row_major(&b, k, n),
            true,
            Threads::All,
        )?;
        for (g, w) in got.iter().zip(&want) {
            assert!((g - 2.0 * w).abs() < 1e-12);
        }
        Ok(())
    }

    #[test]
    fn views_outside_their_slice_are_refused() {
        let a = vec![0.0f32; 6];
        let mut dst = vec![0.0f32; 4];
        let err = matmul(
            &mut dst,
            MatRef::row_major(&a, 2, 3),
            MatRef::row_major(&a, 3, 2),
            false,
            Threads::One,
        );
        assert!(err.is_ok());
        let bad = MatRef {
            row_stride: 4,
            ..MatRef::row_major(&a, 2, 3)
        };
        let err = matmul(
            &mut dst,
            bad,
            MatRef::row_major(&a, 3, 2),
            false,
            Threads::One,
        );
        assert!(err.is_err());
    }
}
