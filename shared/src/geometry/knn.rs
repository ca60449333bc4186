//! Exact k-nearest-neighbour search over a fixed gallery of feature vectors.
//!
//! The gallery is small enough (tens of thousands of 512-d rows) that brute force is exact, simple
//! and fast: every query is scored against every gallery row and the best `k` are selected. Queries
//! are scored a block at a time against cache-sized tiles of the gallery, so a batch streams the
//! gallery from memory once per block rather than once per query.
//!
//! Scores are computed in `f32` with eight independent partial sums (so the loop vectorises) that
//! are combined in a fixed order: a given (query, row) pair always gets the same bits, whichever
//! batch, block, thread or target it is computed in. Results are therefore identical with and
//! without the `parallel` feature, and duplicate gallery rows tie exactly.

use std::cmp::Ordering;

use crate::error::ensure_finite;
use crate::{Error, Result};

/// Gallery rows scored per tile: 128 rows of 512 `f32` are 256 KiB, which stays in L2 while the
/// queries of a block are scored against it.
const GALLERY_TILE_ROWS: usize = 128;

/// Most queries scored together in one block of a batch.
const MAX_QUERY_BLOCK: usize = 32;

/// Cap on the `block × gallery` score buffer of one block, in `f32`s (16 MiB), so that a huge
/// gallery shrinks the block instead of the memory budget.
const SCORE_BUFFER_LIMIT: usize = 1 << 22;

/// How similarity between two feature vectors is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Cosine similarity `q·g / (|q| |g|)`, clamped to `[-1, 1]`; higher is nearer. A zero vector
    /// (query or gallery row) has similarity exactly 0 to everything, itself included, since it
    /// has no direction. The dot product is accumulated in `f32`, so vectors are assumed to have
    /// norms well below `1e19` (so that `q·g` cannot overflow).
    Cosine,
    /// Squared euclidean distance `|q − g|²`, computed from the differences (not from norms, which
    /// would cancel catastrophically for near neighbours); lower is nearer.
    Euclidean,
}

impl Metric {
    /// Whether a larger score means a nearer neighbour under this metric.
    pub fn larger_is_better(self) -> bool {
        match self {
            Self::Cosine => true,
            Self::Euclidean => false,
        }
    }
}

/// One search hit: a gallery row and its score under the index's [`Metric`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbour {
    /// Row of the gallery.
    pub index: usize,
    /// Cosine similarity (higher is nearer) or squared euclidean distance (lower is nearer).
    pub score: f32,
}

/// A gallery of `len × dim` feature vectors prepared for exact nearest-neighbour queries.
///
/// Built once (validating the shape and finiteness, and precomputing the inverse row norms that
/// cosine similarity needs) and then queried any number of times.
#[derive(Debug, Clone, PartialEq)]
pub struct KnnIndex {
    features: Vec<f32>,
    dim: usize,
    rows: usize,
    metric: Metric,
    /// `1 / |row|`, or 0 for a zero row (which makes its cosine similarity 0). Empty for
    /// [`Metric::Euclidean`], which needs no norms.
    inverse_norms: Vec<f32>,
}

impl KnnIndex {
    /// Indexes `features`, a row-major `rows × dim` gallery.
    ///
    /// An empty gallery is allowed; every search on it returns no neighbours.
    ///
    /// # Errors
    /// * [`Error::Invalid`] naming `dim` when `dim` is 0;
    /// * [`Error::Shape`] naming `features` when its length is not a multiple of `dim`;
    /// * [`Error::NonFinite`] naming `features` at the first NaN or infinity.
    pub fn new(features: Vec<f32>, dim: usize, metric: Metric) -> Result<Self> {
        if dim == 0 {
            return Err(Error::invalid(
                "dim",
                "feature dimension must be at least 1",
            ));
        }
        if !features.len().is_multiple_of(dim) {
            let len = features.len();
            return Err(Error::shape("features", &[len / dim, dim], &[len]));
        }
        ensure_finite("features", features.iter().copied())?;
        let rows = features.len() / dim;
        let inverse_norms = match metric {
            Metric::Cosine => features.chunks_exact(dim).map(inverse_norm).collect(),
            Metric::Euclidean => Vec::new(),
        };
        Ok(Self {
            features,
            dim,
            rows,
            metric,
            inverse_norms,
        })
    }

    /// Number of gallery rows.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether the gallery has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Dimension of each feature vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The metric scores are computed under.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The gallery, row-major `len × dim`.
    pub fn features(&self) -> &[f32] {
        &self.features
    }

