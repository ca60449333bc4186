//! Lie group operators: the dictionary Ψ, block-diagonal transport `T(c) = blockdiag_k expm(Σ_m c_m Ψ[m,k])`,
//! paths along it, Laplace sampling of coefficients and the prior / encoder networks that produce
//! their distributions (docs/method.md §2, §4, §5).
//!
//! Shapes follow docs/method.md §2: Ψ is (M, K, n, n), a feature is d = K·n values split into K contiguous
//! chunks of n, and coefficients are rows of M values. Coefficient rows may carry extra leading
//! axes, e.g. (S, B, M) for S samples per point: row `r` then acts on feature row `r mod B`, which is
//! how a (B, d) batch of features broadcasts over samples.

mod agreement;
mod coefficients;
mod laplace;
mod mlp;
mod path;

pub use agreement::{
    NeighbourAgreement, bundle_neighbour_agreement, neighbour_agreement, spread_anchors,
};
pub use coefficients::{
    CoefficientEncoder, ENCODER_LOC_OFFSET, ENCODER_LOGSCALE_RANGE, LOC_CLAMP, LaplaceParams,
    PRIOR_LOGSCALE_MAX, PriorNetwork, SCALE_PRIOR_LN, SHIFT_PRIOR, prior_warmup_weight,
    warm_up_prior,
};
pub use laplace::{
    LaplaceSampler, NOISE_LOG_CLAMP, laplace_deviation, reparameterize, soft_threshold,
};
pub use mlp::{LEAKY_RELU_SLOPE, Linear, Mlp, MlpOutput};
pub use path::{PathStepper, path};

use crate::error::ensure_finite;
use crate::{Error, Result, expm};

/// Stable-init ranges (docs/method.md §2): each 2×2 sub-block starts as `[[r, −w], [w, r]]`.
pub const STABLE_INIT_REAL_RANGE: f32 = 5e-5;
/// Half-width of the uniform draw of the rotation frequency `w` in the stable init.
pub const STABLE_INIT_IMAG_RANGE: f32 = 3.0;

/// A validated operator dictionary Ψ of shape (M, K, n, n), row-major, f32.
#[derive(Debug, Clone, PartialEq)]
pub struct Operators {
    m: usize,
    k: usize,
    n: usize,
    psi: Vec<f32>,
}

impl Operators {
    /// Wraps `psi` after checking that it holds exactly M·K·n·n finite values.
    pub fn new(m: usize, k: usize, n: usize, psi: Vec<f32>) -> Result<Self> {
        if m == 0 || k == 0 || n == 0 {
            return Err(Error::invalid(
                "operators",
                format!("empty shape ({m}, {k}, {n}, {n})"),
            ));
        }
        let numel = [m, k, n, n]
            .iter()
            .try_fold(1usize, |a, &b| a.checked_mul(b));
        if numel != Some(psi.len()) {
            return Err(Error::Shape {
                field: "operators".into(),
                expected: vec![m, k, n, n],
                found: vec![psi.len()],
            });
        }
        ensure_finite("operators", psi.iter().copied())?;
        Ok(Self { m, k, n, psi })
    }

    /// The paper's "stable init": Ψ = 0, then for each (m, k) one draw r ~ U(−5e-5, 5e-5) and
    /// w ~ U(−3, 3) placed in every 2×2 diagonal sub-block as `[[r, −w], [w, r]]`, so every block
    /// starts as a near-pure rotation generator with one frequency. An odd n leaves the last row
    /// and column zero. `uniform` yields values in [0, 1).
    pub fn stable_init(
        m: usize,
        k: usize,
        n: usize,
        mut uniform: impl FnMut() -> f32,
    ) -> Result<Self> {
        let mut psi = vec![0.0f32; m.saturating_mul(k).saturating_mul(n).saturating_mul(n)];
        for block in psi.chunks_exact_mut((n * n).max(1)) {
            let r = (uniform() * 2.0 - 1.0) * STABLE_INIT_REAL_RANGE;
            let w = (uniform() * 2.0 - 1.0) * STABLE_INIT_IMAG_RANGE;
            for p in 0..n / 2 {
                let (i, j) = (2 * p, 2 * p + 1);
                for (row, col, v) in [(i, i, r), (i, j, -w), (j, i, w), (j, j, r)] {
                    if let Some(x) = block.get_mut(row * n + col) {
                        *x = v;
                    }
                }
            }
        }
        Self::new(m, k, n, psi)
    }

