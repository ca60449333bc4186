//! Writers of small dataset files in the exact official formats, written independently of the
//! library's readers (straight from the format descriptions), so that a layout mistake in the
//! library cannot cancel out in a round trip.
// Test helpers outside #[test] functions: a failed write is a test failure, so unwrap is right.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::path::Path;

/// Deterministic pseudo-random bytes (SplitMix64), independent of the library's RNG.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 56) as u8
        })
        .collect()
}

/// Writes CIFAR-10 records: per image one label byte, then the R, G and B planes (row-major).
/// `rgb` is `N×32×32×3` HWC.
pub fn write_cifar_batch(path: &Path, rgb: &[u8], labels: &[u8]) {
    let mut out = Vec::new();
    for (i, &label) in labels.iter().enumerate() {
        out.push(label);
        for c in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    out.push(rgb[((i * 32 + y) * 32 + x) * 3 + c]);
                }
            }
        }
    }
    std::fs::write(path, out).unwrap();
}

/// Writes STL-10 images in Matlab order: per image, channel by channel, column by column
/// (`[c][x][y]`). `rgb` is `N×96×96×3` HWC.
pub fn write_stl_images(path: &Path, rgb: &[u8]) {
    let n = rgb.len() / (96 * 96 * 3);
    let mut out = Vec::with_capacity(rgb.len());
    for i in 0..n {
        for c in 0..3 {
            for x in 0..96 {
                for y in 0..96 {
                    out.push(rgb[((i * 96 + y) * 96 + x) * 3 + c]);
                }
            }
        }
    }
    std::fs::write(path, out).unwrap();
}

/// Encodes an RGB image as JPEG (quality 95) at `path`.
pub fn write_jpeg(path: &Path, width: u32, height: u32, rgb: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(file, 95);
    enc.encode(rgb, width, height, image::ExtendedColorType::Rgb8)
        .unwrap();
}

/// The byte at pixel `(y, x)`, channel `c`, of image `i` in an `N×H×W×3` buffer.
pub fn px(rgb: &[u8], h: usize, w: usize, i: usize, y: usize, x: usize, c: usize) -> u8 {
    rgb[((i * h + y) * w + x) * 3 + c]
}
