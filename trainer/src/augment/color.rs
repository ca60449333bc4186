//! Colour augmentations: torchvision's `ColorJitter` and `RandomGrayscale`, on `f32` planes.
//!
//! The formulas are those of torchvision's tensor backend (`functional_tensor`), applied to values
//! in `[0, 1]` and clamped back to `[0, 1]` after every operation:
//!
//! * brightness `f`: blend with black, `x·f`;
//! * contrast `f`: blend with the mean of the greyscale image, `f·x + (1 − f)·mean(luma)`;
//! * saturation `f`: blend with the greyscale image, `f·x + (1 − f)·luma`;
//! * hue `h`: RGB → HSV, `H ← (H + h) mod 1`, HSV → RGB (torchvision's `_rgb2hsv` / `_hsv2rgb`);
//! * greyscale: every channel becomes the luma.
//!
//! The per-pixel code avoids `mul_add`, `floor` and `%` on floats: without FMA/SSE4.1 in the
//! target (the x86-64 baseline) each of those is a libm call, which made the hot path 5× slower.
//!
//! Luma uses the ITU-R 601 weights [`LUMA`] (as PIL's `convert("L")`; torchvision's tensor code
//! writes 0.2989 for red).

use super::planes::Planes;
use super::rng::StreamRng;
use crate::error::{Error, Result};

/// ITU-R BT.601 luma weights (R, G, B).
pub const LUMA: [f32; 3] = [0.299, 0.587, 0.114];

/// One of the four jitter operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JitterOp {
    /// Scale every channel.
    Brightness,
    /// Blend with the mean grey level.
    Contrast,
    /// Blend with the greyscale image.
    Saturation,
    /// Rotate the hue.
    Hue,
}

/// torchvision's `RandomApply([ColorJitter(brightness, contrast, saturation, hue)], p)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ColorJitter {
    /// Brightness factor drawn from `U[max(0, 1 − b), 1 + b]`; 0 disables it.
    pub brightness: f32,
    /// Contrast factor drawn from `U[max(0, 1 − c), 1 + c]`; 0 disables it.
    pub contrast: f32,
    /// Saturation factor drawn from `U[max(0, 1 − s), 1 + s]`; 0 disables it.
    pub saturation: f32,
    /// Hue shift drawn from `U[−h, h]`, `h ≤ 0.5`; 0 disables it.
    pub hue: f32,
    /// Probability of applying the jitter at all.
    pub p: f32,
}

impl ColorJitter {
    /// SimCLR's setting, used by the reference (docs/method.md §8): 0.4, 0.4, 0.4, 0.1 with p = 0.8.
    pub const SIMCLR: Self = Self {
        brightness: 0.4,
        contrast: 0.4,
        saturation: 0.4,
        hue: 0.1,
        p: 0.8,
    };

    /// Checks the ranges torchvision accepts.
    pub fn validate(&self) -> Result<()> {
        for (setting, v) in [
            ("color_jitter.brightness", self.brightness),
            ("color_jitter.contrast", self.contrast),
            ("color_jitter.saturation", self.saturation),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::InvalidSetting {
                    setting,
                    expected: "a finite value ≥ 0".into(),
                    found: v.to_string(),
                });
            }
        }
        if !(0.0..=0.5).contains(&self.hue) {
            return Err(Error::InvalidSetting {
                setting: "color_jitter.hue",
                expected: "a value in [0, 0.5]".into(),
                found: self.hue.to_string(),
            });
        }
        check_probability("color_jitter.p", self.p)
    }

    /// Draws the jitter of one view: `None` when it is not applied (probability `1 − p`), else a
    /// random order of the four operations and their factors. Draw order: apply?, permutation,
    /// brightness, contrast, saturation, hue (as torchvision's `get_params`).
    pub fn sample(&self, rng: &mut StreamRng) -> Option<JitterParams> {
        if !rng.bernoulli(f64::from(self.p)) {
            return None;
        }
        let mut order = [
            JitterOp::Brightness,
            JitterOp::Contrast,
            JitterOp::Saturation,
            JitterOp::Hue,
        ];
        rng.shuffle(&mut order);
        let mut factor = |strength: f32| {
            (strength > 0.0).then(|| {
                let lo = f64::from((1.0 - strength).max(0.0));
                rng.uniform(lo, f64::from(1.0 + strength)) as f32
            })
        };
        let brightness = factor(self.brightness);
        let contrast = factor(self.contrast);
        let saturation = factor(self.saturation);
        let hue =
            (self.hue > 0.0).then(|| rng.uniform(-f64::from(self.hue), f64::from(self.hue)) as f32);
        Some(JitterParams {
            order,
            brightness,
            contrast,
            saturation,
            hue,
        })
    }
}

