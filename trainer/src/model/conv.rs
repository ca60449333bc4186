//! 2-D convolution for the backbone, with a GEMM forward and backward on the CPU.
//!
//! [`conv2d`] is the one convolution the backbone calls. On the CPU it is a candle custom op whose
//! three passes are matrix products over an im2col matrix:
//! * forward: `Y = W · col(X)`, with W viewed as (O, C·kh·kw);
//! * input gradient: `dX = col⁻¹(Wᵀ · dY)`, col⁻¹ (col2im) summing each column back onto the
//!   pixels it was read from;
//! * weight gradient: `dW = Σ_images dY · col(X)ᵀ`, computed as `gᵀ · rows(X)` from pixel-major
//!   copies of both (im2row), so that the product packs both operands from contiguous memory.
//!
//! candle 0.11's own CPU convolution computes the input gradient with a direct transposed
//! convolution and the weight gradient as a convolution with an image-sized kernel, which makes
//! the backward pass 3–5× slower than these products. On other devices (CUDA) [`conv2d`] defers to
//! candle's convolution, so the GPU path is unchanged.
//!
//! Images are processed in chunks whose im2col matrix stays within [`COL_BUDGET`] values; chunks
//! run in parallel on rayon's pool (each product on one thread), or, when there are fewer chunks
//! than threads (batch 1), one after another with every thread inside each product. Scratch
//! buffers are kept per thread and reused across calls. Supported: any stride and padding,
//! dilation 1, one group, f32 and f64 (the latter for finite-difference tests).

use std::cell::RefCell;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use super::matmul::{Element, MatRef, Threads, contiguous_values, matmul};

/// Largest im2col matrix of one chunk, in values (4 MiB in f32): large enough for products that
/// run near peak, small enough that a chunk's working set stays in cache. Measured on the 2-core
/// machine, a ResNet-18 training step was 8–10 % faster with this than with 16 MiB (one image per
/// chunk in the first stage, 14 in the last), and no faster with 2 MiB.
pub const COL_BUDGET: usize = 1 << 20;

/// Convolution of `x` (B, C, H, W) with `w` (O, C, kh, kw), no bias, dilation 1, one group:
/// (B, O, Ho, Wo) with `Ho = (H + 2·padding − kh) / stride + 1` (likewise Wo), differentiable with
/// respect to both arguments. See the module documentation for how each device computes it.
///
/// # Errors
/// If the shapes do not fit (ranks, channels, a kernel larger than the padded input, stride 0),
/// or the dtypes differ.
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    if x.device().is_cpu() && matches!(x.dtype(), candle_core::DType::F32 | candle_core::DType::F64)
    {
        let geometry = Geometry::new(x.dims(), w.dims(), stride, padding)?;
        x.contiguous()?
            .apply_op2(&w.contiguous()?, Conv2dGemm { geometry })
    } else {
        x.conv2d(w, padding, stride, 1, 1)
    }
}

/// Shapes of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geometry {
    batch: usize,
    channels: usize,
    height: usize,
    width: usize,
    out_channels: usize,
    kernel_h: usize,
    kernel_w: usize,
    stride: usize,
    padding: usize,
    out_h: usize,
    out_w: usize,
}

impl Geometry {
    fn new(x: &[usize], w: &[usize], stride: usize, padding: usize) -> Result<Self> {
        let (&[batch, channels, height, width], &[out_channels, w_channels, kernel_h, kernel_w]) =
            (x, w)
        else {
            bail!(
                "conv2d: expected input (B, C, H, W) and weight (O, C, kh, kw), got {x:?} and {w:?}"
            );
        };
        if w_channels != channels {
            bail!("conv2d: input has {channels} channels but the weight expects {w_channels}");
        }
        if stride == 0 || kernel_h == 0 || kernel_w == 0 {
            bail!(
                "conv2d: stride and kernel size must be at least 1 (weight {w:?}, stride {stride})"
            );
        }
        if height + 2 * padding < kernel_h || width + 2 * padding < kernel_w {
            bail!(
                "conv2d: kernel {kernel_h}×{kernel_w} is larger than the padded input {x:?} (padding {padding})"
            );
        }
        Ok(Self {
            batch,
            channels,
            height,
            width,
            out_channels,
            kernel_h,
            kernel_w,
            stride,
            padding,
            out_h: (height + 2 * padding - kernel_h) / stride + 1,
            out_w: (width + 2 * padding - kernel_w) / stride + 1,
        })
    }