    /// The `k` gallery rows nearest to `query`, best first; ties go to the lower row index. When
    /// `k` exceeds the gallery size, all rows are returned.
    ///
    /// # Errors
    /// * [`Error::Invalid`] naming `k` when `k` is 0;
    /// * [`Error::Shape`] naming `query` when `query.len() != dim`;
    /// * [`Error::NonFinite`] naming `query` at the first NaN or infinity.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Neighbour>> {
        check_k(k)?;
        if query.len() != self.dim {
            return Err(Error::shape("query", &[self.dim], &[query.len()]));
        }
        ensure_finite("query", query.iter().copied())?;
        let query_inverse_norm = self.query_inverse_norm(query);
        let mut scores = vec![0.0; self.rows];

        // One query: spread the gallery's tiles over threads instead.
        #[cfg(feature = "parallel")]
        {
            use rayon::prelude::*;
            let tile_len = GALLERY_TILE_ROWS * self.dim;
            scores
                .par_chunks_mut(GALLERY_TILE_ROWS)
                .enumerate()
                .for_each(|(t, out)| {
                    let first = t * GALLERY_TILE_ROWS;
                    let gallery = self.features.get(first * self.dim..).unwrap_or_default();
                    let gallery = gallery.get(..tile_len).unwrap_or(gallery);
                    self.score_tile(query, query_inverse_norm, first, gallery, out);
                });
        }
        #[cfg(not(feature = "parallel"))]
        self.score_tile(query, query_inverse_norm, 0, &self.features, &mut scores);

        Ok(self.neighbours(&scores, k))
    }

    /// [`KnnIndex::search`] for each row of `queries` (row-major `queries.len() / dim` rows); the
    /// result has one list per query, in order, identical to what `search` returns for it.
    /// Blocks of queries run in parallel under the `parallel` feature, with the same result as
    /// without it.
    ///
    /// # Errors
    /// * [`Error::Invalid`] naming `k` when `k` is 0;
    /// * [`Error::Shape`] naming `queries` when its length is not a multiple of `dim`;
    /// * [`Error::NonFinite`] naming `queries` at the first NaN or infinity.
    pub fn search_batch(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Neighbour>>> {
        check_k(k)?;
        if !queries.len().is_multiple_of(self.dim) {
            let len = queries.len();
            return Err(Error::shape("queries", &[len / self.dim, self.dim], &[len]));
        }
        ensure_finite("queries", queries.iter().copied())?;

        let block_rows = (SCORE_BUFFER_LIMIT / self.rows.max(1)).clamp(1, MAX_QUERY_BLOCK);
        let block_len = block_rows * self.dim;
        let run_block = |block: &[f32]| self.search_block(block, k);

        #[cfg(feature = "parallel")]
        let blocks: Vec<Vec<Vec<Neighbour>>> = {
            use rayon::prelude::*;
            queries.par_chunks(block_len).map(run_block).collect()
        };
        #[cfg(not(feature = "parallel"))]
        let blocks: Vec<Vec<Vec<Neighbour>>> = queries.chunks(block_len).map(run_block).collect();

        Ok(blocks.into_iter().flatten().collect())
    }

    /// Searches a block of whole query rows sequentially: scores every query against one gallery
    /// tile at a time (so the tile is read from cache by all of them), then selects each query's
    /// best `k`.
    fn search_block(&self, queries: &[f32], k: usize) -> Vec<Vec<Neighbour>> {
        let inverse_norms: Vec<f32> = queries
            .chunks_exact(self.dim)
            .map(|q| self.query_inverse_norm(q))
            .collect();
        if self.rows == 0 {
            return vec![Vec::new(); inverse_norms.len()];
        }
        // scores[q * rows + g]: query q against gallery row g.
        let mut scores = vec![0.0; inverse_norms.len() * self.rows];
        let tile_len = GALLERY_TILE_ROWS * self.dim;
        for (t, gallery) in self.features.chunks(tile_len).enumerate() {
            let first = t * GALLERY_TILE_ROWS;
            let width = gallery.len() / self.dim;
            for ((query, &inverse_norm), query_scores) in queries
                .chunks_exact(self.dim)
                .zip(&inverse_norms)
                .zip(scores.chunks_exact_mut(self.rows))
            {
                if let Some(out) = query_scores.get_mut(first..first + width) {
                    self.score_tile(query, inverse_norm, first, gallery, out);
                }
            }
        }
        scores
            .chunks_exact(self.rows)
            .map(|row| self.neighbours(row, k))
            .collect()
    }

    /// Scores `query` against the gallery rows in `gallery` (whole rows, the first being row
    /// `first`) into `out`, one score per row.
    fn score_tile(
        &self,
        query: &[f32],
        query_inverse_norm: f32,
        first: usize,
        gallery: &[f32],
        out: &mut [f32],
    ) {
        let rows = gallery.chunks_exact(self.dim).zip(out.iter_mut());
        match self.metric {
            Metric::Cosine => {
                let norms = self.inverse_norms.get(first..).unwrap_or_default();
                for ((row, out), &row_inverse_norm) in rows.zip(norms) {
                    let cosine = dot(query, row) * query_inverse_norm * row_inverse_norm;
                    *out = cosine.clamp(-1.0, 1.0);
                }
            }
            Metric::Euclidean => {
                for (row, out) in rows {
                    *out = squared_distance(query, row);
                }
            }
        }
    }

    /// `1 / |query|` under cosine (0 for a zero query); unused (0) under euclidean.
    fn query_inverse_norm(&self, query: &[f32]) -> f32 {
        match self.metric {
            Metric::Cosine => inverse_norm(query),
            Metric::Euclidean => 0.0,
        }
    }

    /// The best `k` of one query's gallery scores, as neighbours.
    fn neighbours(&self, scores: &[f32], k: usize) -> Vec<Neighbour> {
        top_k(scores, k, self.metric.larger_is_better())
            .into_iter()
            .filter_map(|index| scores.get(index).map(|&score| Neighbour { index, score }))
            .collect()
    }
}

