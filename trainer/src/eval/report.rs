//! The results of the evaluation protocols, as written to a run's `results.json`.
//!
//! Accuracies and purities are fractions in `[0, 1]` (not percentages), so that no reader has to
//! guess the unit; each result also records the settings that produced it.

use serde::{Deserialize, Serialize};

/// Linear probe accuracy on the test features (docs/method.md §10).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// Fraction of test rows whose highest logit is the true class.
    pub top1: f64,
    /// Fraction of test rows whose true class is among the five highest logits (1 when there are
    /// at most five classes).
    pub top5: f64,
    /// Epochs the probe was trained for.
    pub epochs: usize,
    /// Training rows.
    pub train_rows: usize,
    /// Test rows.
    pub test_rows: usize,
}

/// k-nearest-neighbour accuracy on the test features under one voting rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KnnResult {
    /// Fraction of test rows classified correctly.
    pub top1: f64,
    /// Neighbours consulted.
    pub k: usize,
    /// The softmax temperature of a weighted vote; `None` for a majority vote.
    pub temperature: Option<f64>,
}

/// k-means clustering quality (docs/method.md §10).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClusteringResult {
    /// Σ over clusters of the count of the cluster's most common class, divided by the rows.
    pub purity: f64,
    /// Clusters fitted.
    pub clusters: usize,
    /// Rows clustered.
    pub rows: usize,
    /// Lloyd iterations run.
    pub iterations: usize,
    /// Sum of squared distances of the rows to their centroids.
    pub inertia: f64,
}

/// The semi-supervised protocol's accuracy over trials, for one augmentation method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SemiSupervisedResult {
    /// The method's name (`supervised-only`, `pseudo-label`, `learned-operators`, ...).
    pub method: String,
    /// Mean test accuracy of the EMA classifier over the trials.
    pub mean: f64,
    /// Population standard deviation (ddof 0, as numpy's `std`) of the trial accuracies.
    pub std: f64,
    /// Each trial's accuracy, trial `t` having seed `first_seed + t`.
    pub trials: Vec<f64>,
    /// Labelled examples per class.
    pub labels_per_class: usize,
    /// Training iterations per trial.
    pub iterations: usize,
    /// How the confident pseudo-labels fared, pooled over the trials: `None` for a method without
    /// them (supervised-only, mixup) and in results written before this diagnostic existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudo_labels: Option<PseudoLabelTrend>,
}

/// Counts of a semi-supervised method's pseudo-labels over a window of iterations, checked against
/// the unlabelled rows' true labels (which training never sees). A classifier growing confident in
/// wrong labels (confirmation bias) shows as a rising confident share with a falling accuracy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PseudoLabelCounts {
    /// Unlabelled rows drawn (batch rows × iterations in the window).
    pub rows: u64,
    /// Rows whose top probability exceeded the confidence threshold: those that got a pseudo-label.
    pub confident: u64,
    /// Confident rows whose pseudo-label is their true label.
    pub correct: u64,
}

impl PseudoLabelCounts {
    /// Share of the rows drawn that were confident (0 when none was drawn).
    pub fn confident_share(&self) -> f64 {
        self.confident as f64 / self.rows.max(1) as f64
    }

    /// Share of the confident rows whose pseudo-label was right; `None` when none was confident.
    pub fn accuracy(&self) -> Option<f64> {
        (self.confident > 0).then(|| self.correct as f64 / self.confident as f64)
    }

    /// These counts plus `other`'s (pooling windows or trials).
    #[must_use]
    pub fn plus(self, other: Self) -> Self {
        Self {
            rows: self.rows + other.rows,
            confident: self.confident + other.confident,
            correct: self.correct + other.correct,
        }
    }
}

/// Pseudo-label counts over the first and the last tenth of each trial's iterations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PseudoLabelTrend {
    /// The first tenth (rounded up) of the iterations.
    pub first: PseudoLabelCounts,
    /// The last tenth (rounded up) of the iterations.
    pub last: PseudoLabelCounts,
}

