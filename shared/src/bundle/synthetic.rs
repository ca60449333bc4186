//! Synthetic bundles: valid, deterministic, small, and made of recognisable structure rather
//! than noise. They are test and demo data (the golden fixture, the viewer's demo mode, tests
//! across crates), never the output of training: nothing in them was learned.
//!
//! What they contain:
//! * operators with `ManifoldCLR`'s "stable init": every 2×2 diagonal sub-block of Ψ[m, k] is
//!   `[[r, −w], [w, r]]` with r ~ U(−5e−5, 5e−5) and w ~ U(−3, 3) drawn once per (m, k), so
//!   exp(t Ψ) is (nearly) a rotation in each plane; an odd n leaves the last row and column 0;
//! * prior and encoder MLPs with two trunk layers of width `hidden`, weights ~ U(±1/√in) as
//!   `PyTorch` initialises them;
//! * gallery features in class clusters (a centre per class plus uniform noise, clamped at 0 like
//!   `ReLU` features), stored as f16; labels cycle through the classes;
//! * a PCA basis: the mean of the (f16-rounded) features and two orthonormal directions through
//!   the class centres, with the variance of the features along each;
//! * operator statistics: true Frobenius norms, made-up usage and class heatmap;
//! * a real PNG sprite sheet, each tile filled with its class's colour.

use std::collections::BTreeMap;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use super::array::ArrayBlob;
use super::contents::{
    Bundle, Gallery, ImageFormat, LinearWeights, MlpWeights, OperatorStats, PcaBasis, RunMetadata,
    RunRecord, Thumbnails,
};
use super::png;
use super::weights::WeightPrecision;
use crate::error::{Error, Result};

/// Sizes and seed of a synthetic bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticSpec {
    /// M, number of operators; ≥ 1.
    pub operators: usize,
    /// K, number of blocks; ≥ 1.
    pub blocks: usize,
    /// n, block size; ≥ 1, and K·n ≥ 2 so that a 2-D PCA basis exists.
    pub block_size: usize,
    /// N, gallery images; ≥ 1.
    pub gallery: usize,
    /// C, classes; 1 ..= 65536 (labels are u16).
    pub classes: usize,
    /// Width of the MLPs' trunk layers; ≥ 1.
    pub hidden: usize,
    /// Width and height of a thumbnail tile in pixels; ≥ 1.
    pub tile_px: u32,
    /// Seed of the `ChaCha8` generator; the same spec always gives the same bundle.
    pub seed: u64,
}

impl Default for SyntheticSpec {
    /// M = 4 operators, K = 2 blocks of n = 8, 40 images in 4 classes, hidden width 16, 16 px
    /// tiles, seed 0.
    fn default() -> Self {
        Self {
            operators: 4,
            blocks: 2,
            block_size: 8,
            gallery: 40,
            classes: 4,
            hidden: 16,
            tile_px: 16,
            seed: 0,
        }
    }
}

