//! Identity preservation (docs/method.md §10): do the learned operators move a feature without changing what
//! it depicts?
//!
//! The default is the authors' protocol (`notebooks/transop_identity-preserve.ipynb` in the
//! reference), so that the numbers compare with the paper's figure. It runs `repeats` times (the
//! authors: 20), each time with a freshly trained linear probe on the clean training features
//! (repeat r uses the probe seed `seed + r`, and its own sampling seeds), and reports the mean
//! and standard deviation over the repeats of the probe's top-1 on:
//! 1. **clean**: every test feature as it is;
//! 2. **learned prior**: each row `z` moved by a sample `c̃ ~ Laplace(μ_p(z), b_p(z))` of the
//!    fully warmed learned prior (soft threshold ζ), `z' = T(c̃) z`;
//! 3. **fixed prior**: each row moved by a sample of the encoder's hyperprior, the fixed
//!    `Laplace(0.05, 0.01)` on every coefficient (`get_prior_params` → `hyperprior_params`), with
//!    the same threshold;
//! 4. **random**: `z + dist² · u`, u uniform on the unit sphere, dist = ‖z' − z‖ of the row's
//!    learned-prior move. The authors scale the direction by dist *twice*, a quirk we reproduce:
//!    the control's displacement is dist², not dist.
//!
//! The moved rows are scored in whole batches of `batch_rows` (the authors: 1,000), dropping the
//! remainder as they do (all rows when there are fewer); the clean row uses every test row.
//!
//! Two better-defined variants are reported as extra rows, each differing in one way:
//! * **fixed prior, mean scale**: location 0 and, per coefficient, the learned prior's scale
//!   averaged over the test rows ([`mean_scales`]), instead of the hyperprior: the same spread as
//!   the learned prior on average, so the comparison isolates what depending on the point gains;
//! * **random, matched norm**: `z + dist · u`, a displacement exactly as large as the operators'.
//!
//! The mean relative displacement `‖z' − z‖ / ‖z‖` of the learned-prior moves is reported too, so
//! that a high accuracy cannot hide moves that barely move.
//!
//! Rows are processed in fixed chunks (in parallel), each with its own seeded streams, so the
//! result depends on the seed only, not on the number of threads.

use candle_core::Device;
use mclr_shared::operators::{
    LaplaceParams, LaplaceSampler, Operators, PriorNetwork, SCALE_PRIOR_LN, SHIFT_PRIOR,
};
use rayon::prelude::*;

use super::linear::{LinearProbe, LinearProbeConfig};
use super::report::{IdentityResult, MeanStd};
use super::{Features, ensure_positive, invalid};
use crate::Result;
use crate::augment::rng::StreamRng;

/// Domain tag of the protocol's random streams.
const IDENTITY_DOMAIN: u64 = 0x6964_656e; // "iden"

/// Test rows per chunk: the unit of parallel work and of seeding.
pub(crate) const CHUNK_ROWS: usize = 64;

/// The identity-preservation settings; [`Default`] is the authors' protocol.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IdentityConfig {
    /// Prior samples drawn per test row; each moved copy is scored (the authors: 1).
    pub samples_per_image: usize,
    /// The linear probe trained on the clean training features (default: docs/method.md §10's).
    pub probe: LinearProbeConfig,
    /// Repeats, each with a freshly trained probe and fresh samples (the authors: 20).
    pub repeats: usize,
    /// Moved rows are scored in whole batches of this many, the remainder dropped (the authors:
    /// 1,000).
    pub batch_rows: usize,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            samples_per_image: 1,
            probe: LinearProbeConfig::default(),
            repeats: 20,
            batch_rows: 1000,
        }
    }
}

