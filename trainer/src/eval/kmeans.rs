//! k-means clustering of features and the purity of the clusters (docs/method.md §10: C clusters, purity on
//! 5,000 test features). As the reference (`src/eval/clustering.py`), the rows clustered are an
//! evenly spaced subset of the test set ([`evenly_spaced`], numpy's `linspace(0, n − 1, k,
//! dtype=int)`), not its first rows (Tiny ImageNet's validation set is sorted by class), and the
//! best of several k-means++ initialisations is kept, as scikit-learn's `KMeans` did by default
//! (`n_init = 10`, the lowest inertia wins).
//!
//! Seeding is k-means++ (Arthur & Vassilvitskii 2007: the first centre uniform, each next one drawn
//! with probability proportional to the squared distance to the nearest centre chosen so far; one
//! candidate per step, not scikit-learn's greedy `2 + ln k` candidates), from a seeded stream.
//! Lloyd iterations (assign each row to its nearest centroid, move each centroid to the mean of its
//! rows) run until the assignment no longer changes or the iteration cap is reached. A cluster that
//! loses all its rows is re-seeded at the row farthest from its own centroid. Distances are squared
//! euclidean on the features as given (normalise them first for spherical k-means); the nearest
//! centroid is found by [`mclr_shared::geometry::KnnIndex`], ties going to the lower centroid.

use mclr_shared::geometry::{KnnIndex, Metric};

use super::report::ClusteringResult;
use super::{Features, ensure_positive, invalid};
use crate::Result;
use crate::augment::rng::StreamRng;

/// Domain tag of the seeding stream.
const KMEANS_DOMAIN: u64 = 0x6b6d_6e73; // "kmns"

/// k-means settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KMeansConfig {
    /// Number of clusters; `None` means one per class (docs/method.md §10).
    pub clusters: Option<usize>,
    /// Cap on Lloyd iterations (scikit-learn's default: 300).
    pub max_iterations: usize,
    /// Seed of the k-means++ seeding.
    pub seed: u64,
    /// Independent k-means++ initialisations; the lowest inertia is kept (scikit-learn's
    /// `n_init`, 10 by default before version 1.4, which the reference ran).
    pub restarts: usize,
}

impl Default for KMeansConfig {
    fn default() -> Self {
        Self {
            clusters: None,
            max_iterations: 300,
            seed: 0,
            restarts: 10,
        }
    }
}

/// A fitted clustering.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeans {
    /// Centroids, row-major `clusters × dim`.
    pub centroids: Vec<f32>,
    /// The cluster of each row.
    pub assignments: Vec<usize>,
    /// Lloyd iterations run (centroid updates).
    pub iterations: usize,
    /// Whether the assignment stopped changing before the cap.
    pub converged: bool,
    /// Sum of squared distances of the rows to their centroids.
    pub inertia: f64,
}

/// Clusters `data` (row-major, `rows × dim`) into `clusters` clusters.
///
/// # Errors
/// [`crate::Error::InvalidSetting`] when `dim` or `clusters` is 0, when there are fewer rows than
/// clusters, or when `data` is ragged or not finite.
pub fn kmeans(
    data: &[f32],
    dim: usize,
    clusters: usize,
    max_iterations: usize,
    seed: u64,
) -> Result<KMeans> {
    ensure_positive("kmeans.dim", dim)?;
    ensure_positive("kmeans.clusters", clusters)?;
    if !data.len().is_multiple_of(dim) {
        return Err(invalid(
            "kmeans.data",
            format!("a multiple of {dim} values"),
            data.len(),
        ));
    }
    let rows = data.len() / dim;
    if rows < clusters {
        return Err(invalid(
            "kmeans.clusters",
            format!("at most the number of rows ({rows})"),
            clusters,
        ));
    }
    let mut centroids = seed_plus_plus(data, dim, clusters, seed);
    let mut nearest = assign(data, dim, &centroids)?;
    let mut iterations = 0;
    let mut converged = false;
    while iterations < max_iterations {
        centroids = update(data, dim, clusters, &nearest);
        iterations += 1;
        let next = assign(data, dim, &centroids)?;
        let unchanged = next.iter().zip(&nearest).all(|(a, b)| a.0 == b.0);
        nearest = next;
        if unchanged {
            converged = true;
            break;
        }
    }
    Ok(KMeans {
        centroids,
        assignments: nearest.iter().map(|&(c, _)| c).collect(),
        iterations,
        converged,
        inertia: nearest.iter().map(|&(_, d)| f64::from(d)).sum(),
    })
}

