//! torchvision's `RandomResizedCrop` box sampling and PIL's bicubic resampling.
//!
//! **Box sampling** follows `RandomResizedCrop.get_params`: up to ten tries of a target area
//! `A·U(scale)` and a log-uniform aspect ratio, `w = round(√(area·ratio))`,
//! `h = round(√(area/ratio))` (round half to even, as Python's `round`), accepted when
//! `0 < w ≤ W` and `0 < h ≤ H`, with top and left uniform integers; otherwise a centred crop with
//! the image's aspect ratio clamped into the ratio range.
//!
//! **Resampling** follows PIL's `Image.resize(..., BICUBIC)` on the cropped image (what
//! torchvision does for PIL inputs, and for tensors with `antialias=True`): a separable Keys cubic
//! (`a = −0.5`, support 2), stretched by the scale factor when downscaling (antialiasing),
//! weights normalised to sum 1 and truncated at the crop's edges; horizontal pass first, results
//! clamped to `[0, 1]` after each pass (PIL clips to 8 bits there). Unlike PIL, intermediate values
//! stay `f32` rather than being rounded to 8 bits.

use super::planes::Planes;
use super::rng::StreamRng;
use crate::error::{Error, Result};

/// A crop rectangle in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CropBox {
    /// First row.
    pub top: usize,
    /// First column.
    pub left: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl CropBox {
    /// The whole of an image.
    pub fn full(height: usize, width: usize) -> Self {
        Self {
            top: 0,
            left: 0,
            height,
            width,
        }
    }
}

/// torchvision's `RandomResizedCrop(size, scale, ratio)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RandomResizedCrop {
    /// Output side in pixels (square output).
    pub size: usize,
    /// Range of the crop's area as a fraction of the image's.
    pub scale: (f64, f64),
    /// Range of the crop's aspect ratio (width / height).
    pub ratio: (f64, f64),
}