    /// Rows of the im2col matrix: C·kh·kw.
    fn patch(&self) -> usize {
        self.channels * self.kernel_h * self.kernel_w
    }

    /// Output pixels per image: Ho·Wo.
    fn pixels(&self) -> usize {
        self.out_h * self.out_w
    }

    /// Values of one input image.
    fn image(&self) -> usize {
        self.channels * self.height * self.width
    }

    fn out_shape(&self) -> Shape {
        Shape::from((self.batch, self.out_channels, self.out_h, self.out_w))
    }

    /// Images per chunk, and whether chunks run in parallel (else each product uses every thread).
    fn chunking(&self) -> (usize, Threads) {
        let threads = rayon::current_num_threads().max(1);
        let by_memory = (COL_BUDGET / (self.patch() * self.pixels()).max(1)).max(1);
        let per_thread = self.batch.div_ceil(threads).max(1);
        let images = by_memory.min(per_thread);
        let chunks = self.batch.div_ceil(images);
        let threads = if chunks >= threads && threads > 1 {
            Threads::One
        } else {
            Threads::All
        };
        (images, threads)
    }

    /// The output columns (first, one past the last) that read input column `tap` of a kernel
    /// row or column, given the input length and output length along that axis.
    fn valid_range(&self, tap: usize, len: usize, out_len: usize) -> (usize, usize) {
        // Output o reads input o·s + tap − p, valid when 0 ≤ o·s + tap − p < len.
        let (s, p) = (self.stride, self.padding);
        let lo = p.saturating_sub(tap).div_ceil(s).min(out_len);
        let hi = if len + p > tap {
            ((len + p - tap - 1) / s + 1).min(out_len)
        } else {
            0
        };
        (lo, hi.max(lo))
    }

    /// im2col of `images` consecutive images starting at `x` into `col`, a row-major
    /// (C·kh·kw, images·Ho·Wo) matrix whose column `i·Ho·Wo + oy·Wo + ox` is output pixel (oy, ox)
    /// of image i.
    fn im2col<T: Element>(&self, x: &[T], images: usize, col: &mut [T]) {
        let (pixels, row_len) = (self.pixels(), images * self.pixels());
        let plane = self.height * self.width;
        for (r, row) in col.chunks_exact_mut(row_len).enumerate() {
            let (c, ky, kx) = self.unpatch(r);
            let (x_lo, x_hi) = self.valid_range(kx, self.width, self.out_w);
            for (i, dst) in row.chunks_exact_mut(pixels).enumerate() {
                let src = &x[i * self.image() + c * plane..][..plane];
                for (oy, dst) in dst.chunks_exact_mut(self.out_w).enumerate() {
                    let iy = (oy * self.stride + ky).checked_sub(self.padding);
                    let Some(src) = iy
                        .filter(|&iy| iy < self.height)
                        .map(|iy| &src[iy * self.width..][..self.width])
                    else {
                        dst.fill(T::ZERO);
                        continue;
                    };
                    if x_lo >= x_hi {
                        dst.fill(T::ZERO);
                        continue;
                    }
                    dst[..x_lo].fill(T::ZERO);
                    dst[x_hi..].fill(T::ZERO);
                    let first = x_lo * self.stride + kx - self.padding;
                    if self.stride == 1 {
                        dst[x_lo..x_hi].copy_from_slice(&src[first..first + x_hi - x_lo]);
                    } else {
                        for (d, s) in dst[x_lo..x_hi]
                            .iter_mut()
                            .zip(src[first..].iter().step_by(self.stride))
                        {
                            *d = *s;
                        }
                    }
                }
            }
        }
    }

