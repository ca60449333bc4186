//! Principal component analysis of a feature gallery.
//!
//! The fit centres the data, accumulates the covariance in `f64` and takes its leading
//! eigenvectors with [`symmetric_eigen`]. The covariance is the cost (`N d² / 2` multiply-adds,
//! about 1.3 G for 10 000 rows of 512 features), so it is computed GEMM-style: rows are centred
//! and packed a block at a time, and each 4 × 4 tile of the upper triangle accumulates the block's
//! outer products in registers. Tile rows of the covariance are independent, so under the
//! `parallel` feature they are spread over threads; every covariance entry still sums the rows in
//! order `0, 1, …, N − 1`, so the result is bit-identical with and without the feature.

use crate::error::ensure_finite;
use crate::geometry::eigen::symmetric_eigen;
use crate::{Error, Result};

/// Rows centred and packed together before their outer products are accumulated: 256 rows of 512
/// features are 1 MiB of `f64`, and each tile reads only two 8 KiB columns of it.
const ROW_BLOCK: usize = 256;

/// Width of a covariance tile.
const TILE: usize = 4;

/// A `TILE × TILE` block of the covariance accumulator.
type Tile = [[f64; TILE]; TILE];

/// Largest deviation from orthonormality (of a dot product of two components, or of a squared
/// norm from 1) that [`Pca::from_parts`] accepts: loose enough for components that were stored as
/// `f16`, tight enough to catch components that are not orthonormal at all.
const ORTHONORMALITY_TOLERANCE: f32 = 1e-2;

/// A fitted principal component analysis: `project(x) = (x − mean) · componentsᵀ`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    /// Dimension `d` of the input vectors.
    pub dim: usize,
    /// Mean of the fitted data, `d` values.
    pub mean: Vec<f32>,
    /// `P × d`, row-major: the principal axes, orthonormal, in order of decreasing variance. Each
    /// axis's sign is fixed (largest-magnitude entry positive), so refits of the same data agree.
    pub components: Vec<f32>,
    /// `P` values: the variance of the data along each axis (unbiased, divided by `N − 1`),
    /// descending and non-negative.
    pub explained_variance: Vec<f32>,
}

impl Pca {
    /// Fits the leading `components` principal axes of `data`, a row-major `rows × dim` matrix.
    ///
    /// The result depends only on the input bits: the same data gives the same `Pca` on every run,
    /// thread count and target.
    ///
    /// # Errors
    /// * [`Error::Invalid`] naming `dim` when `dim` is 0, `rows` when fewer than 2 rows are given
    ///   (a variance needs two), or `components` unless `1 <= components <= dim`;
    /// * [`Error::Shape`] naming `data` when `data.len() != rows * dim`;
    /// * [`Error::NonFinite`] naming `data` at the first NaN or infinity.
    pub fn fit(data: &[f32], rows: usize, dim: usize, components: usize) -> Result<Self> {
        if dim == 0 {
            return Err(Error::invalid(
                "dim",
                "feature dimension must be at least 1",
            ));
        }
        if rows < 2 {
            return Err(Error::invalid(
                "rows",
                format!("PCA needs at least 2 rows, got {rows}"),
            ));
        }
        if components == 0 || components > dim {
            return Err(Error::invalid(
                "components",
                format!("must be between 1 and dim = {dim}, got {components}"),
            ));
        }
        if rows.checked_mul(dim) != Some(data.len()) {
            return Err(Error::shape("data", &[rows, dim], &[data.len()]));
        }
        ensure_finite("data", data.iter().copied())?;

        let mean = column_means(data, rows, dim);
        let mut covariance = scatter_matrix(data, dim, &mean);
        // usize -> f64 is exact for any realistic row count.
        let denominator = (rows - 1) as f64;
        for value in &mut covariance {
            *value /= denominator;
        }
        let eigen = symmetric_eigen(&covariance, dim)?;

        // Rounding to f32 is the intent: the fitted model is stored in f32.
        let explained_variance = eigen
            .values
            .iter()
            .take(components)
            .map(|&v| v.max(0.0) as f32)
            .collect();
        let components = eigen
            .vectors
            .iter()
            .take(components * dim)
            .map(|&v| v as f32)
            .collect();
        let mean = mean.iter().map(|&v| v as f32).collect();
        Ok(Self {
            dim,
            mean,
            components,
            explained_variance,
        })
    }