/// Indices of the `k` best entries of `scores`, best first.
///
/// "Best" is largest when `larger_is_better`, smallest otherwise; equal scores (including `-0.0`
/// and `0.0`) go to the lower index, and NaN ranks after every number. Returns all indices when
/// `k >= scores.len()` and none when `k == 0`. Runs in `O(N + k log k)` using
/// [`slice::select_nth_unstable_by`], which is deterministic because the order is total.
pub fn top_k(scores: &[f32], k: usize, larger_is_better: bool) -> Vec<usize> {
    let better = |&i: &usize, &j: &usize| -> Ordering {
        let (a, b) = (scores.get(i).copied(), scores.get(j).copied());
        let (a, b) = (a.unwrap_or(f32::NAN), b.unwrap_or(f32::NAN));
        let by_score = match (a.is_nan(), b.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => {
                let ascending = a.partial_cmp(&b).unwrap_or(Ordering::Equal);
                if larger_is_better {
                    ascending.reverse()
                } else {
                    ascending
                }
            }
        };
        by_score.then(i.cmp(&j))
    };

    if k == 0 {
        return Vec::new();
    }
    let mut indices: Vec<usize> = (0..scores.len()).collect();
    if k < indices.len() {
        indices.select_nth_unstable_by(k - 1, better);
        indices.truncate(k);
    }
    indices.sort_unstable_by(better);
    indices
}

/// Fails with [`Error::Invalid`] naming `k` when `k` is 0.
fn check_k(k: usize) -> Result<()> {
    if k == 0 {
        return Err(Error::invalid(
            "k",
            "number of neighbours must be at least 1",
        ));
    }
    Ok(())
}

/// `1 / |x|`, or 0 for a zero vector. The norm is accumulated in `f64` so that it neither
/// overflows nor underflows for any finite `f32` input.
fn inverse_norm(x: &[f32]) -> f32 {
    let squared: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    if squared > 0.0 {
        // Rounding to f32 is the intent: scores are f32.
        (1.0 / squared.sqrt()) as f32
    } else {
        0.0
    }
}

/// Lanes of the partial sums in [`dot`] and [`squared_distance`]: eight `f32` fill two 128-bit
/// vector registers (or one 256-bit one); sixteen measured no faster.
const LANES: usize = 8;

/// Combines the lanes and the tail in a fixed order.
fn reduce(acc: [f32; LANES], tail: f32) -> f32 {
    let [a0, a1, a2, a3, a4, a5, a6, a7] = acc;
    (((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7))) + tail
}

/// `Σᵢ term(aᵢ, bᵢ)` over the common length, accumulated in [`LANES`] independent partial sums
/// (so that the loop vectorises) that [`reduce`] combines in a fixed order: deterministic, and
/// the same for a pair wherever it is computed.
#[inline(always)]
fn lane_sum(a: &[f32], b: &[f32], term: impl Fn(f32, f32) -> f32) -> f32 {
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let mut tail = 0.0;
    for (&x, &y) in ca.remainder().iter().zip(cb.remainder()) {
        tail += term(x, y);
    }
    let mut acc = [0.0_f32; LANES];
    for (x, y) in ca.zip(cb) {
        for ((s, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *s += term(x, y);
        }
    }
    reduce(acc, tail)
}

/// `a · b`.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    lane_sum(a, b, |x, y| x * y)
}

/// `|a − b|²`.
fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    lane_sum(a, b, |x, y| (x - y) * (x - y))
}
