//! k-nearest-neighbour classification of test features by the training features (docs/method.md §10).
//!
//! Neighbours are found by [`mclr_shared::geometry::KnnIndex`] under cosine similarity (the one
//! implementation of exact kNN in the project, shared with the viewer), and vote in one of two
//! ways, see [`KnnVote`]. When `k` exceeds the number of training rows, all rows vote.

use mclr_shared::geometry::{KnnIndex, Metric, Neighbour};

use super::linear::argmax;
use super::report::KnnResult;
use super::{Features, accuracy, ensure_positive, ensure_positive_f64, invalid};
use crate::Result;

/// How the `k` nearest training rows decide a test row's class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KnnVote {
    /// Each neighbour casts one vote; the class with most votes wins, and a tie goes to the
    /// smallest class index among the tied classes (deterministic, unlike a random tie-break, and
    /// what `argmax` over the vote counts gives). The paper: `k = 5`.
    Majority {
        /// Neighbours consulted.
        k: usize,
    },
    /// lightly's weighted vote: each neighbour adds `exp(similarity / temperature)` to its class's
    /// score, and the class with the largest score wins (smallest index on an exact tie). lightly's
    /// defaults, reported for comparison with other libraries: `k = 200`, `temperature = 0.1`.
    Weighted {
        /// Neighbours consulted.
        k: usize,
        /// Softmax temperature τ.
        temperature: f64,
    },
}

impl KnnVote {
    /// docs/method.md §10's vote: `k = 5`, majority.
    pub const PAPER: Self = Self::Majority { k: 5 };
    /// lightly's vote: `k = 200`, weights `exp(sim / 0.1)`.
    pub const LIGHTLY: Self = Self::Weighted {
        k: 200,
        temperature: 0.1,
    };

    /// Neighbours consulted.
    pub fn k(self) -> usize {
        match self {
            Self::Majority { k } | Self::Weighted { k, .. } => k,
        }
    }

    /// Fails with [`crate::Error::InvalidSetting`] on `k = 0` or a non-positive temperature.
    fn validate(self) -> Result<()> {
        ensure_positive("knn.k", self.k())?;
        if let Self::Weighted { temperature, .. } = self {
            ensure_positive_f64("knn.temperature", temperature)?;
        }
        Ok(())
    }

    /// The winning class of one query's neighbours (best first).
    fn decide(self, neighbours: &[Neighbour], labels: &[u16], classes: usize) -> u16 {
        let mut scores = vec![0.0_f64; classes];
        for neighbour in neighbours {
            let Some(&label) = labels.get(neighbour.index) else {
                continue;
            };
            let weight = match self {
                Self::Majority { .. } => 1.0,
                Self::Weighted { temperature, .. } => {
                    (f64::from(neighbour.score) / temperature).exp()
                }
            };
            if let Some(score) = scores.get_mut(usize::from(label)) {
                *score += weight;
            }
        }
        u16::try_from(argmax(&scores)).unwrap_or(0)
    }
}

/// The training features indexed for cosine kNN, with their labels.
///
/// Build it once and query it with several votes: the index holds a copy of the features.
#[derive(Debug, Clone)]
pub struct KnnClassifier {
    index: KnnIndex,
    labels: Vec<u16>,
    classes: usize,
}

impl KnnClassifier {
    /// Indexes `train` under cosine similarity.
    ///
    /// # Errors
    /// [`crate::Error::InvalidSetting`] when `train` is empty.
    pub fn new(train: &Features) -> Result<Self> {
        ensure_positive("knn training rows", train.len())?;
        let index = KnnIndex::new(train.data().to_vec(), train.dim(), Metric::Cosine)?;
        Ok(Self {
            index,
            labels: train.labels().to_vec(),
            classes: train.classes(),
        })
    }

    /// The predicted class of each row of `queries` (row-major, `rows × dim`).
    ///
    /// # Errors
    /// [`crate::Error::InvalidSetting`] for an invalid `vote`, [`crate::Error::Bundle`] (the shared
    /// geometry's error) for queries that are ragged or not finite.
    pub fn predict(&self, queries: &[f32], vote: KnnVote) -> Result<Vec<u16>> {
        vote.validate()?;
        let hits = self.index.search_batch(queries, vote.k())?;
        Ok(hits
            .iter()
            .map(|neighbours| vote.decide(neighbours, &self.labels, self.classes))
            .collect())
    }

    /// Accuracy of `vote` on `test`.
    ///
    /// # Errors
    /// As [`KnnClassifier::predict`], and [`crate::Error::InvalidSetting`] when `test` has another
    /// dimension or class count.
    pub fn evaluate(&self, test: &Features, vote: KnnVote) -> Result<KnnResult> {
        if test.dim() != self.index.dim() || test.classes() != self.classes {
            return Err(invalid(
                "test features",
                format!(
                    "{} columns and {} classes (as the training features)",
                    self.index.dim(),
                    self.classes
                ),
                format!("{} columns and {} classes", test.dim(), test.classes()),
            ));
        }
        let predictions = self.predict(test.data(), vote)?;
        Ok(KnnResult {
            top1: accuracy(&predictions, test.labels()),
            k: vote.k(),
            temperature: match vote {
                KnnVote::Majority { .. } => None,
                KnnVote::Weighted { temperature, .. } => Some(temperature),
            },
        })
    }
}

/// The kNN prediction of each row of `queries` by `train` (see [`KnnClassifier::predict`]).
///
/// # Errors
/// As [`KnnClassifier::new`] and [`KnnClassifier::predict`].
pub fn knn_predict(train: &Features, queries: &[f32], vote: KnnVote) -> Result<Vec<u16>> {
    KnnClassifier::new(train)?.predict(queries, vote)
}

/// kNN accuracy of `vote` on `test` by `train` (see [`KnnClassifier::evaluate`]).
///
/// # Errors
/// As [`KnnClassifier::new`] and [`KnnClassifier::evaluate`].
pub fn knn_accuracy(train: &Features, test: &Features, vote: KnnVote) -> Result<KnnResult> {
    KnnClassifier::new(train)?.evaluate(test, vote)
}
