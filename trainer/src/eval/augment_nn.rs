//! Augmentation nearest neighbours (docs/method.md §10): are the learned prior's moves still the same kind
//! of image?
//!
//! The paper shows, for an image, the nearest training image of each of 8 prior-moved copies of
//! its feature. This protocol turns the figure into a number: for each query row, draw
//! `samples_per_query` coefficient samples from the fully warmed learned prior (soft threshold ζ),
//! clamp each coefficient to `[−clamp, clamp]` (1, as the figure does), move the feature by
//! `T(c)`, find its nearest training row ([`mclr_shared::geometry::KnnIndex`]), and report the
//! fraction of moved copies whose neighbour has the query's label. The same fraction for the
//! unmoved queries (1-NN agreement) is the reference point: moves that preserve identity keep the
//! agreement near it.
//!
//! Two settings ([`AugmentNnSetting`]):
//! * [`AugmentNnSetting::Reference`], the default: the authors' `src/eval/nn_aug.py`. The queries
//!   are the 20 training images from index 1337, the gallery is the whole training set (the
//!   query's own unmoved feature included, so the unmoved agreement is 1), and distances are
//!   Euclidean (`sklearn.metrics.pairwise_distances`).
//! * [`AugmentNnSetting::CosineSample`]: a larger, held-out variant: a seeded sample of
//!   `queries` test rows, cosine similarity, the training set as gallery.

use mclr_shared::geometry::{KnnIndex, Metric};
use mclr_shared::operators::{LaplaceSampler, Operators, PriorNetwork};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::identity::{CHUNK_ROWS, ensure_moves_fit, prior_params, sample_labels, stream_seed};
use super::report::AugmentationNnResult;
use super::{Features, ensure_positive, invalid};
use crate::Result;

/// Domain tag of the protocol's random streams.
const AUGMENT_NN_DOMAIN: u64 = 0x6175_676e; // "augn"

/// Which rows are queried, and how neighbours are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AugmentNnSetting {
    /// The authors' setting: [`REFERENCE_QUERIES`] training rows from [`REFERENCE_START`] (or the
    /// last ones, when the training set is smaller), Euclidean distance.
    #[default]
    Reference,
    /// `queries` test rows drawn with the protocol's seed, cosine similarity.
    CosineSample,
}

/// The first training row the reference queries (`start_idx` in `src/eval/nn_aug.py`).
pub const REFERENCE_START: usize = 1337;
/// How many training rows the reference queries (`num_images`, `src/eval/config.py`).
pub const REFERENCE_QUERIES: usize = 20;

/// The augmentation-nearest-neighbour settings; [`Default`] is the authors' protocol.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AugmentationNnConfig {
    /// Which rows are queried and with which metric.
    pub setting: AugmentNnSetting,
    /// [`AugmentNnSetting::CosineSample`] only: test rows queried, a seeded sample of this many
    /// (all rows when there are fewer). Default 1000.
    pub queries: usize,
    /// Prior samples per query (the reference's `num_augs`: 8).
    pub samples_per_query: usize,
    /// Each coefficient is clamped to `[−clamp, clamp]` before the move (the reference: 1).
    pub clamp: f32,
}

impl Default for AugmentationNnConfig {
    fn default() -> Self {
        Self {
            setting: AugmentNnSetting::Reference,
            queries: 1000,
            samples_per_query: 8,
            clamp: 1.0,
        }
    }
}

impl AugmentNnSetting {
    /// One line for reports.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Reference => {
                "the authors' setting: 20 training images from index 1337, Euclidean, training gallery"
            }
            Self::CosineSample => "a seeded sample of test images, cosine, training gallery",
        }
    }
}