impl RandomResizedCrop {
    /// SimCLR's ranges (scale 0.2–1, ratio 3/4–4/3) with output side `size`.
    pub fn simclr(size: usize) -> Self {
        Self {
            size,
            scale: (0.2, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
        }
    }

    /// Checks that the size is positive and the ranges are ordered, finite and positive.
    pub fn validate(&self) -> Result<()> {
        if self.size == 0 {
            return Err(Error::InvalidSetting {
                setting: "crop.size",
                expected: "at least 1 pixel".into(),
                found: "0".into(),
            });
        }
        let (s0, s1) = self.scale;
        if !(s0.is_finite() && s1.is_finite() && 0.0 < s0 && s0 <= s1) {
            return Err(Error::InvalidSetting {
                setting: "crop.scale",
                expected: "0 < min ≤ max".into(),
                found: format!("{s0}..{s1}"),
            });
        }
        let (r0, r1) = self.ratio;
        if !(r0.is_finite() && r1.is_finite() && 0.0 < r0 && r0 <= r1) {
            return Err(Error::InvalidSetting {
                setting: "crop.ratio",
                expected: "0 < min ≤ max".into(),
                found: format!("{r0}..{r1}"),
            });
        }
        Ok(())
    }

    /// Draws a crop box for a `height × width` image (see the module docs for the rule).
    pub fn sample(&self, rng: &mut StreamRng, height: usize, width: usize) -> CropBox {
        let area = (height * width) as f64;
        let (log_r0, log_r1) = (self.ratio.0.ln(), self.ratio.1.ln());
        for _ in 0..10 {
            let target = area * rng.uniform(self.scale.0, self.scale.1);
            let aspect = rng.uniform(log_r0, log_r1).exp();
            let w = (target * aspect).sqrt().round_ties_even();
            let h = (target / aspect).sqrt().round_ties_even();
            if 0.0 < w && w <= width as f64 && 0.0 < h && h <= height as f64 {
                let (w, h) = (w as usize, h as usize);
                let top = rng.below((height - h + 1) as u64) as usize;
                let left = rng.below((width - w + 1) as u64) as usize;
                return CropBox {
                    top,
                    left,
                    height: h,
                    width: w,
                };
            }
        }
        centre_fallback(height, width, self.ratio)
    }
}

/// torchvision's fallback after ten rejected tries: the largest centred crop whose aspect ratio is
/// the image's, clamped into `ratio`.
pub fn centre_fallback(height: usize, width: usize, ratio: (f64, f64)) -> CropBox {
    let in_ratio = width as f64 / height as f64;
    let (w, h) = if in_ratio < ratio.0 {
        (
            width,
            ((width as f64 / ratio.0).round_ties_even() as usize).min(height),
        )
    } else if in_ratio > ratio.1 {
        (
            ((height as f64 * ratio.1).round_ties_even() as usize).min(width),
            height,
        )
    } else {
        (width, height)
    };
    let (w, h) = (w.max(1).min(width), h.max(1).min(height));
    CropBox {
        top: (height - h) / 2,
        left: (width - w) / 2,
        height: h,
        width: w,
    }
}

/// PIL's bicubic kernel, Keys' cubic convolution with `a = −0.5`.
#[inline]
pub fn bicubic_kernel(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Precomputed 1-D resampling weights from `in_len` samples to `out_len` (PIL's
/// `precompute_coeffs` for the bicubic filter): output `i` is
/// `Σ_k weights(i)[k] · input[start(i) + k]`.
#[derive(Clone, Debug, PartialEq)]
pub struct AxisWeights {
    in_len: usize,
    out_len: usize,
    ksize: usize,
    starts: Vec<usize>,
    counts: Vec<usize>,
    weights: Vec<f32>,
    identity: bool,
}

impl AxisWeights {
    /// Bicubic weights from `in_len` to `out_len` samples, antialiased when downscaling.
    pub fn bicubic(in_len: usize, out_len: usize) -> Self {
        let in_len = in_len.max(1);
        let scale = in_len as f64 / out_len.max(1) as f64;
        let filter_scale = scale.max(1.0);
        let support = 2.0 * filter_scale;
        let ksize = support.ceil() as usize * 2 + 1;
        let mut starts = Vec::with_capacity(out_len);
        let mut counts = Vec::with_capacity(out_len);
        let mut weights = vec![0.0_f32; out_len * ksize];
        let mut row = vec![0.0_f64; ksize];
        for (i, out) in weights.chunks_exact_mut(ksize).enumerate() {
            let center = (i as f64 + 0.5) * scale;
            // `as` truncates toward zero, as PIL's `(int)` cast does.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).clamp(0, in_len as i64) as usize;
            let count = xmax.saturating_sub(xmin).min(ksize);
            let mut total = 0.0;
            for (k, w) in row.iter_mut().enumerate().take(count) {
                *w = bicubic_kernel(((xmin + k) as f64 - center + 0.5) / filter_scale);
                total += *w;
            }
            for (o, w) in out.iter_mut().zip(&row).take(count) {
                *o = if total == 0.0 { *w } else { *w / total } as f32;
            }
            starts.push(xmin);
            counts.push(count);
        }
        let identity = in_len == out_len;
        Self {
            in_len,
            out_len,
            ksize,
            starts,
            counts,
            weights,
            identity,
        }
    }

    /// Number of input samples.
    pub fn in_len(&self) -> usize {
        self.in_len
    }

    /// Number of output samples.
    pub fn out_len(&self) -> usize {
        self.out_len
    }

    /// First input sample and weights of output `i` (`None` past the end).
    pub fn taps(&self, i: usize) -> Option<(usize, &[f32])> {
        let start = *self.starts.get(i)?;
        let count = *self.counts.get(i)?;
        let w = self.weights.get(i * self.ksize..i * self.ksize + count)?;
        Some((start, w))
    }

    /// Whether this is the identity (same length in and out), so a pass can be skipped.
    pub fn is_identity(&self) -> bool {
        self.identity
    }

    /// The most taps any output has.
    pub fn ksize(&self) -> usize {
        self.ksize
    }
}

/// Output window and post-processing of [`resample_into`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Resample<'a> {
    /// Horizontal weights (crop width → full output width).
    pub wx: &'a AxisWeights,
    /// Vertical weights (crop height → full output height).
    pub wy: &'a AxisWeights,
    /// First output row and column kept, and how many rows and columns (a centre crop of the
    /// resized image; the whole of it for the SSL crops).
    pub window: CropBox,
    /// Mirror the output horizontally.
    pub flip: bool,
    /// Per-channel `(scale, offset)`: the output is `v·scale + offset` (normalisation).
    pub affine: [(f32, f32); 3],
}

/// Resamples `crop` of `src` with the given weights into `out` (three `window.height ×
/// window.width` planes, CHW), flipping and normalising on the way. `tmp` is scratch space.
pub(crate) fn resample_into(
    src: &Planes,
    crop: CropBox,
    r: &Resample<'_>,
    tmp: &mut Vec<f32>,
    out: &mut [f32],
) {
    let (src_w, win) = (src.width(), r.window);
    let (out_h, out_w) = (win.height, win.width);
    let (crop_h, crop_w) = (crop.height, crop.width);
    let plane_out = out_h * out_w;
    // Horizontal pass, per channel, into `tmp` (crop rows × window columns, row-major). To
    // vectorise it over rows rather than gather taps along a row, the crop is transposed first
    // (`cols`: one contiguous column per input x), each output column is a weighted sum of input
    // columns (`tcols`), and the result is transposed back.
    let tmp_plane = crop_h * out_w;
    tmp.clear();
    tmp.resize(3 * tmp_plane + 2 * crop_h * crop_w.max(out_w) + out_w, 0.0);
    let (tmp, rest) = tmp.split_at_mut(3 * tmp_plane);
    let (cols, rest) = rest.split_at_mut(crop_h * crop_w.max(out_w));
    let (tcols, acc) = rest.split_at_mut(crop_h * crop_w.max(out_w));
    for (channel, tmp_c) in src
        .channels()
        .into_iter()
        .zip(tmp.chunks_exact_mut(tmp_plane))
    {
        let rows = (0..crop_h).filter_map(|y| {
            let row_start = (crop.top + y) * src_w + crop.left;
            channel.get(row_start..row_start + crop_w)
        });
        if r.wx.is_identity() {
            for (row, tmp_row) in rows.zip(tmp_c.chunks_exact_mut(out_w)) {
                if let Some(s) = row.get(win.left..win.left + out_w) {
                    tmp_row.copy_from_slice(s);
                }
            }
            continue;
        }
        for (y, row) in rows.enumerate() {
            for (x, &v) in row.iter().enumerate() {
                if let Some(d) = cols.get_mut(x * crop_h + y) {
                    *d = v;
                }
            }
        }
        for (x, out_col) in tcols.chunks_exact_mut(crop_h).take(out_w).enumerate() {
            out_col.fill(0.0);
            let Some((start, w)) = r.wx.taps(win.left + x) else {
                continue;
            };
            for (k, &wk) in w.iter().enumerate() {
                let s = (start + k) * crop_h;
                let Some(col) = cols.get(s..s + crop_h) else {
                    continue;
                };
                for (o, &v) in out_col.iter_mut().zip(col) {
                    *o += wk * v;
                }
            }
        }
        for (x, col) in tcols.chunks_exact(crop_h).take(out_w).enumerate() {
            for (y, &v) in col.iter().enumerate() {
                if let Some(d) = tmp_c.get_mut(y * out_w + x) {
                    *d = v.clamp(0.0, 1.0);
                }
            }
        }
    }
    let acc = acc.get_mut(..out_w).unwrap_or_default();
    // Vertical pass: window rows, vectorised over the row; then clamp, flip, normalise.
    for ((tmp_c, out_c), &(scale, offset)) in tmp
        .chunks_exact(tmp_plane)
        .zip(out.chunks_exact_mut(plane_out))
        .zip(&r.affine)
    {
        for (y, out_row) in out_c.chunks_exact_mut(out_w).enumerate() {
            acc.fill(0.0);
            if r.wy.is_identity() {
                let s = (win.top + y) * out_w;
                if let Some(row) = tmp_c.get(s..s + out_w) {
                    acc.copy_from_slice(row);
                }
            } else if let Some((start, w)) = r.wy.taps(win.top + y) {
                for (k, &wk) in w.iter().enumerate() {
                    let s = (start + k) * out_w;
                    let Some(row) = tmp_c.get(s..s + out_w) else {
                        continue;
                    };
                    for (a, &v) in acc.iter_mut().zip(row) {
                        *a += wk * v;
                    }
                }
            }
            let acc = &*acc;
            let finish = |v: f32| v.clamp(0.0, 1.0) * scale + offset;
            if r.flip {
                for (o, &a) in out_row.iter_mut().zip(acc.iter().rev()) {
                    *o = finish(a);
                }
            } else {
                for (o, &a) in out_row.iter_mut().zip(acc) {
                    *o = finish(a);
                }
            }
        }
    }
}

/// Resizes `crop` of `src` to `out_height × out_width` with PIL's bicubic filter (clamped to
/// `[0, 1]`). An allocating convenience over the loader's in-place path.
pub fn resize_bicubic(src: &Planes, crop: CropBox, out_height: usize, out_width: usize) -> Planes {
    let crop = clamp_box(crop, src);
    let wx = AxisWeights::bicubic(crop.width, out_width);
    let wy = AxisWeights::bicubic(crop.height, out_height);
    let mut out = Planes::new(out_height, out_width);
    let r = Resample {
        wx: &wx,
        wy: &wy,
        window: CropBox::full(out_height, out_width),
        flip: false,
        affine: [(1.0, 0.0); 3],
    };
    let mut tmp = Vec::new();
    let [o0, o1, o2] = out.channels_mut();
    let mut buf = vec![0.0; 3 * out_height * out_width];
    resample_into(src, crop, &r, &mut tmp, &mut buf);
    let n = out_height * out_width;
    for (c, dst) in [o0, o1, o2].into_iter().enumerate() {
        if let Some(s) = buf.get(c * n..(c + 1) * n) {
            dst.copy_from_slice(s);
        }
    }
    out
}

/// Shrinks a box so that it lies inside `src`.
fn clamp_box(b: CropBox, src: &Planes) -> CropBox {
    let top = b.top.min(src.height());
    let left = b.left.min(src.width());
    CropBox {
        top,
        left,
        height: b.height.min(src.height() - top),
        width: b.width.min(src.width() - left),
    }
}
