//! Colour jitter and greyscale against their closed forms (torchvision's tensor formulas).
// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mclr_trainer::augment::color::{
    ColorJitter, JitterOp, LUMA, adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation,
    hsv_to_rgb, rgb_to_hsv, to_grayscale,
};
use mclr_trainer::augment::planes::Planes;
use mclr_trainer::augment::rng::StreamRng;

/// A 5×7 image of assorted colours in [0, 1], including the corners of the cube.
fn test_image() -> Planes {
    Planes::from_fn(5, 7, |y, x| {
        let t = (y * 7 + x) as f32 / 34.0;
        match (y * 7 + x) % 5 {
            0 => [t, 1.0 - t, (t * 3.0) % 1.0],
            1 => [1.0, 0.0, 0.0],
            2 => [0.25, 0.5, 0.75],
            3 => [(t * 7.0) % 1.0, (t * 5.0) % 1.0, (t * 11.0) % 1.0],
            _ => [0.5, 0.5, 0.5],
        }
    })
}

fn luma64(p: [f32; 3]) -> f64 {
    0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2])
}

fn for_each_pixel(a: &Planes, b: &Planes, mut f: impl FnMut([f32; 3], [f32; 3])) {
    for y in 0..a.height() {
        for x in 0..a.width() {
            f(a.pixel(y, x).unwrap(), b.pixel(y, x).unwrap());
        }
    }
}

fn close(a: f32, b: f64, tol: f64) -> bool {
    (f64::from(a) - b).abs() <= tol
}

#[test]
fn brightness_factor_scales_every_channel_and_clamps_at_one() {
    for factor in [0.6_f32, 1.0, 1.37] {
        let src = test_image();
        let mut out = src.clone();
        adjust_brightness(&mut out, factor);
        for_each_pixel(&src, &out, |s, o| {
            for c in 0..3 {
                let want = (f64::from(s[c]) * f64::from(factor)).min(1.0);
                assert!(close(o[c], want, 1e-6), "{s:?} x {factor} -> {o:?}");
            }
        });
    }
}

#[test]
fn contrast_blends_with_the_mean_luma_of_the_whole_image() {
    let src = test_image();
    let mut mean = 0.0;
    for_each_pixel(&src, &src, |s, _| mean += luma64(s));
    mean /= 35.0;
    for factor in [0.6_f32, 1.4] {
        let mut out = src.clone();
        adjust_contrast(&mut out, factor);
        let f = f64::from(factor);
        for_each_pixel(&src, &out, |s, o| {
            for c in 0..3 {
                let want = (f * f64::from(s[c]) + (1.0 - f) * mean).clamp(0.0, 1.0);
                assert!(close(o[c], want, 1e-5), "{s:?} -> {o:?}, want {want}");
            }
        });
    }
}

#[test]
fn saturation_blends_each_pixel_with_its_own_luma() {
    let src = test_image();
    for factor in [0.0_f32, 0.6, 1.4] {
        let mut out = src.clone();
        adjust_saturation(&mut out, factor);
        let f = f64::from(factor);
        for_each_pixel(&src, &out, |s, o| {
            let l = luma64(s);
            for c in 0..3 {
                let want = (f * f64::from(s[c]) + (1.0 - f) * l).clamp(0.0, 1.0);
                assert!(close(o[c], want, 1e-5), "{s:?} -> {o:?}, want {want}");
            }
        });
    }
}

#[test]
fn grayscale_uses_itu_r_601_weights_on_every_channel() {
    assert_eq!(LUMA, [0.299, 0.587, 0.114]);
    let mut primaries = Planes::from_fn(1, 4, |_, x| match x {
        0 => [1.0, 0.0, 0.0],
        1 => [0.0, 1.0, 0.0],
        2 => [0.0, 0.0, 1.0],
        _ => [0.2, 0.4, 0.8],
    });
    to_grayscale(&mut primaries);
    let want = [0.299, 0.587, 0.114, 0.299 * 0.2 + 0.587 * 0.4 + 0.114 * 0.8];
    for (x, w) in want.into_iter().enumerate() {
        let p = primaries.pixel(0, x).unwrap();
        for c in 0..3 {
            assert!(close(p[c], w, 1e-6), "pixel {x}: {p:?}, want {w}");
        }
    }
}

#[test]
fn hue_shift_by_a_third_turns_pure_red_into_pure_green_then_blue() {
    let red = Planes::from_fn(2, 2, |_, _| [1.0, 0.0, 0.0]);
    for (shift, want) in [
        (1.0 / 3.0, [0.0, 1.0, 0.0]),
        (2.0 / 3.0 - 1.0, [0.0, 0.0, 1.0]), // −1/3: the other way round
        (0.5, [0.0, 1.0, 1.0]),             // cyan, the complement
        (1.0 / 6.0, [1.0, 1.0, 0.0]),       // yellow
    ] {
        let mut out = red.clone();
        adjust_hue(&mut out, shift as f32);
        let p = out.pixel(1, 1).unwrap();
        for c in 0..3 {
            assert!(
                close(p[c], want[c], 1e-5),
                "shift {shift}: {p:?}, want {want:?}"
            );
        }
    }
}