/// Runs the protocol (see the module docs): `config.queries` rows drawn from `test` (seeded),
/// `config.samples_per_query` moves each sampled from `prior` with soft threshold `threshold`,
/// clamped to `[−config.clamp, config.clamp]` and applied with `operators`; neighbours are
/// searched among `train`. Every random choice is fixed by `seed`.
///
/// # Errors
/// * [`crate::Error::InvalidSetting`] for zero queries or samples, a negative or non-finite clamp,
///   an empty `train` or `test`, train/test features that differ in dimension or classes, or
///   operators and a prior network that do not fit the features;
/// * [`crate::Error::Bundle`] when the shared code refuses an input (a negative or non-finite
///   threshold, a transport that overflows).
pub fn augmentation_nn(
    train: &Features,
    test: &Features,
    operators: &Operators,
    prior: &PriorNetwork,
    threshold: f32,
    seed: u64,
    config: &AugmentationNnConfig,
) -> Result<AugmentationNnResult> {
    ensure_positive("augmentation_nn.queries", config.queries)?;
    ensure_positive(
        "augmentation_nn.samples_per_query",
        config.samples_per_query,
    )?;
    if !(config.clamp.is_finite() && config.clamp >= 0.0) {
        return Err(invalid(
            "augmentation_nn.clamp",
            "a finite number >= 0",
            config.clamp,
        ));
    }
    ensure_positive("augmentation-NN training rows", train.len())?;
    ensure_positive("augmentation-NN test rows", test.len())?;
    train.ensure_compatible(test)?;
    ensure_moves_fit(test, operators, prior)?;

    let (queries, metric) = match config.setting {
        AugmentNnSetting::Reference => {
            let count = REFERENCE_QUERIES.min(train.len());
            let start = REFERENCE_START.min(train.len() - count);
            let rows: Vec<usize> = (start..start + count).collect();
            (train.subset(&rows)?, Metric::Euclidean)
        }
        AugmentNnSetting::CosineSample => (test.sample(config.queries, seed), Metric::Cosine),
    };
    let dim = queries.dim();
    let samples = config.samples_per_query;
    let params = prior_params(&queries, prior)?;
    let moved: Vec<Vec<f32>> = queries
        .data()
        .par_chunks(CHUNK_ROWS * dim)
        .zip(params.par_iter())
        .enumerate()
        .map(|(chunk, (z, params))| {
            let mut c = LaplaceSampler::new(stream_seed(&[AUGMENT_NN_DOMAIN, seed, chunk as u64]))
                .sample(&params.loc, &params.logscale, threshold, samples)?;
            for v in &mut c {
                *v = v.clamp(-config.clamp, config.clamp);
            }
            Ok(operators.apply(&c, z)?)
        })
        .collect::<Result<_>>()?;
    let moved: Vec<f32> = moved.concat();

    let index = KnnIndex::new(train.data().to_vec(), dim, metric)?;
    let moved_labels = sample_labels(&queries, CHUNK_ROWS, samples);
    Ok(AugmentationNnResult {
        agreement: nearest_agreement(&index, train.labels(), &moved, &moved_labels)?,
        clean_agreement: nearest_agreement(
            &index,
            train.labels(),
            queries.data(),
            queries.labels(),
        )?,
        queries: queries.len(),
        samples_per_query: samples,
        setting: config.setting.describe().to_owned(),
    })
}

/// Fraction of the `rows` (row-major, one per label of `labels`) whose nearest gallery row in
/// `index` has their label (0 for no rows).
fn nearest_agreement(
    index: &KnnIndex,
    gallery_labels: &[u16],
    rows: &[f32],
    labels: &[u16],
) -> Result<f64> {
    if labels.is_empty() {
        return Ok(0.0);
    }
    let neighbours = index.search_batch(rows, 1)?;
    let agree = neighbours
        .iter()
        .zip(labels)
        .filter(|(hits, label)| {
            hits.first()
                .and_then(|hit| gallery_labels.get(hit.index))
                .is_some_and(|l| l == *label)
        })
        .count();
    Ok(agree as f64 / labels.len() as f64)
}