/// Clusters `features` with `config` and scores the clusters' purity against the labels.
///
/// # Errors
/// As [`kmeans`].
pub fn kmeans_purity(features: &Features, config: &KMeansConfig) -> Result<ClusteringResult> {
    let clusters = config.clusters.unwrap_or(features.classes());
    ensure_positive("kmeans.restarts", config.restarts)?;
    let mut best: Option<KMeans> = None;
    for restart in 0..config.restarts as u64 {
        let fit = kmeans(
            features.data(),
            features.dim(),
            clusters,
            config.max_iterations,
            config
                .seed
                .wrapping_add(restart.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        )?;
        if best.as_ref().is_none_or(|b| fit.inertia < b.inertia) {
            best = Some(fit);
        }
    }
    let Some(fit) = best else {
        return Err(invalid("kmeans.restarts", "at least 1", 0));
    };
    Ok(ClusteringResult {
        purity: purity(
            &fit.assignments,
            features.labels(),
            clusters,
            features.classes(),
        ),
        clusters,
        rows: features.len(),
        iterations: fit.iterations,
        inertia: fit.inertia,
    })
}

/// `k` row indices spread evenly over `0..n`, as numpy's `linspace(0, n − 1, k, dtype=int)`:
/// `⌊i · (n − 1)/(k − 1)⌋` in f64, the last exactly `n − 1`. All of `0..n` when `k ≥ n`.
pub fn evenly_spaced(n: usize, k: usize) -> Vec<usize> {
    if k >= n {
        return (0..n).collect();
    }
    if k == 1 {
        return vec![0];
    }
    let step = (n - 1) as f64 / (k - 1) as f64;
    (0..k)
        .map(|i| {
            if i + 1 == k {
                n - 1
            } else {
                (i as f64 * step) as usize
            }
        })
        .collect()
}

/// Cluster purity: Σ over clusters of the count of the cluster's most common label, divided by the
/// number of rows (0 for none). Assignments `>= clusters` and labels `>= classes` are not counted
/// towards any cluster (but still count as rows).
pub fn purity(assignments: &[usize], labels: &[u16], clusters: usize, classes: usize) -> f64 {
    if labels.is_empty() {
        return 0.0;
    }
    let mut counts = vec![0_usize; clusters * classes];
    for (&cluster, &label) in assignments.iter().zip(labels) {
        let label = usize::from(label);
        if cluster < clusters
            && label < classes
            && let Some(count) = counts.get_mut(cluster * classes + label)
        {
            *count += 1;
        }
    }
    let majority: usize = counts
        .chunks(classes.max(1))
        .map(|row| row.iter().copied().max().unwrap_or(0))
        .sum();
    majority as f64 / labels.len() as f64
}

/// k-means++ seeding: `clusters` centroids chosen among the rows (requires `rows >= clusters`).
fn seed_plus_plus(data: &[f32], dim: usize, clusters: usize, seed: u64) -> Vec<f32> {
    let rows = data.len() / dim;
    let mut rng = StreamRng::from_words(&[KMEANS_DOMAIN, seed]);
    let row = |i: usize| data.get(i * dim..(i + 1) * dim).unwrap_or_default();
    let mut centroids = Vec::with_capacity(clusters * dim);
    let first = rng.below(rows as u64) as usize;
    centroids.extend_from_slice(row(first));
    let mut nearest: Vec<f64> = (0..rows)
        .map(|i| squared_distance(row(i), row(first)))
        .collect();
    for _ in 1..clusters {
        let total: f64 = nearest.iter().sum();
        let chosen = if total > 0.0 {
            // Inverse-CDF draw of a row with probability nearest[i] / total.
            let mut target = rng.unit() * total;
            let mut chosen = rows - 1;
            for (i, &d) in nearest.iter().enumerate() {
                if target < d {
                    chosen = i;
                    break;
                }
                target -= d;
            }
            chosen
        } else {
            // Every row coincides with a centre already: any row will do.
            rng.below(rows as u64) as usize
        };
        let centre = row(chosen);
        centroids.extend_from_slice(centre);
        for (i, d) in nearest.iter_mut().enumerate() {
            *d = d.min(squared_distance(row(i), centre));
        }
    }
    centroids
}

/// The nearest centroid of each row and the squared distance to it.
fn assign(data: &[f32], dim: usize, centroids: &[f32]) -> Result<Vec<(usize, f32)>> {
    let index = KnnIndex::new(centroids.to_vec(), dim, Metric::Euclidean)?;
    let hits = index.search_batch(data, 1)?;
    Ok(hits
        .iter()
        .map(|n| n.first().map_or((0, 0.0), |n| (n.index, n.score)))
        .collect())
}

/// Centroids as the means of their rows; an empty cluster takes the row farthest from its centroid
/// (each such row used once).
fn update(data: &[f32], dim: usize, clusters: usize, nearest: &[(usize, f32)]) -> Vec<f32> {
    let mut sums = vec![0.0_f64; clusters * dim];
    let mut counts = vec![0_usize; clusters];
    for (row, &(c, _)) in data.chunks_exact(dim).zip(nearest) {
        if let (Some(sum), Some(count)) = (sums.get_mut(c * dim..(c + 1) * dim), counts.get_mut(c))
        {
            *count += 1;
            for (s, &v) in sum.iter_mut().zip(row) {
                *s += f64::from(v);
            }
        }
    }
    // Rows by decreasing distance to their centroid, for re-seeding empty clusters.
    let mut far: Vec<usize> = (0..nearest.len()).collect();
    far.sort_by(|&a, &b| {
        let (da, db) = (
            nearest.get(a).map_or(0.0, |n| n.1),
            nearest.get(b).map_or(0.0, |n| n.1),
        );
        db.total_cmp(&da).then(a.cmp(&b))
    });
    let mut far = far.into_iter();
    let mut centroids = Vec::with_capacity(clusters * dim);
    for (sum, &count) in sums.chunks_exact(dim).zip(&counts) {
        if count > 0 {
            centroids.extend(sum.iter().map(|&s| (s / count as f64) as f32));
        } else {
            let row = far
                .next()
                .and_then(|i| data.get(i * dim..(i + 1) * dim))
                .unwrap_or_default();
            centroids.extend_from_slice(row);
            centroids.resize(centroids.len().next_multiple_of(dim), 0.0);
        }
    }
    centroids
}

/// `|a − b|²` in `f64`.
fn squared_distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = f64::from(x) - f64::from(y);
            d * d
        })
        .sum()
}