    /// im2row: the transpose of [`Self::im2col`], written directly: `rows` is a row-major
    /// (images·Ho·Wo, C·kh·kw) matrix with one row per output pixel. The weight gradient reads it
    /// this way because its product then packs both operands from contiguous memory.
    fn im2row<T: Element>(&self, x: &[T], images: usize, rows: &mut [T]) {
        let (patch, pixels) = (self.patch(), self.pixels());
        let plane = self.height * self.width;
        let (kh, kw) = (self.kernel_h, self.kernel_w);
        let row_len = self.out_w * patch;
        // One image row of output pixels at a time: for each (c, ky) the kernel row reads one
        // input line, kx over a contiguous run of it.
        for (r, out_line) in rows
            .chunks_exact_mut(row_len)
            .take(images * self.out_h)
            .enumerate()
        {
            let (i, oy) = (r / self.out_h, r % self.out_h);
            let image = &x[i * self.image()..][..self.image()];
            for c in 0..self.channels {
                let src = &image[c * plane..][..plane];
                for ky in 0..kh {
                    let offset = (c * kh + ky) * kw;
                    let line = (oy * self.stride + ky)
                        .checked_sub(self.padding)
                        .filter(|&iy| iy < self.height)
                        .map(|iy| &src[iy * self.width..][..self.width]);
                    for (ox, pixel) in out_line.chunks_exact_mut(patch).enumerate() {
                        let dst = &mut pixel[offset..offset + kw];
                        let Some(line) = line else {
                            dst.fill(T::ZERO);
                            continue;
                        };
                        // Input columns ox·s − p + kx for kx < kw, clipped to the line.
                        let start = ox * self.stride;
                        let lo = self.padding.saturating_sub(start).min(kw);
                        let hi = (self.width + self.padding)
                            .saturating_sub(start)
                            .clamp(lo, kw);
                        dst[..lo].fill(T::ZERO);
                        dst[hi..].fill(T::ZERO);
                        if hi > lo {
                            let first = start + lo - self.padding;
                            dst[lo..hi].copy_from_slice(&line[first..first + hi - lo]);
                        }
                    }
                }
            }
        }
        debug_assert_eq!(rows.len(), images * pixels * patch);
    }