/// One repeat's top-1 accuracies and mean relative shift.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RepeatScores {
    /// Clean test features.
    pub clean: f64,
    /// Moved by learned-prior samples.
    pub learned_prior: f64,
    /// Moved by hyperprior samples (the authors' fixed prior).
    pub fixed_prior: f64,
    /// The authors' random control (norm dist²).
    pub random: f64,
    /// Moved by the mean-scale fixed prior.
    pub fixed_prior_mean_scale: f64,
    /// Random moves of matched norm dist.
    pub random_matched: f64,
    /// Mean of ‖z' − z‖ / ‖z‖ over the learned-prior moves.
    pub relative_shift: f64,
}

/// Runs the protocol (see the module docs), training every repeat's probe with `config.probe`
/// (on the CPU, where the operators live).
///
/// # Errors
/// As [`LinearProbe::fit`] and [`score_identity`]; also [`crate::Error::InvalidSetting`] when
/// `train` and `test` differ in dimension or classes, or `repeats` or `batch_rows` is 0.
pub fn identity_preservation(
    train: &Features,
    test: &Features,
    operators: &Operators,
    prior: &PriorNetwork,
    threshold: f32,
    seed: u64,
    config: &IdentityConfig,
) -> Result<IdentityResult> {
    identity_preservation_with(None, train, test, operators, prior, threshold, seed, config)
}

/// [`identity_preservation`], with `first_probe` (e.g. the one the linear evaluation trained
/// with `config.probe`) as the first repeat's probe instead of training it again.
///
/// # Errors
/// As [`identity_preservation`].
#[allow(clippy::too_many_arguments)] // the protocol's inputs, each named in the docs
pub fn identity_preservation_with(
    first_probe: Option<&LinearProbe>,
    train: &Features,
    test: &Features,
    operators: &Operators,
    prior: &PriorNetwork,
    threshold: f32,
    seed: u64,
    config: &IdentityConfig,
) -> Result<IdentityResult> {
    train.ensure_compatible(test)?;
    ensure_positive("identity.repeats", config.repeats)?;
    // The moved rows and their prior parameters are the same in every repeat: the prior network
    // runs once, not once per repeat (it dominated the protocol's time).
    let moves = PriorMoves::new(test, operators, prior, config)?;
    let mut repeats = Vec::with_capacity(config.repeats);
    for r in 0..config.repeats {
        let trained;
        let probe = match (r, first_probe) {
            (0, Some(probe)) => probe,
            _ => {
                let probe_config = LinearProbeConfig {
                    seed: config.probe.seed.wrapping_add(r as u64),
                    ..config.probe
                };
                trained = LinearProbe::fit(train, &probe_config, &Device::Cpu)?;
                &trained
            }
        };
        repeats.push(moves.score(
            probe,
            test,
            operators,
            threshold,
            stream_seed(&[IDENTITY_DOMAIN, seed, r as u64]),
            config.samples_per_image,
        )?);
    }
    let stat =
        |pick: fn(&RepeatScores) -> f64| MeanStd::of(&repeats.iter().map(pick).collect::<Vec<_>>());
    Ok(IdentityResult {
        repeats: repeats.len(),
        moved_rows: scored_rows(test.len(), config.batch_rows),
        clean: stat(|r| r.clean),
        learned_prior: stat(|r| r.learned_prior),
        fixed_prior: stat(|r| r.fixed_prior),
        random: stat(|r| r.random),
        fixed_prior_mean_scale: stat(|r| r.fixed_prior_mean_scale),
        random_matched: stat(|r| r.random_matched),
        mean_relative_shift: stat(|r| r.relative_shift).mean,
        samples_per_image: config.samples_per_image,
        threshold,
    })
}

/// How many test rows the moves are scored on: whole batches of `batch_rows`, or all `rows`
/// when there are fewer than one batch.
pub fn scored_rows(rows: usize, batch_rows: usize) -> usize {
    if batch_rows == 0 || rows < batch_rows {
        rows
    } else {
        rows - rows % batch_rows
    }
}