#[test]
fn hue_shift_keeps_greys_and_value_and_zero_shift_is_identity() {
    let src = test_image();
    let mut same = src.clone();
    adjust_hue(&mut same, 0.0);
    for_each_pixel(&src, &same, |s, o| {
        for c in 0..3 {
            assert!(close(o[c], f64::from(s[c]), 1e-6), "{s:?} -> {o:?}");
        }
    });
    let mut shifted = src.clone();
    adjust_hue(&mut shifted, 0.23);
    for_each_pixel(&src, &shifted, |s, o| {
        // HSV value (the max channel) and the chroma (max − min) are preserved by a hue rotation.
        let (smax, smin) = (
            s.iter().copied().fold(0.0, f32::max),
            s.iter().copied().fold(1.0, f32::min),
        );
        let (omax, omin) = (
            o.iter().copied().fold(0.0, f32::max),
            o.iter().copied().fold(1.0, f32::min),
        );
        assert!(close(omax, f64::from(smax), 1e-5), "{s:?} -> {o:?}");
        assert!(
            close(omax - omin, f64::from(smax - smin), 1e-5),
            "{s:?} -> {o:?}"
        );
        if smax == smin {
            assert_eq!(s, o);
        }
    });
}

#[test]
fn hue_shift_equals_torchvision_hsv_round_trip_with_the_shift() {
    let mut rng = StreamRng::from_words(&[2]);
    for _ in 0..200 {
        let shift = rng.uniform(-0.5, 0.5) as f32;
        let src = Planes::from_fn(4, 4, |_, _| [rng_unit(), rng_unit(), rng_unit()]);
        let mut out = src.clone();
        adjust_hue(&mut out, shift);
        for_each_pixel(&src, &out, |s, o| {
            let [h, sat, v] = rgb_to_hsv(s);
            let want = hsv_to_rgb([(h + shift).rem_euclid(1.0), sat, v]);
            for c in 0..3 {
                assert!(
                    (o[c] - want[c]).abs() < 2e-6,
                    "{s:?} shifted {shift}: {o:?} vs {want:?}"
                );
            }
        });
    }
}

/// A pseudo-random value in [0, 1] from a thread-local counter (varied pixel colours).
fn rng_unit() -> f32 {
    use std::cell::Cell;
    thread_local!(static STATE: Cell<u64> = const { Cell::new(1) });
    STATE.with(|s| {
        let x = s
            .get()
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        s.set(x);
        (x >> 40) as f32 / (1u64 << 24) as f32
    })
}

#[test]
fn hsv_conversion_matches_known_values_and_round_trips() {
    let orange = rgb_to_hsv([1.0, 0.5, 0.0]);
    assert!(close(orange[0], 1.0 / 12.0, 1e-6) && orange[1] == 1.0 && orange[2] == 1.0);
    let h = rgb_to_hsv([0.2, 0.4, 0.8]); // blue is the max: H = (4 + (r − g)/(max − min)) / 6
    assert!(close(h[0], (4.0 + (0.2 - 0.4) / 0.6) / 6.0, 1e-6), "{h:?}");
    assert!(close(h[1], 0.6 / 0.8, 1e-6) && close(h[2], 0.8, 1e-7));
    let mut rng = StreamRng::from_words(&[1]);
    for _ in 0..1000 {
        let rgb = [rng.unit() as f32, rng.unit() as f32, rng.unit() as f32];
        let back = hsv_to_rgb(rgb_to_hsv(rgb));
        for c in 0..3 {
            assert!((back[c] - rgb[c]).abs() < 1e-5, "{rgb:?} -> {back:?}");
        }
    }
}

#[test]
fn jitter_draws_follow_torchvision_ranges_probability_and_random_order() {
    let jitter = ColorJitter::SIMCLR;
    let mut rng = StreamRng::from_words(&[7]);
    let draws = 20_000;
    let mut applied = 0;
    let mut first_counts = [0_usize; 4];
    for _ in 0..draws {
        let Some(p) = jitter.sample(&mut rng) else {
            continue;
        };
        applied += 1;
        for f in [p.brightness, p.contrast, p.saturation] {
            let f = f.unwrap();
            assert!((0.6..1.4).contains(&f), "{f}");
        }
        let h = p.hue.unwrap();
        assert!((-0.1..0.1).contains(&h), "{h}");
        let mut ops = p.order.to_vec();
        ops.sort_by_key(|op| *op as usize);
        assert_eq!(
            ops,
            [
                JitterOp::Brightness,
                JitterOp::Contrast,
                JitterOp::Saturation,
                JitterOp::Hue
            ]
        );
        first_counts[p.order[0] as usize] += 1;
    }
    // p = 0.8: 16,000 expected, binomial sd ≈ 57.
    assert!((15_700..=16_300).contains(&applied), "{applied}");
    // Each op comes first a quarter of the time: 4,000 expected, sd ≈ 55.
    for c in first_counts {
        assert!((3_700..=4_300).contains(&c), "{first_counts:?}");
    }
}

#[test]
fn jitter_with_zero_strengths_skips_those_operations_and_validates_ranges() {
    let jitter = ColorJitter {
        brightness: 0.0,
        contrast: 0.0,
        saturation: 0.5,
        hue: 0.0,
        p: 1.0,
    };
    let mut rng = StreamRng::from_words(&[3]);
    let p = jitter.sample(&mut rng).unwrap();
    assert_eq!((p.brightness, p.contrast, p.hue), (None, None, None));
    assert!(p.saturation.is_some());
    let src = test_image();
    let mut out = src.clone();
    p.apply(&mut out);
    let mut want = src.clone();
    adjust_saturation(&mut want, p.saturation.unwrap());
    assert_eq!(out, want);

    assert!(
        ColorJitter {
            hue: 0.6,
            ..ColorJitter::SIMCLR
        }
        .validate()
        .is_err()
    );
    assert!(
        ColorJitter {
            p: 1.5,
            ..ColorJitter::SIMCLR
        }
        .validate()
        .is_err()
    );
    assert!(
        ColorJitter {
            brightness: -0.1,
            ..ColorJitter::SIMCLR
        }
        .validate()
        .is_err()
    );
    assert!(ColorJitter::SIMCLR.validate().is_ok());
}