    /// Assembles a `Pca` from stored parts (such as a bundle's), checking that they fit together.
    ///
    /// # Errors
    /// * [`Error::Invalid`] naming `dim` when `dim` is 0;
    /// * [`Error::Shape`] naming `mean` unless it has `dim` values, `explained_variance` unless it
    ///   has between 1 and `dim` values (`P`), or `components` unless it is `P × dim`;
    /// * [`Error::NonFinite`] naming the part holding a NaN or infinity;
    /// * [`Error::Invalid`] naming `explained_variance` when it is negative or not descending, or
    ///   `components` when they are not orthonormal to within `1e-2`.
    pub fn from_parts(
        mean: Vec<f32>,
        components: Vec<f32>,
        explained_variance: Vec<f32>,
        dim: usize,
    ) -> Result<Self> {
        if dim == 0 {
            return Err(Error::invalid(
                "dim",
                "feature dimension must be at least 1",
            ));
        }
        if mean.len() != dim {
            return Err(Error::shape("mean", &[dim], &[mean.len()]));
        }
        let count = explained_variance.len();
        if count == 0 || count > dim {
            return Err(Error::shape(
                "explained_variance",
                &[count.clamp(1, dim)],
                &[count],
            ));
        }
        if components.len() != count * dim {
            return Err(Error::shape(
                "components",
                &[count, dim],
                &[components.len()],
            ));
        }
        ensure_finite("mean", mean.iter().copied())?;
        ensure_finite("components", components.iter().copied())?;
        ensure_finite("explained_variance", explained_variance.iter().copied())?;

        if let Some(i) = explained_variance.iter().position(|&v| v < 0.0) {
            return Err(Error::invalid(
                "explained_variance",
                format!("variance {i} is negative ({})", explained_variance[i]),
            ));
        }
        if let Some(i) = explained_variance.windows(2).position(|w| w[0] < w[1]) {
            return Err(Error::invalid(
                "explained_variance",
                format!("not descending at index {}", i + 1),
            ));
        }
        for (i, a) in components.chunks_exact(dim).enumerate() {
            for (j, b) in components.chunks_exact(dim).enumerate().take(i + 1) {
                let dot: f64 = a
                    .iter()
                    .zip(b)
                    .map(|(&x, &y)| f64::from(x) * f64::from(y))
                    .sum();
                let expected = if i == j { 1.0 } else { 0.0 };
                if (dot - expected).abs() > f64::from(ORTHONORMALITY_TOLERANCE) {
                    return Err(Error::invalid(
                        "components",
                        format!(
                            "rows must be orthonormal, but row {i} · row {j} = {dot} (expected \
                             {expected})"
                        ),
                    ));
                }
            }
        }
        Ok(Self {
            dim,
            mean,
            components,
            explained_variance,
        })
    }

    /// Number of components `P`.
    pub fn n_components(&self) -> usize {
        self.explained_variance.len()
    }

    /// Coordinates of the rows of `x` (row-major, `x.len() / dim` rows) on the principal axes:
    /// `rows × P`, row-major. The mean projects to the origin. The products are accumulated in
    /// `f64`, so the result is the correctly rounded projection to within a few ulps.
    ///
    /// # Errors
    /// [`Error::Shape`] naming `x` when its length is not a multiple of `dim`.
    pub fn project(&self, x: &[f32]) -> Result<Vec<f32>> {
        let (dim, count) = (self.dim, self.n_components());
        if dim == 0 || !x.len().is_multiple_of(dim) {
            return Err(Error::shape("x", &[x.len() / dim.max(1), dim], &[x.len()]));
        }
        let rows = x.len() / dim;
        let mut out = vec![0.0; rows * count];
        if count == 0 {
            return Ok(out);
        }
        let project_row = |(row, coords): (&[f32], &mut [f32])| {
            let centred: Vec<f64> = row
                .iter()
                .zip(&self.mean)
                .map(|(&v, &m)| f64::from(v) - f64::from(m))
                .collect();
            for (coord, axis) in coords.iter_mut().zip(self.components.chunks_exact(dim)) {
                let value: f64 = centred
                    .iter()
                    .zip(axis)
                    .map(|(&c, &a)| c * f64::from(a))
                    .sum();
                *coord = value as f32;
            }
        };

        #[cfg(feature = "parallel")]
        {
            use rayon::prelude::*;
            x.par_chunks_exact(dim)
                .zip(out.par_chunks_exact_mut(count))
                .for_each(project_row);
        }
        #[cfg(not(feature = "parallel"))]
        x.chunks_exact(dim)
            .zip(out.chunks_exact_mut(count))
            .for_each(project_row);

        Ok(out)
    }
}

