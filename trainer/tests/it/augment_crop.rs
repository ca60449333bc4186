//! Random resized crop boxes (torchvision's rule) and PIL-style bicubic resampling.

use mclr_trainer::augment::crop::{
    AxisWeights, CropBox, RandomResizedCrop, bicubic_kernel, centre_fallback, resize_bicubic,
};
use mclr_trainer::augment::planes::Planes;
use mclr_trainer::augment::rng::StreamRng;

/// Whether a `w × h` box can come from rounding `√(T·r)` and `√(T/r)` with `T` in the scale range
/// (times the image area) and `r` in the ratio range: the acceptance branch's invariant, with the
/// half-pixel slack of the rounding.
fn consistent_with_ranges(w: usize, h: usize, area: f64, crop: &RandomResizedCrop) -> bool {
    let (w, h) = (w as f64, h as f64);
    let t_lo = (w - 0.5) * (h - 0.5);
    let t_hi = (w + 0.5) * (h + 0.5);
    let r_lo = (w - 0.5) / (h + 0.5);
    let r_hi = (w + 0.5) / (h - 0.5);
    t_hi >= crop.scale.0 * area
        && t_lo <= crop.scale.1 * area
        && r_hi >= crop.ratio.0
        && r_lo <= crop.ratio.1
}

#[test]
fn crop_boxes_stay_in_bounds_and_within_scale_and_ratio_ranges() {
    let crop = RandomResizedCrop::simclr(32);
    for (h, w) in [(32, 32), (96, 96), (64, 64), (7, 5), (40, 90), (3, 3)] {
        let mut rng = StreamRng::from_words(&[h as u64, w as u64]);
        let area = (h * w) as f64;
        let (mut min_area, mut max_area) = (f64::MAX, 0.0_f64);
        for _ in 0..5_000 {
            let b = crop.sample(&mut rng, h, w);
            assert!(b.width >= 1 && b.height >= 1, "{b:?}");
            assert!(
                b.top + b.height <= h && b.left + b.width <= w,
                "{b:?} in {h}x{w}"
            );
            let fallback = centre_fallback(h, w, crop.ratio);
            assert!(
                b == fallback || consistent_with_ranges(b.width, b.height, area, &crop),
                "{b:?} in {h}x{w}"
            );
            let frac = (b.width * b.height) as f64 / area;
            min_area = min_area.min(frac);
            max_area = max_area.max(frac);
        }
        if h == w && h * w >= 1000 {
            // The draws explore the whole scale range on square images big enough to express it.
            assert!(min_area < 0.25 && max_area > 0.9, "{min_area}..{max_area}");
        }
    }
}

#[test]
fn crop_positions_cover_every_offset_uniformly() {
    let crop = RandomResizedCrop {
        size: 8,
        scale: (0.25, 0.25),
        ratio: (1.0, 1.0),
    };
    // On 16×16 every box is 8×8 (area 64, ratio 1): 9 possible lefts, each ~1/9 of draws.
    let mut rng = StreamRng::from_words(&[5]);
    let mut counts = [0_usize; 9];
    for _ in 0..9_000 {
        let b = crop.sample(&mut rng, 16, 16);
        assert_eq!((b.width, b.height), (8, 8));
        counts[b.left] += 1;
    }
    for c in counts {
        assert!((850..=1150).contains(&c), "{counts:?}");
    }
}

#[test]
fn extreme_aspect_images_fall_back_to_the_centred_clamped_ratio_crop() {
    let crop = RandomResizedCrop::simclr(32);
    let mut rng = StreamRng::from_words(&[9]);
    // 1 px tall, 1000 wide: no try can fit; fallback h = 1, w = round(1 · 4/3) = 1, centred.
    for _ in 0..100 {
        assert_eq!(
            crop.sample(&mut rng, 1, 1000),
            CropBox {
                top: 0,
                left: 499,
                height: 1,
                width: 1
            }
        );
    }
    // 100 tall, 3 wide: fallback w = 3, h = round(3 / (3/4)) = 4, centred at top 48.
    assert_eq!(
        centre_fallback(100, 3, crop.ratio),
        CropBox {
            top: 48,
            left: 0,
            height: 4,
            width: 3
        }
    );
    // 10 tall, 40 wide: h = 10, w = round(10 · 4/3) = 13, left (40 − 13) / 2 = 13.
    assert_eq!(
        centre_fallback(10, 40, crop.ratio),
        CropBox {
            top: 0,
            left: 13,
            height: 10,
            width: 13
        }
    );
    // A ratio inside the range: the whole image.
    assert_eq!(centre_fallback(30, 32, crop.ratio), CropBox::full(30, 32));
    // 1×1: every box is the single pixel.
    for _ in 0..100 {
        assert_eq!(crop.sample(&mut rng, 1, 1), CropBox::full(1, 1));
    }
}

#[test]
fn bicubic_kernel_is_keys_cubic_with_a_minus_half() {
    assert_eq!(bicubic_kernel(0.0), 1.0);
    assert_eq!(bicubic_kernel(1.0), 0.0);
    assert_eq!(bicubic_kernel(2.0), 0.0);
    assert_eq!(bicubic_kernel(2.5), 0.0);
    assert!((bicubic_kernel(0.5) - 0.5625).abs() < 1e-12);
    assert!((bicubic_kernel(-1.5) - -0.0625).abs() < 1e-12);
    // Partition of unity at any phase.
    for i in 0..10 {
        let t = f64::from(i) / 10.0;
        let s: f64 = (-3..=3).map(|k| bicubic_kernel(t + f64::from(k))).sum();
        assert!((s - 1.0).abs() < 1e-12, "{s}");
    }
}