impl PseudoLabelTrend {
    /// Both windows' counts plus `other`'s.
    #[must_use]
    pub fn plus(self, other: Self) -> Self {
        Self {
            first: self.first.plus(other.first),
            last: self.last.plus(other.last),
        }
    }
}

/// A mean and the population standard deviation (ddof 0, as numpy's `std`) over repeats.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    /// The mean.
    pub mean: f64,
    /// The standard deviation.
    pub std: f64,
}

impl MeanStd {
    /// Of `values` (NaN for none).
    pub fn of(values: &[f64]) -> Self {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        Self { mean, std }
    }
}

/// Identity preservation (docs/method.md §10), the authors' protocol: linear probes trained on clean
/// training features, scored top-1 on the test features as they are and moved (see
/// [`crate::eval::identity`]); each row a mean ± std over the repeats.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IdentityResult {
    /// Repeats, each with a freshly trained probe.
    pub repeats: usize,
    /// Test rows the moves were scored on (whole batches).
    pub moved_rows: usize,
    /// Top-1 on the clean test features.
    pub clean: MeanStd,
    /// Top-1 on test features moved by learned-prior samples `T(c̃) z`, `c̃ ~ p(c | z)`.
    pub learned_prior: MeanStd,
    /// The authors' fixed prior: moved by samples of the hyperprior Laplace(0.05, 0.01) on every
    /// coefficient.
    pub fixed_prior: MeanStd,
    /// The authors' random control: displaced in a uniformly random direction by dist², the
    /// square of the row's learned-prior move (their quirk).
    pub random: MeanStd,
    /// Extra: moved by a fixed prior of location 0 and the learned prior's mean scale.
    pub fixed_prior_mean_scale: MeanStd,
    /// Extra: displaced in a random direction by exactly the learned-prior move's norm.
    pub random_matched: MeanStd,
    /// Mean of `‖T(c̃) z − z‖ / ‖z‖` over the learned-prior moves.
    pub mean_relative_shift: f64,
    /// Prior samples drawn per test row.
    pub samples_per_image: usize,
    /// Soft threshold ζ applied to the prior samples.
    pub threshold: f32,
}

/// Augmentation nearest neighbours (docs/method.md §10): how often the nearest training row of a
/// prior-moved test feature shares the test row's label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AugmentationNnResult {
    /// Fraction of moved queries (all samples of all queries) whose nearest training row has the
    /// query's label.
    pub agreement: f64,
    /// The same fraction for the unmoved queries (the reference the moves are compared with).
    pub clean_agreement: f64,
    /// Test rows queried.
    pub queries: usize,
    /// Prior samples per query.
    pub samples_per_query: usize,
    /// Which setting ran (queries, metric, gallery); empty in reports written before it was
    /// recorded, which used cosine on sampled test rows.
    #[serde(default)]
    pub setting: String,
}

/// Everything `mclr eval` measured for a run; absent protocols were not run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Linear probe.
    pub linear: Option<ProbeResult>,
    /// k-NN with the paper's k = 5 cosine majority vote.
    pub knn: Option<KnnResult>,
    /// lightly's k = 200, τ = 0.1 weighted k-NN, for comparison with other libraries.
    pub weighted_knn: Option<KnnResult>,
    /// k-means purity.
    pub kmeans: Option<ClusteringResult>,
    /// Semi-supervised results, one per augmentation method compared.
    pub semi_supervised: Vec<SemiSupervisedResult>,
    /// Identity preservation under the learned operators (absent from older reports).
    #[serde(default)]
    pub identity: Option<IdentityResult>,
    /// Label agreement of the nearest training rows of prior-moved features (absent from older
    /// reports).
    #[serde(default)]
    pub augmentation_nn: Option<AugmentationNnResult>,
}