/// Column means of the `rows × dim` matrix `data` (validated), summed in row order in `f64`.
fn column_means(data: &[f32], rows: usize, dim: usize) -> Vec<f64> {
    let mut sums = vec![0.0_f64; dim];
    for row in data.chunks_exact(dim) {
        for (sum, &v) in sums.iter_mut().zip(row) {
            *sum += f64::from(v);
        }
    }
    let rows = rows as f64;
    sums.iter().map(|s| s / rows).collect()
}

/// `Σ_r (x_r − mean)(x_r − mean)ᵀ` over the rows of `data` (validated, `dim >= 1`), as a full
/// symmetric `dim × dim` row-major matrix.
fn scatter_matrix(data: &[f32], dim: usize, mean: &[f64]) -> Vec<f64> {
    let quads = dim.div_ceil(TILE);
    // tiles[it * quads + jt] holds entries (TILE·it + p, TILE·jt + q); only jt >= it is filled.
    let mut tiles: Vec<Tile> = vec![[[0.0; TILE]; TILE]; quads * quads];
    // packed[c * block_rows + r] holds features TILE·c .. TILE·c + TILE of row r, centred, with
    // zero padding past `dim`, so that each tile streams two contiguous columns.
    let mut packed: Vec<[f64; TILE]> = vec![[0.0; TILE]; quads * ROW_BLOCK];

    for block in data.chunks(ROW_BLOCK * dim) {
        let block_rows = block.len() / dim;
        let packed = &mut packed[..quads * block_rows];
        for (r, row) in block.chunks_exact(dim).enumerate() {
            for ((c, values), means) in row.chunks(TILE).enumerate().zip(mean.chunks(TILE)) {
                if let Some(slot) = packed.get_mut(c * block_rows + r) {
                    *slot = [0.0; TILE];
                    for ((s, &v), &m) in slot.iter_mut().zip(values).zip(means) {
                        *s = f64::from(v) - m;
                    }
                }
            }
        }
        let packed: &[[f64; TILE]] = packed;
        let accumulate = |(it, tile_row): (usize, &mut [Tile])| {
            accumulate_tile_row(it, tile_row, packed, block_rows);
        };

        #[cfg(feature = "parallel")]
        {
            use rayon::prelude::*;
            tiles.par_chunks_mut(quads).enumerate().for_each(accumulate);
        }
        #[cfg(not(feature = "parallel"))]
        tiles.chunks_mut(quads).enumerate().for_each(accumulate);
    }

    let mut out = vec![0.0; dim * dim];
    for (i, out_row) in out.chunks_exact_mut(dim).enumerate() {
        for (j, value) in out_row.iter_mut().enumerate() {
            let (lo, hi) = (i.min(j), i.max(j));
            let tile = tiles.get((lo / TILE) * quads + hi / TILE);
            if let Some(&v) = tile
                .and_then(|t| t.get(lo % TILE))
                .and_then(|r| r.get(hi % TILE))
            {
                *value = v;
            }
        }
    }
    out
}

/// Adds the outer products of one packed block to tiles `(it, jt)`, `jt >= it`, of the scatter
/// matrix. `packed` holds `quads` columns of `block_rows` entries each (`block_rows >= 1`).
fn accumulate_tile_row(
    it: usize,
    tile_row: &mut [Tile],
    packed: &[[f64; TILE]],
    block_rows: usize,
) {
    let Some(left) = packed.chunks_exact(block_rows).nth(it) else {
        return;
    };
    for (tile, right) in tile_row
        .iter_mut()
        .zip(packed.chunks_exact(block_rows))
        .skip(it)
    {
        let mut acc = *tile;
        for (a, b) in left.iter().zip(right) {
            for (acc_row, &a) in acc.iter_mut().zip(a) {
                for (c, &b) in acc_row.iter_mut().zip(b) {
                    *c += a * b;
                }
            }
        }
        *tile = acc;
    }
}