/// One repeat with an already trained `probe`: its top-1 on the clean `test` features and on
/// the five kinds of moves of the module docs, `config.samples_per_image` moves per row, with
/// soft threshold `threshold` and every random draw fixed by `seed`.
///
/// # Errors
/// * [`crate::Error::InvalidSetting`] when `test` is empty, `samples_per_image` or `batch_rows`
///   is 0, or the operators, the prior network and the features disagree on the dimension or the
///   number of operators;
/// * [`crate::Error::Bundle`] when the shared code refuses an input (a negative or non-finite
///   threshold, a transport that overflows);
/// * the probe's errors, as [`LinearProbe::evaluate`].
pub fn score_identity(
    probe: &LinearProbe,
    test: &Features,
    operators: &Operators,
    prior: &PriorNetwork,
    threshold: f32,
    seed: u64,
    config: &IdentityConfig,
) -> Result<RepeatScores> {
    PriorMoves::new(test, operators, prior, config)?.score(
        probe,
        test,
        operators,
        threshold,
        seed,
        config.samples_per_image,
    )
}

/// The part of a repeat that does not depend on its probe or its seed: the scored test rows and
/// the learned prior's parameters of each, chunk by chunk.
struct PriorMoves {
    /// The first [`scored_rows`] test rows.
    scored: Features,
    /// The learned prior of `scored`, one entry per chunk of [`CHUNK_ROWS`] rows.
    params: Vec<LaplaceParams>,
    /// ln of the mean-scale fixed prior's per-coefficient scale ([`mean_scales`]).
    mean_logscale: Vec<f32>,
}

impl PriorMoves {
    /// Checks the inputs and runs the prior network over the scored rows of `test`.
    fn new(
        test: &Features,
        operators: &Operators,
        prior: &PriorNetwork,
        config: &IdentityConfig,
    ) -> Result<Self> {
        ensure_positive("identity test rows", test.len())?;
        ensure_positive("identity.samples_per_image", config.samples_per_image)?;
        ensure_positive("identity.batch_rows", config.batch_rows)?;
        ensure_moves_fit(test, operators, prior)?;
        let rows: Vec<usize> = (0..scored_rows(test.len(), config.batch_rows)).collect();
        let scored = test.subset(&rows)?;
        let params = prior_params(&scored, prior)?;
        let mean_logscale = mean_scales(&merge(&params), operators.num_operators())?
            .iter()
            .map(|b| b.ln())
            .collect();
        Ok(Self {
            scored,
            params,
            mean_logscale,
        })
    }