/// One drawn colour jitter: the order of the operations and each factor (`None`: skipped).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JitterParams {
    /// The order in which the operations are applied.
    pub order: [JitterOp; 4],
    /// Brightness factor.
    pub brightness: Option<f32>,
    /// Contrast factor.
    pub contrast: Option<f32>,
    /// Saturation factor.
    pub saturation: Option<f32>,
    /// Hue shift, in turns.
    pub hue: Option<f32>,
}

impl JitterParams {
    /// Applies the operations in order.
    pub fn apply(&self, planes: &mut Planes) {
        for op in self.order {
            match op {
                JitterOp::Brightness => self.brightness.map(|f| adjust_brightness(planes, f)),
                JitterOp::Contrast => self.contrast.map(|f| adjust_contrast(planes, f)),
                JitterOp::Saturation => self.saturation.map(|f| adjust_saturation(planes, f)),
                JitterOp::Hue => self.hue.map(|h| adjust_hue(planes, h)),
            };
        }
    }
}

/// Multiplies every channel by `factor`, clamped to `[0, 1]`.
pub fn adjust_brightness(planes: &mut Planes, factor: f32) {
    for channel in planes.channels_mut() {
        for v in channel.iter_mut() {
            *v = (*v * factor).clamp(0.0, 1.0);
        }
    }
}

/// Blends with the image's mean luma: `factor·x + (1 − factor)·mean`, clamped.
pub fn adjust_contrast(planes: &mut Planes, factor: f32) {
    let n = planes.plane_len();
    if n == 0 {
        return;
    }
    // The mean luma is the luma of the channel means (luma is linear).
    let means = planes
        .channels()
        .map(|c| c.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64);
    let mean = LUMA
        .iter()
        .zip(means)
        .map(|(&w, m)| f64::from(w) * m)
        .sum::<f64>() as f32;
    let offset = (1.0 - factor) * mean;
    for channel in planes.channels_mut() {
        for v in channel.iter_mut() {
            *v = (factor * *v + offset).clamp(0.0, 1.0);
        }
    }
}

/// Blends every pixel with its own luma: `factor·x + (1 − factor)·luma`, clamped.
pub fn adjust_saturation(planes: &mut Planes, factor: f32) {
    let [r, g, b] = planes.channels_mut();
    let keep = 1.0 - factor;
    for ((r, g), b) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()) {
        let grey = keep * luma(*r, *g, *b);
        *r = (factor * *r + grey).clamp(0.0, 1.0);
        *g = (factor * *g + grey).clamp(0.0, 1.0);
        *b = (factor * *b + grey).clamp(0.0, 1.0);
    }
}