/// Class names for the first ten classes (CIFAR-10's, in its label order); later classes are
/// `class {c}`.
pub const CLASS_NAMES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Tile colours for the first ten classes (matplotlib's tab10), reused by the viewer's palette.
const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// Colour of the unused cells at the end of the sheet's last row.
const BACKGROUND: [u8; 3] = [24, 24, 24];

/// Builds a valid bundle from `spec` (see the module docs for what it holds). Deterministic in
/// `spec`, including across platforms (only +, ×, ÷ and √ on f32).
pub fn synthetic_bundle(spec: &SyntheticSpec) -> Result<Bundle> {
    check_spec(spec)?;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let (m, k, n) = (spec.operators, spec.blocks, spec.block_size);
    let d = k
        .checked_mul(n)
        .ok_or_else(|| Error::invalid("spec", "blocks × block_size overflows"))?;

    let psi = stable_init(&mut rng, m, k, n)?;
    let operators = ArrayBlob::from_f32(&[m, k, n, n], &psi)?;
    let prior = mlp(&mut rng, d, spec.hidden, m)?;
    let encoder = mlp(&mut rng, d.saturating_mul(2), spec.hidden, m)?;

    let labels: Vec<u16> = (0..spec.gallery)
        .map(|i| u16::try_from(i % spec.classes).unwrap_or(u16::MAX))
        .collect();
    let centres: Vec<Vec<f32>> = (0..spec.classes)
        .map(|_| (0..d).map(|_| uniform(&mut rng, 0.0, 2.0)).collect())
        .collect();
    let raw_features: Vec<f32> = labels
        .iter()
        .flat_map(|&label| centres.get(usize::from(label)).into_iter().flatten())
        .map(|&c| (c + uniform(&mut rng, -0.35, 0.35)).max(0.0))
        .collect();
    let features = ArrayBlob::from_f16_lossy(&[spec.gallery, d], &raw_features)?;
    // Everything derived from the features uses the values the bundle stores.
    let stored = features.to_f32_vec()?;
    let source_indices: Vec<u32> = (0..spec.gallery)
        .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
        .collect();
    let class_names: Vec<String> = (0..spec.classes)
        .map(|c| {
            CLASS_NAMES
                .get(c)
                .map_or_else(|| format!("class {c}"), |name| (*name).to_owned())
        })
        .collect();

    let pca = pca_basis(&mut rng, &stored, &centres, d)?;
    let stats = operator_stats(&mut rng, &psi, m, spec.classes)?;
    let thumbnails = sprite_sheet(&labels, spec.tile_px)?;

    let mut metrics = BTreeMap::new();
    metrics.insert("linear_top1".to_owned(), 0.5);
    metrics.insert("knn_top1".to_owned(), 0.25);
    let bundle = Bundle {
        metadata: RunMetadata {
            dataset: "synthetic".to_owned(),
            method: "manifoldclr".to_owned(),
            config_toml: format!(
                "# synthetic bundle: test and demo data, not a trained run\n\
                 [synthetic]\noperators = {m}\nblocks = {k}\nblock_size = {n}\n\
                 gallery = {}\nclasses = {}\nhidden = {}\ntile_px = {}\nseed = {}\n",
                spec.gallery, spec.classes, spec.hidden, spec.tile_px, spec.seed
            ),
            producer: format!("mclr-shared {} (synthetic)", env!("CARGO_PKG_VERSION")),
            epochs: 0,
            steps: 0,
            threshold: 0.1,
            metrics,
        },
        operators,
        prior,
        encoder,
        gallery: Gallery {
            split: "test".to_owned(),
            features,
            labels: ArrayBlob::from_u16(&[spec.gallery], &labels)?,
            class_names,
            source_indices: ArrayBlob::from_u32(&[spec.gallery], &source_indices)?,
        },
        thumbnails,
        pca,
        stats,
        run: RunRecord::default(),
    };
    super::validate(&bundle)?;
    Ok(bundle)
}

/// Rejects specs that cannot make a valid bundle.
fn check_spec(spec: &SyntheticSpec) -> Result<()> {
    let positive = [
        ("spec.operators", spec.operators),
        ("spec.blocks", spec.blocks),
        ("spec.block_size", spec.block_size),
        ("spec.gallery", spec.gallery),
        ("spec.classes", spec.classes),
        ("spec.hidden", spec.hidden),
    ];
    if let Some((field, _)) = positive.iter().find(|(_, v)| *v == 0) {
        return Err(Error::invalid(*field, "must be at least 1"));
    }
    if spec.tile_px == 0 {
        return Err(Error::invalid("spec.tile_px", "must be at least 1"));
    }
    if spec.blocks.saturating_mul(spec.block_size) < 2 {
        return Err(Error::invalid(
            "spec.block_size",
            "blocks × block_size must be at least 2 for a 2-D PCA basis",
        ));
    }
    if spec.classes > usize::from(u16::MAX) + 1 {
        return Err(Error::invalid(
            "spec.classes",
            format!(
                "labels are u16, so at most 65536 classes, got {}",
                spec.classes
            ),
        ));
    }
    if u32::try_from(spec.gallery).is_err() {
        return Err(Error::invalid("spec.gallery", "must fit a u32"));
    }
    Ok(())
}

/// A uniform sample from [lo, hi) with 24 random bits (every value exactly representable).
fn uniform(rng: &mut ChaCha8Rng, lo: f32, hi: f32) -> f32 {
    let unit = (rng.next_u32() >> 8) as f32 * (1.0 / 16_777_216.0);
    lo + (hi - lo) * unit
}

/// Ψ of shape (M, K, n, n), row-major, with the stable init of the module docs.
fn stable_init(rng: &mut ChaCha8Rng, m: usize, k: usize, n: usize) -> Result<Vec<f32>> {
    let block_len = n
        .checked_mul(n)
        .ok_or_else(|| Error::invalid("spec.block_size", "n² overflows"))?;
    let total = block_len
        .checked_mul(k)
        .and_then(|v| v.checked_mul(m))
        .ok_or_else(|| Error::invalid("spec", "M·K·n² overflows"))?;
    let mut psi = vec![0.0_f32; total];
    for block in psi.chunks_exact_mut(block_len) {
        let r = uniform(rng, -5e-5, 5e-5);
        let w = uniform(rng, -3.0, 3.0);
        for p in 0..n / 2 {
            let (i, j) = (2 * p, 2 * p + 1);
            for (row, col, value) in [(i, i, r), (i, j, -w), (j, i, w), (j, j, r)] {
                if let Some(slot) = block.get_mut(row * n + col) {
                    *slot = value;
                }
            }
        }
    }
    Ok(psi)
}

/// A layer `input → output` with weights and biases ~ U(±1/√input).
fn linear(rng: &mut ChaCha8Rng, input: usize, output: usize) -> Result<LinearWeights> {
    let bound = 1.0 / (input as f32).sqrt();
    let count = input
        .checked_mul(output)
        .ok_or_else(|| Error::invalid("spec.hidden", "layer size overflows"))?;
    let weight: Vec<f32> = (0..count).map(|_| uniform(rng, -bound, bound)).collect();
    let bias: Vec<f32> = (0..output).map(|_| uniform(rng, -bound, bound)).collect();
    LinearWeights::from_dense(input, output, &weight, &bias, WeightPrecision::F32)
}

/// Trunk `input → hidden → hidden`, heads `hidden → outputs`.
fn mlp(rng: &mut ChaCha8Rng, input: usize, hidden: usize, outputs: usize) -> Result<MlpWeights> {
    Ok(MlpWeights {
        trunk: vec![linear(rng, input, hidden)?, linear(rng, hidden, hidden)?],
        scale_head: linear(rng, hidden, outputs)?,
        loc_head: linear(rng, hidden, outputs)?,
    })
}

/// Mean of `features` (N × d, row-major), two orthonormal directions through the class centres
/// (random ones, then coordinate axes, where those are degenerate), and the variance along each,
/// largest first.
fn pca_basis(
    rng: &mut ChaCha8Rng,
    features: &[f32],
    centres: &[Vec<f32>],
    d: usize,
) -> Result<PcaBasis> {
    let rows = features.len() / d.max(1);
    let mut mean = vec![0.0_f32; d];
    for row in features.chunks_exact(d) {
        for (acc, &x) in mean.iter_mut().zip(row) {
            *acc += x;
        }
    }
    for acc in &mut mean {
        *acc /= rows.max(1) as f32;
    }

    let difference = |a: usize, b: usize| -> Option<Vec<f32>> {
        let (a, b) = (centres.get(a)?, centres.get(b)?);
        Some(a.iter().zip(b).map(|(x, y)| x - y).collect())
    };
    let random: Vec<Vec<f32>> = (0..2)
        .map(|_| (0..d).map(|_| uniform(rng, -1.0, 1.0)).collect())
        .collect();
    let axes = (0..2).map(|axis| (0..d).map(|j| f32::from(u8::from(j == axis))).collect());
    let candidates = [difference(1, 0), difference(2, 0)]
        .into_iter()
        .flatten()
        .chain(random)
        .chain(axes);
    let mut basis: Vec<Vec<f32>> = Vec::with_capacity(2);
    for mut v in candidates {
        if basis.len() == 2 {
            break;
        }
        for b in &basis {
            let along = dot(&v, b);
            for (x, y) in v.iter_mut().zip(b) {
                *x -= along * y;
            }
        }
        let norm = dot(&v, &v).sqrt();
        if norm > 1e-3 {
            v.iter_mut().for_each(|x| *x /= norm);
            basis.push(v);
        }
    }

    let centred: Vec<Vec<f32>> = features
        .chunks_exact(d)
        .map(|row| row.iter().zip(&mean).map(|(x, m)| x - m).collect())
        .collect();
    let variance = |direction: &[f32]| -> f32 {
        let sum: f32 = centred
            .iter()
            .map(|z| {
                let along = dot(z, direction);
                along * along
            })
            .sum();
        sum / rows.max(1) as f32
    };
    let mut scored: Vec<(f32, Vec<f32>)> = basis.into_iter().map(|b| (variance(&b), b)).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let p = scored.len();
    let explained: Vec<f32> = scored.iter().map(|(v, _)| *v).collect();
    let components: Vec<f32> = scored.into_iter().flat_map(|(_, b)| b).collect();
    Ok(PcaBasis {
        mean: ArrayBlob::from_f32(&[d], &mean)?,
        components: ArrayBlob::from_f32(&[p, d], &components)?,
        explained_variance: ArrayBlob::from_f32(&[p], &explained)?,
    })
}

/// Frobenius norm of each `Ψ_m`, with made-up usage in [0.2, 1) and a class heatmap.
fn operator_stats(
    rng: &mut ChaCha8Rng,
    psi: &[f32],
    m: usize,
    classes: usize,
) -> Result<OperatorStats> {
    let per_operator = psi.len() / m.max(1);
    let norms: Vec<f32> = psi
        .chunks_exact(per_operator.max(1))
        .map(|op| dot(op, op).sqrt())
        .collect();
    let usage: Vec<f32> = (0..m).map(|_| uniform(rng, 0.2, 1.0)).collect();
    let heatmap: Vec<f32> = (0..classes)
        .flat_map(|_| usage.clone())
        .map(|u| u * uniform(rng, 0.0, 1.0))
        .collect();
    Ok(OperatorStats {
        norms: ArrayBlob::from_f32(&[m], &norms)?,
        usage: ArrayBlob::from_f32(&[m], &usage)?,
        class_heatmap: ArrayBlob::from_f32(&[classes, m], &heatmap)?,
    })
}

/// A PNG sheet with one `tile_px` tile per label, filled with the class colour, ⌈√N⌉ columns.
fn sprite_sheet(labels: &[u16], tile_px: u32) -> Result<Thumbnails> {
    let count = u32::try_from(labels.len())
        .map_err(|_| Error::invalid("spec.gallery", "must fit a u32"))?;
    let columns = (1..=count.max(1))
        .find(|c| c.saturating_mul(*c) >= count)
        .unwrap_or(1);
    let rows = count.div_ceil(columns);
    let too_big = || Error::invalid("spec.tile_px", "sprite sheet too large");
    let width = columns.checked_mul(tile_px).ok_or_else(too_big)?;
    let height = rows.checked_mul(tile_px).ok_or_else(too_big)?;
    let (w, tile) = (width as usize, tile_px as usize);
    let mut rgb = Vec::with_capacity(w.saturating_mul(height as usize).saturating_mul(3));
    for y in 0..height as usize {
        for x in 0..w {
            let index = (y / tile) * columns as usize + x / tile;
            let colour = labels
                .get(index)
                .map_or(BACKGROUND, |&label| class_colour(label));
            rgb.extend_from_slice(&colour);
        }
    }
    Ok(Thumbnails {
        format: ImageFormat::Png,
        tile_px,
        columns,
        count,
        sheet: png::encode_rgb8(width, height, &rgb)?,
        sheet_file: None,
    })
}

/// The tile colour of class `label`: tab10 for the first ten, then a deterministic spread.
fn class_colour(label: u16) -> [u8; 3] {
    PALETTE.get(usize::from(label)).copied().unwrap_or_else(|| {
        let l = u32::from(label);
        [
            (l.wrapping_mul(97) % 200 + 40) as u8,
            (l.wrapping_mul(57) % 200 + 40) as u8,
            (l.wrapping_mul(31) % 200 + 40) as u8,
        ]
    })
}

/// ∑ aᵢ bᵢ.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