#[test]
fn axis_weights_match_pil_coefficients_computed_by_hand() {
    // Upscaling 4 → 8, output 0: centre 0.25, taps at x = 0, 1 (x = −1 is cut off by the edge):
    // k(0.25) = 0.8671875, k(1.25) = −0.0703125, normalised by their sum 0.796875.
    let w = AxisWeights::bicubic(4, 8);
    let (start, taps) = w.taps(0).unwrap();
    assert_eq!(start, 0);
    assert_eq!(taps.len(), 2);
    assert!(
        (f64::from(taps[0]) - 0.867_187_5 / 0.796_875).abs() < 1e-6,
        "{taps:?}"
    );
    assert!(
        (f64::from(taps[1]) - -0.070_312_5 / 0.796_875).abs() < 1e-6,
        "{taps:?}"
    );
    // Downscaling 16 → 8 (antialiasing): output 3 has centre 7 and support 4, so taps x = 3..=10
    // with weights k((x + 0.5 − 7) / 2); the stretched kernel sums to 2 before normalisation.
    let w = AxisWeights::bicubic(16, 8);
    let (start, taps) = w.taps(3).unwrap();
    assert_eq!(start, 3);
    assert_eq!(taps.len(), 8);
    for (k, &t) in taps.iter().enumerate() {
        let raw = bicubic_kernel((3.0 + k as f64 + 0.5 - 7.0) / 2.0);
        assert!((f64::from(t) - raw / 2.0).abs() < 1e-6, "{k}: {t} vs {raw}");
    }
    // Output 0 is cut off by the edge (x = −1 would be a tap): renormalised to sum 1.
    let (start, taps) = w.taps(0).unwrap();
    assert_eq!(start, 0);
    assert!((taps.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    assert!(AxisWeights::bicubic(32, 32).is_identity());
}

#[test]
fn bicubic_resize_of_a_constant_image_is_constant() {
    let src = Planes::from_fn(40, 30, |_, _| [0.3, 0.6, 0.9]);
    for (crop, oh, ow) in [
        (CropBox::full(40, 30), 32, 32),
        (
            CropBox {
                top: 3,
                left: 5,
                height: 7,
                width: 11,
            },
            32,
            32,
        ),
        (
            CropBox {
                top: 0,
                left: 0,
                height: 40,
                width: 30,
            },
            13,
            9,
        ),
        (
            CropBox {
                top: 10,
                left: 2,
                height: 1,
                width: 1,
            },
            5,
            5,
        ),
    ] {
        let out = resize_bicubic(&src, crop, oh, ow);
        assert_eq!((out.height(), out.width()), (oh, ow));
        for y in 0..oh {
            for x in 0..ow {
                let p = out.pixel(y, x).unwrap();
                for (c, want) in [0.3_f32, 0.6, 0.9].into_iter().enumerate() {
                    assert!((p[c] - want).abs() < 1e-6, "{crop:?} ({y},{x}): {p:?}");
                }
            }
        }
    }
}

#[test]
fn bicubic_resize_of_a_linear_ramp_is_linear_away_from_the_edges() {
    // v(y, x) = 0.05 + 0.005·x + 0.004·y (inside [0, 1]), sampled at pixel centres: resampling
    // maps output pixel j to input coordinate (j + 0.5)·scale − 0.5 (relative to the crop).
    // Upscaling reproduces the ramp exactly (Keys' cubic at unit spacing reproduces linear
    // functions). Downscaling stretches the kernel by a non-integer factor, whose samples no
    // longer have an exactly zero first moment: the ramp holds to within 0.05 px of position.
    let ramp = |y: f64, x: f64| 0.05 + 0.005 * x + 0.004 * y;
    let src = Planes::from_fn(96, 96, |y, x| {
        let v = ramp(y as f64, x as f64) as f32;
        [v, v, v]
    });
    for (crop, out) in [
        (
            CropBox {
                top: 8,
                left: 4,
                height: 60,
                width: 80,
            },
            32,
        ), // downscale, antialiased
        (
            CropBox {
                top: 20,
                left: 30,
                height: 12,
                width: 10,
            },
            32,
        ), // upscale
        (CropBox::full(96, 96), 64), // STL-10 size
    ] {
        let planes = resize_bicubic(&src, crop, out, out);
        let (sy, sx) = (
            crop.height as f64 / out as f64,
            crop.width as f64 / out as f64,
        );
        let (support_y, support_x) = (2.0 * sy.max(1.0), 2.0 * sx.max(1.0));
        let mut checked = 0;
        for j in 0..out {
            for i in 0..out {
                let cy = (j as f64 + 0.5) * sy;
                let cx = (i as f64 + 0.5) * sx;
                let inside = cy - support_y >= 0.0
                    && cy + support_y <= crop.height as f64
                    && cx - support_x >= 0.0
                    && cx + support_x <= crop.width as f64;
                if !inside {
                    continue;
                }
                let want = ramp(crop.top as f64 + cy - 0.5, crop.left as f64 + cx - 0.5);
                let got = planes.pixel(j, i).unwrap()[0];
                let tol = if sx > 1.0 || sy > 1.0 {
                    0.05 * (0.005 + 0.004)
                } else {
                    1e-5
                };
                assert!(
                    (f64::from(got) - want).abs() < tol,
                    "{crop:?} ({j},{i}): {got} vs {want}"
                );
                checked += 1;
            }
        }
        assert!(
            checked > out * out / 4,
            "{crop:?}: only {checked} interior pixels"
        );
    }
}

#[test]
fn resizing_to_the_same_size_is_the_identity() {
    let src = Planes::from_fn(9, 6, |y, x| [y as f32 / 9.0, x as f32 / 6.0, 0.5]);
    assert_eq!(resize_bicubic(&src, CropBox::full(9, 6), 9, 6), src);
}