    /// col2im: adds every column of `col` (as laid out by [`Self::im2col`]) back onto the input
    /// pixels it was read from, in `dx` (`images` images, zeroed by the caller).
    fn col2im<T: Element>(&self, col: &[T], images: usize, dx: &mut [T]) {
        let (pixels, row_len) = (self.pixels(), images * self.pixels());
        let plane = self.height * self.width;
        let image = self.image();
        for (i, dx) in dx.chunks_exact_mut(image).enumerate().take(images) {
            for (c, dx) in dx.chunks_exact_mut(plane).enumerate() {
                for ky in 0..self.kernel_h {
                    for kx in 0..self.kernel_w {
                        let r = (c * self.kernel_h + ky) * self.kernel_w + kx;
                        let src = &col[r * row_len + i * pixels..][..pixels];
                        let (x_lo, x_hi) = self.valid_range(kx, self.width, self.out_w);
                        if x_lo >= x_hi {
                            continue;
                        }
                        let first = x_lo * self.stride + kx - self.padding;
                        for (oy, src) in src.chunks_exact(self.out_w).enumerate() {
                            let Some(iy) = (oy * self.stride + ky)
                                .checked_sub(self.padding)
                                .filter(|&iy| iy < self.height)
                            else {
                                continue;
                            };
                            let dst = &mut dx[iy * self.width..][..self.width];
                            let src = &src[x_lo..x_hi];
                            if self.stride == 1 {
                                // Contiguous on both sides: a loop the compiler vectorises.
                                for (d, s) in dst[first..first + src.len()].iter_mut().zip(src) {
                                    *d += *s;
                                }
                            } else {
                                for (d, s) in dst[first..].iter_mut().step_by(self.stride).zip(src)
                                {
                                    *d += *s;
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// (c, ky, kx) of im2col row `r`.
    fn unpatch(&self, r: usize) -> (usize, usize, usize) {
        let kk = self.kernel_h * self.kernel_w;
        (r / kk, (r % kk) / self.kernel_w, r % self.kernel_w)
    }
}

/// Copies `images` images of `dy` (images, O, P) into `g`, a row-major (O, images·P) matrix.
fn gather<T: Element>(dy: &[T], images: usize, channels: usize, pixels: usize, g: &mut [T]) {
    let row_len = images * pixels;
    for (i, img) in dy.chunks_exact(channels * pixels).take(images).enumerate() {
        for (o, src) in img.chunks_exact(pixels).enumerate() {
            g[o * row_len + i * pixels..][..pixels].copy_from_slice(src);
        }
    }
}

/// Copies `images` images of `dy` (images, O, P) into `g`, a row-major (images·P, O) matrix: one
/// row per output pixel, as the weight gradient's product wants it.
fn gather_transposed<T: Element>(
    dy: &[T],
    images: usize,
    channels: usize,
    pixels: usize,
    g: &mut [T],
) {
    for (i, img) in dy.chunks_exact(channels * pixels).take(images).enumerate() {
        let rows = &mut g[i * pixels * channels..][..pixels * channels];
        for (o, src) in img.chunks_exact(pixels).enumerate() {
            for (p, &v) in src.iter().enumerate() {
                rows[p * channels + o] = v;
            }
        }
    }
}

/// The inverse of [`gather`]: `g` (O, images·P) into `y` (images, O, P).
fn scatter<T: Element>(g: &[T], images: usize, channels: usize, pixels: usize, y: &mut [T]) {
    let row_len = images * pixels;
    for (i, img) in y
        .chunks_exact_mut(channels * pixels)
        .take(images)
        .enumerate()
    {
        for (o, dst) in img.chunks_exact_mut(pixels).enumerate() {
            dst.copy_from_slice(&g[o * row_len + i * pixels..][..pixels]);
        }
    }
}

/// Element types with per-thread scratch buffers that survive between calls, so a training step
/// does not allocate (and page-fault in) tens of megabytes of im2col matrices per convolution.
trait Scratch: Element {
    /// Runs `f` with two of this thread's scratch vectors (contents unspecified, any length).
    fn with_scratch<R>(f: impl FnOnce(&mut Vec<Self>, &mut Vec<Self>) -> R) -> R;
}

macro_rules! scratch_impl {
    ($t:ty, $name:ident) => {
        thread_local! {
            static $name: RefCell<(Vec<$t>, Vec<$t>)> = const { RefCell::new((Vec::new(), Vec::new())) };
        }
        impl Scratch for $t {
            fn with_scratch<R>(f: impl FnOnce(&mut Vec<Self>, &mut Vec<Self>) -> R) -> R {
                $name.with(|cell| match cell.try_borrow_mut() {
                    Ok(mut pair) => {
                        let (a, b) = &mut *pair;
                        f(a, b)
                    }
                    // Re-entered on this thread (cannot happen today): fall back to fresh buffers.
                    Err(_) => f(&mut Vec::new(), &mut Vec::new()),
                })
            }
        }
    };
}
scratch_impl!(f32, SCRATCH_F32);
scratch_impl!(f64, SCRATCH_F64);

/// `buf` resized to exactly `len` values (new ones zero; callers overwrite what they read).
fn sized<T: Element>(buf: &mut Vec<T>, len: usize) -> &mut [T] {
    buf.resize(len, T::ZERO);
    &mut buf[..len]
}

/// Runs `f(chunk_index, chunk)` over consecutive `chunk_len`-sized chunks of `out`, in parallel
/// when `threads` is [`Threads::One`] (each call then single-threaded), else in order.
fn for_each_chunk<T: Element>(
    out: &mut [T],
    chunk_len: usize,
    threads: Threads,
    f: impl Fn(usize, &mut [T]) -> Result<()> + Sync,
) -> Result<()> {
    if chunk_len == 0 {
        return Ok(());
    }
    match threads {
        Threads::One => out
            .par_chunks_mut(chunk_len)
            .enumerate()
            .try_for_each(|(i, c)| f(i, c)),
        Threads::All => out
            .chunks_mut(chunk_len)
            .enumerate()
            .try_for_each(|(i, c)| f(i, c)),
    }
}

impl Geometry {
    fn forward<T: Scratch>(&self, x: &[T], w: &[T]) -> Result<Vec<T>> {
        let (o, p, patch) = (self.out_channels, self.pixels(), self.patch());
        let mut y = vec![T::ZERO; self.batch * o * p];
        let (per_chunk, threads) = self.chunking();
        let weight = MatRef::row_major(w, o, patch);
        for_each_chunk(&mut y, per_chunk * o * p, threads, |i, y| {
            let images = y.len() / (o * p);
            let x = &x[i * per_chunk * self.image()..][..images * self.image()];
            T::with_scratch(|col_buf, tmp_buf| {
                let col = sized(col_buf, patch * images * p);
                self.im2col(x, images, col);
                let col = MatRef::row_major(&*col, patch, images * p);
                if images == 1 {
                    return matmul(y, weight, col, false, threads);
                }
                let tmp = sized(tmp_buf, o * images * p);
                matmul(tmp, weight, col, false, threads)?;
                scatter(tmp, images, o, p, y);
                Ok(())
            })
        })?;
        Ok(y)
    }

    fn input_grad<T: Scratch>(&self, dy: &[T], w: &[T]) -> Result<Vec<T>> {
        let (o, p, patch) = (self.out_channels, self.pixels(), self.patch());
        let mut dx = vec![T::ZERO; self.batch * self.image()];
        let (per_chunk, threads) = self.chunking();
        let weight_t = MatRef::row_major(w, o, patch).t();
        for_each_chunk(&mut dx, per_chunk * self.image(), threads, |i, dx| {
            let images = dx.len() / self.image();
            let dy = &dy[i * per_chunk * o * p..][..images * o * p];
            T::with_scratch(|col_buf, g_buf| {
                let g = if images == 1 {
                    dy
                } else {
                    let g = sized(g_buf, o * images * p);
                    gather(dy, images, o, p, g);
                    &*g
                };
                let dcol = sized(col_buf, patch * images * p);
                matmul(
                    dcol,
                    weight_t,
                    MatRef::row_major(g, o, images * p),
                    false,
                    threads,
                )?;
                self.col2im(dcol, images, dx);
                Ok(())
            })
        })?;
        Ok(dx)
    }

    fn weight_grad<T: Scratch>(&self, x: &[T], dy: &[T]) -> Result<Vec<T>> {
        let (o, p, patch) = (self.out_channels, self.pixels(), self.patch());
        let (per_chunk, threads) = self.chunking();
        let chunks = self.batch.div_ceil(per_chunk);
        let partial = |i: usize| -> Result<Vec<T>> {
            let first = i * per_chunk;
            let images = per_chunk.min(self.batch - first);
            let x = &x[first * self.image()..][..images * self.image()];
            let dy = &dy[first * o * p..][..images * o * p];
            let mut dw = vec![T::ZERO; o * patch];
            // dW = gᵀ·rows with g (images·P, O) and rows (images·P, C·kh·kw): both operands have
            // the summed-over pixels as their slow axis, which is how the product packs fastest.
            T::with_scratch(|rows_buf, g_buf| {
                let rows = sized(rows_buf, images * p * patch);
                self.im2row(x, images, rows);
                let g = sized(g_buf, images * p * o);
                gather_transposed(dy, images, o, p, g);
                matmul(
                    &mut dw,
                    MatRef::row_major(&*g, images * p, o).t(),
                    MatRef::row_major(&*rows, images * p, patch),
                    false,
                    threads,
                )
            })?;
            Ok(dw)
        };
        let partials: Vec<Vec<T>> = match threads {
            Threads::One => (0..chunks)
                .into_par_iter()
                .map(partial)
                .collect::<Result<Vec<_>>>(),
            Threads::All => (0..chunks).map(partial).collect::<Result<Vec<_>>>(),
        }?;
        let mut partials = partials.into_iter();
        let mut dw = partials.next().unwrap_or_else(|| vec![T::ZERO; o * patch]);
        for part in partials {
            for (a, b) in dw.iter_mut().zip(&part) {
                *a += *b;
            }
        }
        Ok(dw)
    }
}

/// Runs `f` on two CPU arguments of the same float dtype, wrapping the result as storage.
fn dispatch2(
    (s1, l1): (&CpuStorage, &Layout),
    (s2, l2): (&CpuStorage, &Layout),
    f32_fn: impl FnOnce(&[f32], &[f32]) -> Result<Vec<f32>>,
    f64_fn: impl FnOnce(&[f64], &[f64]) -> Result<Vec<f64>>,
) -> Result<CpuStorage> {
    match (s1, s2) {
        (CpuStorage::F32(a), CpuStorage::F32(b)) => Ok(CpuStorage::F32(f32_fn(
            contiguous_values(a, l1, "conv2d")?,
            contiguous_values(b, l2, "conv2d")?,
        )?)),
        (CpuStorage::F64(a), CpuStorage::F64(b)) => Ok(CpuStorage::F64(f64_fn(
            contiguous_values(a, l1, "conv2d")?,
            contiguous_values(b, l2, "conv2d")?,
        )?)),
        _ => bail!(
            "conv2d: both arguments must be f32 or both f64, got {:?} and {:?}",
            s1.dtype(),
            s2.dtype()
        ),
    }
}

/// The forward convolution (x, w) → y; its backward runs [`ConvInputGrad`] and [`ConvWeightGrad`].
struct Conv2dGemm {
    geometry: Geometry,
}

impl CustomOp2 for Conv2dGemm {
    fn name(&self) -> &'static str {
        "mclr-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = self.geometry;
        let out = dispatch2(
            (s1, l1),
            (s2, l2),
            |x, w| g.forward(x, w),
            |x, w| g.forward(x, w),
        )?;
        Ok((out, g.out_shape()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let geometry = self.geometry;
        let dx = dy.apply_op2_no_bwd(w, &ConvInputGrad { geometry })?;
        let dw = x.apply_op2_no_bwd(&dy, &ConvWeightGrad { geometry })?;
        Ok((Some(dx), Some(dw)))
    }
}

/// (dy, w) → dx of [`Conv2dGemm`].
struct ConvInputGrad {
    geometry: Geometry,
}

impl CustomOp2 for ConvInputGrad {
    fn name(&self) -> &'static str {
        "mclr-conv2d-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = self.geometry;
        let out = dispatch2(
            (s1, l1),
            (s2, l2),
            |dy, w| g.input_grad(dy, w),
            |dy, w| g.input_grad(dy, w),
        )?;
        Ok((out, Shape::from((g.batch, g.channels, g.height, g.width))))
    }
}

/// (x, dy) → dw of [`Conv2dGemm`].
struct ConvWeightGrad {
    geometry: Geometry,
}

impl CustomOp2 for ConvWeightGrad {
    fn name(&self) -> &'static str {
        "mclr-conv2d-weight-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = self.geometry;
        let out = dispatch2(
            (s1, l1),
            (s2, l2),
            |x, dy| g.weight_grad(x, dy),
            |x, dy| g.weight_grad(x, dy),
        )?;
        Ok((
            out,
            Shape::from((g.out_channels, g.channels, g.kernel_h, g.kernel_w)),
        ))
    }
}