    /// Number of operators M.
    pub fn num_operators(&self) -> usize {
        self.m
    }
    /// Number of diagonal blocks K.
    pub fn blocks(&self) -> usize {
        self.k
    }
    /// Block size n.
    pub fn block_size(&self) -> usize {
        self.n
    }
    /// Feature dimension d = K·n the operators act on.
    pub fn dim(&self) -> usize {
        self.k * self.n
    }
    /// Ψ as a flat (M, K, n, n) slice.
    pub fn as_slice(&self) -> &[f32] {
        &self.psi
    }

    /// The n×n generator Ψ[m, k].
    pub fn generator(&self, m: usize, k: usize) -> Option<&[f32]> {
        let nn = self.n * self.n;
        let start = (m * self.k + k) * nn;
        if m < self.m && k < self.k {
            self.psi.get(start..start + nn)
        } else {
            None
        }
    }

    /// Frobenius norm of each operator Ψ_m over all its blocks (the viewer sorts by it).
    pub fn frobenius_norms(&self) -> Vec<f32> {
        self.psi
            .chunks_exact(self.k * self.n * self.n)
            .map(|op| op.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt() as f32)
            .collect()
    }

    /// Lie-algebra elements A[r, k] = Σ_m c[r, m] Ψ[m, k] for every coefficient row, as a flat
    /// (R, K, n, n) buffer.
    pub fn generators(&self, coefficients: &[f32]) -> Result<Vec<f32>> {
        let rows = self.coefficient_rows(coefficients)?;
        let block = self.k * self.n * self.n;
        let mut out = vec![0.0f32; rows * block];
        for (a, c) in out
            .chunks_exact_mut(block)
            .zip(coefficients.chunks_exact(self.m))
        {
            for (&cm, psi_m) in c.iter().zip(self.psi.chunks_exact(block)) {
                if cm != 0.0 {
                    for (x, &p) in a.iter_mut().zip(psi_m) {
                        *x += cm * p;
                    }
                }
            }
        }
        Ok(out)
    }

    /// The group elements T(c) for every coefficient row: K matrix exponentials per row.
    pub fn transport(&self, coefficients: &[f32]) -> Result<BlockDiagonal> {
        let generators = self.generators(coefficients)?;
        let blocks = expm::expm_batch(&generators, self.n)?;
        Ok(BlockDiagonal {
            k: self.k,
            n: self.n,
            blocks,
        })
    }

    /// `T(c) z` for coefficient rows `c` (R × M) and features `z` (B × d), where R is a multiple
    /// of B and row r moves feature row `r mod B`. Returns R × d values.
    pub fn apply(&self, coefficients: &[f32], z: &[f32]) -> Result<Vec<f32>> {
        self.transport(coefficients)?.apply(z)
    }

    /// `T(c) z` like [`apply`](Self::apply), computed as the action of each block's exponential
    /// on its chunk of the feature ([`expm::expm_action`]) instead of forming T(c): the same values
    /// to f32 rounding, at a fraction of the work when each T(c) moves one feature (the
    /// semi-supervised protocol's learned-operator augmentation).
    pub fn apply_action(&self, coefficients: &[f32], z: &[f32]) -> Result<Vec<f32>> {
        let rows = self.coefficient_rows(coefficients)?;
        let d = self.dim();
        check_broadcast_features(z.len(), d, rows, "coefficient rows")?;
        ensure_finite("features", z.iter().copied())?;
        let mut out: Vec<f32> = z.iter().copied().cycle().take(rows * d).collect();
        let run = |scratch: &mut expm::ActionScratch<f32>,
                   (row, (c, y)): (usize, (&[f32], &mut [f32]))| {
            self.act_row(c, y, scratch)
                .map_err(|value| Error::NonFinite {
                    field: format!("transport of coefficient row {row}"),
                    index: 0,
                    value: value.to_string(),
                })
        };
        #[cfg(feature = "parallel")]
        {
            use rayon::prelude::*;
            coefficients
                .par_chunks_exact(self.m)
                .zip(out.par_chunks_exact_mut(d))
                .enumerate()
                .try_for_each_init(|| expm::ActionScratch::new(self.n), run)?;
        }
        #[cfg(not(feature = "parallel"))]
        {
            let mut scratch = expm::ActionScratch::new(self.n);
            coefficients
                .chunks_exact(self.m)
                .zip(out.chunks_exact_mut(d))
                .enumerate()
                .try_for_each(|item| run(&mut scratch, item))?;
        }
        Ok(out)
    }