    /// One repeat: `probe`'s top-1 on the clean `test` rows and on every kind of move of the
    /// scored rows, `samples_per_image` moves per row, every draw fixed by `seed`.
    fn score(
        &self,
        probe: &LinearProbe,
        test: &Features,
        operators: &Operators,
        threshold: f32,
        seed: u64,
        samples_per_image: usize,
    ) -> Result<RepeatScores> {
        let clean = probe.evaluate(test)?.top1;
        let (test, params, mean_scale) = (&self.scored, &self.params, &self.mean_logscale);
        let m = operators.num_operators();
        let (zeros, hyper_loc, hyper_logscale) = (
            vec![0.0_f32; m],
            vec![SHIFT_PRIOR; m],
            vec![SCALE_PRIOR_LN; m],
        );

        let dim = test.dim();
        let chunks: Vec<Moved> = test
            .data()
            .par_chunks(CHUNK_ROWS * dim)
            .zip(params.par_iter())
            .enumerate()
            .map(|(chunk, (z, params))| {
                let rows = z.len() / dim;
                let stream = |kind: u64| stream_seed(&[IDENTITY_DOMAIN, seed, chunk as u64, kind]);
                let sample = |kind: u64, loc: &[f32], logscale: &[f32]| {
                    LaplaceSampler::new(stream(kind)).sample(
                        loc,
                        logscale,
                        threshold,
                        samples_per_image,
                    )
                };
                let learned = operators.apply(&sample(0, &params.loc, &params.logscale)?, z)?;
                let fixed = operators.apply(
                    &sample(1, &hyper_loc.repeat(rows), &hyper_logscale.repeat(rows))?,
                    z,
                )?;
                let mean_fixed = operators.apply(
                    &sample(3, &zeros.repeat(rows), &mean_scale.repeat(rows))?,
                    z,
                )?;
                let mut rng = StreamRng::from_words(&[IDENTITY_DOMAIN, seed, chunk as u64, 2]);
                let random = random_moves(z, &learned, dim, &mut rng);
                Ok(Moved {
                    learned,
                    fixed,
                    mean_fixed,
                    random_squared: random.squared,
                    random_matched: random.matched,
                    relative_shift: random.relative_shift,
                })
            })
            .collect::<Result<_>>()?;

        let labels = sample_labels(test, CHUNK_ROWS, samples_per_image);
        let gather = |pick: fn(&Moved) -> &[f32]| -> Result<f64> {
            let data: Vec<f32> = chunks
                .iter()
                .flat_map(|c| pick(c).iter().copied())
                .collect();
            let moved = Features::new(data, dim, labels.clone(), test.classes())?;
            Ok(probe.evaluate(&moved)?.top1)
        };
        let shifts = chunks.iter().map(|c| c.relative_shift).sum::<f64>();
        Ok(RepeatScores {
            clean,
            learned_prior: gather(|c| &c.learned)?,
            fixed_prior: gather(|c| &c.fixed)?,
            random: gather(|c| &c.random_squared)?,
            fixed_prior_mean_scale: gather(|c| &c.mean_fixed)?,
            random_matched: gather(|c| &c.random_matched)?,
            relative_shift: shifts / (test.len() * samples_per_image) as f64,
        })
    }
}

/// The per-coefficient scale of the fixed prior: the mean over `params`' rows of the learned
/// scale `b = exp(ln b)` of each of the `m` coefficients (the mean of the scales, not of their
/// logarithms, so that both priors have the same mean absolute deviation per coefficient).
///
/// # Errors
/// [`crate::Error::InvalidSetting`] naming `prior parameters` when `m` is 0, the log-scales are not
/// a non-empty whole number of rows of `m`, or the locations have another length.
pub fn mean_scales(params: &LaplaceParams, m: usize) -> Result<Vec<f32>> {
    let len = params.logscale.len();
    if m == 0 || len == 0 || !len.is_multiple_of(m) || params.loc.len() != len {
        return Err(invalid(
            "prior parameters",
            format!("non-empty rows of {m} locations and log-scales"),
            format!("{} locations and {len} log-scales", params.loc.len()),
        ));
    }
    let mut sums = vec![0.0_f64; m];
    for row in params.logscale.chunks_exact(m) {
        for (sum, &l) in sums.iter_mut().zip(row) {
            *sum += f64::from(l).exp();
        }
    }
    let rows = (len / m) as f64;
    Ok(sums.into_iter().map(|s| (s / rows) as f32).collect())
}

/// The fully warmed learned prior of every test row, one [`LaplaceParams`] per chunk of
/// [`CHUNK_ROWS`] rows (computed in parallel).
pub(crate) fn prior_params(test: &Features, prior: &PriorNetwork) -> Result<Vec<LaplaceParams>> {
    test.data()
        .par_chunks(CHUNK_ROWS * test.dim())
        .map(|z| Ok(prior.prior(z)?))
        .collect()
}

/// Chunked prior parameters concatenated, rows in order.
pub(crate) fn merge(chunks: &[LaplaceParams]) -> LaplaceParams {
    LaplaceParams {
        loc: chunks.iter().flat_map(|p| p.loc.iter().copied()).collect(),
        logscale: chunks
            .iter()
            .flat_map(|p| p.logscale.iter().copied())
            .collect(),
    }
}