/// Rotates the hue by `shift` turns (`H ← (H + shift) mod 1` in HSV), clamped.
///
/// Per pixel this is [`rgb_to_hsv`], the shift and [`hsv_to_rgb`], written without data-dependent
/// branches for speed: HSV → RGB as `v − v·s·clamp(min(k, 4 − k), 0, 1)` with
/// `k = (n + 6H) mod 6` and `n = 5, 3, 1` for R, G, B, which equals torchvision's sector table
/// (`v`, `p = v(1 − s)`, `q = v(1 − s·f)`, `t = v(1 − s(1 − f))`) up to rounding. Grey pixels
/// (`s = 0`) come back unchanged.
pub fn adjust_hue(planes: &mut Planes, shift: f32) {
    let [r, g, b] = planes.channels_mut();
    for ((r, g), b) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()) {
        let (vr, vg, vb) = (*r, *g, *b);
        let maxc = vr.max(vg).max(vb);
        let minc = vr.min(vg).min(vb);
        let cr = maxc - minc;
        let grey = cr == 0.0;
        let s = cr / if grey { 1.0 } else { maxc };
        let inv = 1.0 / if grey { 1.0 } else { cr };
        let h = if maxc == vr {
            (vg - vb) * inv
        } else if maxc == vg {
            2.0 + (vb - vr) * inv
        } else {
            4.0 + (vr - vg) * inv
        };
        let h6 = 6.0 * wrap_unit(wrap_unit(h / 6.0 + 1.0) + shift);
        let vs = maxc * s;
        let channel = |n: f32| {
            let k = n + h6;
            let k = if k >= 6.0 { k - 6.0 } else { k };
            (maxc - vs * k.min(4.0 - k).clamp(0.0, 1.0)).clamp(0.0, 1.0)
        };
        *r = channel(5.0);
        *g = channel(3.0);
        *b = channel(1.0);
    }
}

/// Replaces every channel by the luma (torchvision's `rgb_to_grayscale` with 3 output channels).
pub fn to_grayscale(planes: &mut Planes) {
    let [r, g, b] = planes.channels_mut();
    for ((r, g), b) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()) {
        let l = luma(*r, *g, *b).clamp(0.0, 1.0);
        *r = l;
        *g = l;
        *b = l;
    }
}

/// ITU-R 601 luma of one pixel.
#[inline]
pub fn luma(r: f32, g: f32, b: f32) -> f32 {
    LUMA[0] * r + LUMA[1] * g + LUMA[2] * b
}

/// RGB → HSV as torchvision's `_rgb2hsv`: H in `[0, 1)` turns, S and V in `[0, 1]`; grey pixels
/// get H = 0 and S = 0.
#[inline]
pub fn rgb_to_hsv([r, g, b]: [f32; 3]) -> [f32; 3] {
    let maxc = r.max(g).max(b);
    let minc = r.min(g).min(b);
    let cr = maxc - minc;
    if cr == 0.0 {
        return [0.0, 0.0, maxc];
    }
    let s = cr / maxc;
    // torchvision's rc, gc, bc are (maxc − x) / cr; the differences it takes simplify to these.
    let inv = 1.0 / cr;
    let h = if maxc == r {
        (g - b) * inv
    } else if maxc == g {
        2.0 + (b - r) * inv
    } else {
        4.0 + (r - g) * inv
    };
    // torch.fmod(h / 6 + 1, 1) with h / 6 + 1 in [5/6, 11/6].
    [wrap_unit(h / 6.0 + 1.0), s, maxc]
}

/// HSV → RGB as torchvision's `_hsv2rgb` (sector `i = ⌊6H⌋ mod 6`, `p, q, t` clamped to `[0, 1]`).
#[inline]
pub fn hsv_to_rgb([h, s, v]: [f32; 3]) -> [f32; 3] {
    let h6 = h * 6.0;
    // h ≥ 0, so truncation is the floor (and a plain conversion, not a libm call).
    let i = (h6 as i32) as f32;
    let f = h6 - i;
    let p = (v * (1.0 - s)).clamp(0.0, 1.0);
    let q = (v * (1.0 - s * f)).clamp(0.0, 1.0);
    let t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0);
    match (i as i32).rem_euclid(6) {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

/// `x mod 1` for `x` in `[−1, 2)` (hue arithmetic), without a libm `fmod` call per pixel.
#[inline]
fn wrap_unit(x: f32) -> f32 {
    if x >= 1.0 {
        x - 1.0
    } else if x < 0.0 {
        x + 1.0
    } else {
        x
    }
}

pub(crate) fn check_probability(setting: &'static str, p: f32) -> Result<()> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(Error::InvalidSetting {
            setting,
            expected: "a probability in [0, 1]".into(),
            found: p.to_string(),
        })
    }
}