    /// `y ← T(c) y` for one coefficient row, block by block.
    fn act_row(
        &self,
        c: &[f32],
        y: &mut [f32],
        scratch: &mut expm::ActionScratch<f32>,
    ) -> std::result::Result<(), f64> {
        let nn = self.n * self.n;
        for (k, chunk) in y.chunks_exact_mut(self.n).enumerate() {
            scratch.a.fill(0.0);
            for (m, &cm) in c.iter().enumerate() {
                if cm != 0.0 {
                    let start = (m * self.k + k) * nn;
                    for (x, &p) in scratch.a.iter_mut().zip(&self.psi[start..start + nn]) {
                        *x += cm * p;
                    }
                }
            }
            expm::expm_action_in_place(scratch, chunk)?;
        }
        Ok(())
    }

    fn coefficient_rows(&self, coefficients: &[f32]) -> Result<usize> {
        if coefficients.is_empty() || !coefficients.len().is_multiple_of(self.m) {
            return Err(Error::Shape {
                field: "coefficients".into(),
                expected: vec![coefficients.len().div_ceil(self.m).max(1), self.m],
                found: vec![coefficients.len()],
            });
        }
        ensure_finite("coefficients", coefficients.iter().copied())?;
        Ok(coefficients.len() / self.m)
    }
}

/// A batch of block-diagonal group elements: R rows of K blocks, each n×n (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct BlockDiagonal {
    k: usize,
    n: usize,
    blocks: Vec<f32>,
}

impl BlockDiagonal {
    /// Number of group elements R.
    pub fn rows(&self) -> usize {
        self.blocks.len() / (self.k * self.n * self.n)
    }
    /// Feature dimension d = K·n.
    pub fn dim(&self) -> usize {
        self.k * self.n
    }
    /// The blocks as a flat (R, K, n, n) slice.
    pub fn as_slice(&self) -> &[f32] {
        &self.blocks
    }

    /// Applies row r to feature row `r mod B` of `z` (B × d); returns R × d values.
    pub fn apply(&self, z: &[f32]) -> Result<Vec<f32>> {
        let (d, rows) = (self.dim(), self.rows());
        check_broadcast_features(z.len(), d, rows, "coefficient rows")?;
        let mut out = vec![0.0f32; rows * d];
        let row_blocks = self.k * self.n * self.n;
        for ((dst, e), src) in out
            .chunks_exact_mut(d)
            .zip(self.blocks.chunks_exact(row_blocks))
            .zip(z.chunks_exact(d).cycle())
        {
            self.apply_row(e, src, dst);
        }
        Ok(out)
    }

    /// `dst = E · src` for one row of blocks `e` and one feature.
    fn apply_row(&self, e: &[f32], src: &[f32], dst: &mut [f32]) {
        let n = self.n;
        for ((block, x), y) in e
            .chunks_exact(n * n)
            .zip(src.chunks_exact(n))
            .zip(dst.chunks_exact_mut(n))
        {
            for (yi, row) in y.iter_mut().zip(block.chunks_exact(n)) {
                *yi = row.iter().zip(x).map(|(a, b)| a * b).sum();
            }
        }
    }
}

/// Checks that `len` feature values are B rows of d with B dividing the `rows` rows that move
/// them (`what` names those rows in the message): the broadcast rule of this module's docs, one
/// place for the CPU transport, its action form and the GPU's.
pub(crate) fn check_broadcast_features(
    len: usize,
    d: usize,
    rows: usize,
    what: &str,
) -> Result<()> {
    if len == 0 || d == 0 || !len.is_multiple_of(d) || !rows.is_multiple_of(len / d) {
        return Err(Error::invalid(
            "features",
            format!("{len} values are not B rows of d = {d} with B dividing the {rows} {what}"),
        ));
    }
    Ok(())
}

/// torch.sign semantics: −1, 0 or 1 (f32::signum maps 0 to 1, which the reference never does).
fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}