/// Fails unless the operators act on the features' dimension and the prior reads features of
/// that dimension and outputs one distribution per operator.
pub(crate) fn ensure_moves_fit(
    features: &Features,
    operators: &Operators,
    prior: &PriorNetwork,
) -> Result<()> {
    if operators.dim() != features.dim() {
        return Err(invalid(
            "operators",
            format!("dimension K·n = {} (as the features)", features.dim()),
            operators.dim(),
        ));
    }
    if prior.mlp().input_dim() != features.dim() {
        return Err(invalid(
            "prior network",
            format!("input width {} (as the features)", features.dim()),
            prior.mlp().input_dim(),
        ));
    }
    if prior.mlp().output_dim() != operators.num_operators() {
        return Err(invalid(
            "prior network",
            format!(
                "{} coefficients (one per operator)",
                operators.num_operators()
            ),
            prior.mlp().output_dim(),
        ));
    }
    Ok(())
}

/// A 64-bit seed for a shared-crate sampler, derived from `words` through the trainer's stream.
pub(crate) fn stream_seed(words: &[u64]) -> u64 {
    StreamRng::from_words(words).below(u64::MAX)
}

/// One chunk's moved rows, each `(samples, rows, d)` row-major, and its sum of relative shifts.
struct Moved {
    learned: Vec<f32>,
    fixed: Vec<f32>,
    mean_fixed: Vec<f32>,
    random_squared: Vec<f32>,
    random_matched: Vec<f32>,
    relative_shift: f64,
}

/// The random controls of one chunk of rows.
pub struct RandomMoves {
    /// `z + dist² · u`: the authors' control.
    pub squared: Vec<f32>,
    /// `z + dist · u`: matched norm.
    pub matched: Vec<f32>,
    /// Σ over rows of `dist / ‖z‖` (0 for a zero `z`, which no linear operator moves).
    pub relative_shift: f64,
}

/// For `moved` (`(S, B, d)`, row `r` a move of `z` row `r mod B`, dist = ‖z' − z‖): both random
/// controls with the same direction u, uniform on the unit sphere, from `rng`.
pub fn random_moves(z: &[f32], moved: &[f32], dim: usize, rng: &mut StreamRng) -> RandomMoves {
    let mut out = RandomMoves {
        squared: Vec::with_capacity(moved.len()),
        matched: Vec::with_capacity(moved.len()),
        relative_shift: 0.0,
    };
    for (z, moved) in z.chunks_exact(dim).cycle().zip(moved.chunks_exact(dim)) {
        let dist = z
            .iter()
            .zip(moved)
            .map(|(a, b)| f64::from(b - a).powi(2))
            .sum::<f64>()
            .sqrt();
        let norm = z.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
        if norm > 0.0 {
            out.relative_shift += dist / norm;
        }
        let direction = unit_direction(rng, dim);
        for (a, u) in z.iter().zip(&direction) {
            let a = f64::from(*a);
            out.squared.push((a + dist * dist * u) as f32);
            out.matched.push((a + dist * u) as f32);
        }
    }
    out
}

/// A direction uniform on the unit sphere in `dim` dimensions: a standard normal vector
/// (Box–Muller) divided by its norm.
fn unit_direction(rng: &mut StreamRng, dim: usize) -> Vec<f64> {
    loop {
        let v: Vec<f64> = (0..dim)
            .map(|_| {
                let u1 = 1.0 - rng.unit();
                let u2 = rng.unit();
                (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
            })
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 0.0 {
            return v.into_iter().map(|x| x / norm).collect();
        }
    }
}

/// The labels of the moved rows in chunk order: for each chunk of `chunk_rows` rows, its labels
/// repeated once per sample.
pub(crate) fn sample_labels(test: &Features, chunk_rows: usize, samples: usize) -> Vec<u16> {
    test.labels()
        .chunks(chunk_rows)
        .flat_map(|chunk| std::iter::repeat_n(chunk, samples).flatten().copied())
        .collect()
}
