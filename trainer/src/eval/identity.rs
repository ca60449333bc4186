//! Identity preservation (SPEC §10): do the learned operators move a feature without changing what
//! it depicts?
//!
//! A linear probe is trained on the clean training features and scored top-1 on four versions of
//! the test features:
//! 1. **clean**: as they are;
//! 2. **learned prior**: each row `z` moved by `samples_per_image` samples
//!    `c̃ ~ Laplace(μ_p(z), b_p(z))` of the fully warmed learned prior (soft threshold ζ), as
//!    `z' = T(c̃) z`;
//! 3. **fixed prior**: each row moved by samples of one input-independent Laplace with location 0
//!    and, per coefficient `m`, the scale equal to the mean over the test rows of the learned
//!    prior's scale `b_p(z)_m` ([`mean_scales`]). Both priors thus spread the coefficients equally
//!    on average, and the comparison isolates what the learned prior gains by depending on the
//!    point: moves chosen for `z` rather than for the average feature;
//! 4. **random, matched norm**: `z + ‖z' − z‖ · u` with `u` uniform on the unit sphere, where
//!    `z'` is the learned-prior move of the same row and sample: a displacement as large as the
//!    operators', in a random direction.
//!
//! The mean relative displacement `‖z' − z‖ / ‖z‖` of the learned-prior moves is reported too, so
//! that a high accuracy cannot hide moves that barely move.
//!
//! Rows are processed in fixed chunks (in parallel), each with its own seeded streams, so the
//! result depends on the seed only, not on the number of threads.

use candle_core::Device;
use mclr_shared::operators::{LaplaceParams, LaplaceSampler, Operators, PriorNetwork};
use rayon::prelude::*;

use super::linear::{LinearProbe, LinearProbeConfig};
use super::report::IdentityResult;
use super::{Features, ensure_positive, invalid};
use crate::Result;
use crate::augment::rng::StreamRng;

/// Domain tag of the protocol's random streams.
const IDENTITY_DOMAIN: u64 = 0x6964_656e; // "iden"

/// Test rows per chunk: the unit of parallel work and of seeding.
pub(crate) const CHUNK_ROWS: usize = 64;

/// The identity-preservation settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IdentityConfig {
    /// Prior samples drawn per test row; each moved copy is scored (default 1, SPEC §10).
    pub samples_per_image: usize,
    /// The linear probe trained on the clean training features (default: SPEC §10's).
    pub probe: LinearProbeConfig,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            samples_per_image: 1,
            probe: LinearProbeConfig::default(),
        }
    }
}

/// Trains the linear probe of `config` on the clean `train` features (on the CPU, where the
/// operators live) and scores it as [`score_identity`] does. To reuse a probe trained elsewhere
/// (or on another device), call [`score_identity`] directly.
///
/// # Errors
/// As [`LinearProbe::fit`] and [`score_identity`]; also [`crate::Error::InvalidSetting`] when
/// `train` and `test` differ in dimension or classes.
pub fn identity_preservation(
    train: &Features,
    test: &Features,
    operators: &Operators,
    prior: &PriorNetwork,
    threshold: f32,
    seed: u64,
    config: &IdentityConfig,
) -> Result<IdentityResult> {
    train.ensure_compatible(test)?;
    let probe = LinearProbe::fit(train, &config.probe, &Device::Cpu)?;
    score_identity(
        &probe,
        test,
        operators,
        prior,
        threshold,
        seed,
        config.samples_per_image,
    )
}

/// Scores an already trained `probe` (e.g. the one the linear evaluation trained) on the clean
/// `test` features and on the learned-prior, fixed-prior and matched-norm random moves of them
/// (see the module docs), `samples_per_image` moves per row, with soft threshold `threshold` and
/// every random draw fixed by `seed`.
///
/// # Errors
/// * [`crate::Error::InvalidSetting`] when `test` is empty, `samples_per_image` is 0, or the
///   operators, the prior network and the features disagree on the dimension or the number of
///   operators;
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
    samples_per_image: usize,
) -> Result<IdentityResult> {
    ensure_positive("identity test rows", test.len())?;
    ensure_positive("identity.samples_per_image", samples_per_image)?;
    ensure_moves_fit(test, operators, prior)?;
    let m = operators.num_operators();

    let params = prior_params(test, prior)?;
    let fixed_scale = mean_scales(&merge(&params), m)?;
    let fixed_logscale: Vec<f32> = fixed_scale.iter().map(|b| b.ln()).collect();
    let fixed_loc = vec![0.0_f32; m];

    let dim = test.dim();
    let chunks: Vec<Moved> = test
        .data()
        .par_chunks(CHUNK_ROWS * dim)
        .zip(params.par_iter())
        .enumerate()
        .map(|(chunk, (z, params))| {
            let rows = z.len() / dim;
            let stream = |kind: u64| stream_seed(&[IDENTITY_DOMAIN, seed, chunk as u64, kind]);
            let learned_c = LaplaceSampler::new(stream(0)).sample(
                &params.loc,
                &params.logscale,
                threshold,
                samples_per_image,
            )?;
            let learned = operators.apply(&learned_c, z)?;
            let fixed_loc = fixed_loc.repeat(rows);
            let fixed_logscale = fixed_logscale.repeat(rows);
            let fixed_c = LaplaceSampler::new(stream(1)).sample(
                &fixed_loc,
                &fixed_logscale,
                threshold,
                samples_per_image,
            )?;
            let fixed = operators.apply(&fixed_c, z)?;
            let mut rng = StreamRng::from_words(&[IDENTITY_DOMAIN, seed, chunk as u64, 2]);
            let (random, relative_shift) = matched_random(z, &learned, dim, &mut rng);
            Ok(Moved {
                learned,
                fixed,
                random,
                relative_shift,
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
    Ok(IdentityResult {
        clean: probe.evaluate(test)?.top1,
        learned_prior: gather(|c| &c.learned)?,
        fixed_prior: gather(|c| &c.fixed)?,
        random_matched: gather(|c| &c.random)?,
        mean_relative_shift: shifts / (test.len() * samples_per_image) as f64,
        samples_per_image,
        threshold,
    })
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
    random: Vec<f32>,
    relative_shift: f64,
}

/// For `moved` (`(S, B, d)`, row `r` a move of `z` row `r mod B`): the matched-norm random moves
/// `z + ‖z' − z‖ · u` (u uniform on the unit sphere, from `rng`) and the sum over rows of
/// `‖z' − z‖ / ‖z‖` (0 for a zero `z`, which no linear operator moves).
fn matched_random(z: &[f32], moved: &[f32], dim: usize, rng: &mut StreamRng) -> (Vec<f32>, f64) {
    let mut random = Vec::with_capacity(moved.len());
    let mut relative = 0.0;
    for (z, moved) in z.chunks_exact(dim).cycle().zip(moved.chunks_exact(dim)) {
        let shift = z
            .iter()
            .zip(moved)
            .map(|(a, b)| f64::from(b - a).powi(2))
            .sum::<f64>()
            .sqrt();
        let norm = z.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
        if norm > 0.0 {
            relative += shift / norm;
        }
        let direction = unit_direction(rng, dim);
        random.extend(
            z.iter()
                .zip(&direction)
                .map(|(a, u)| (f64::from(*a) + shift * u) as f32),
        );
    }
    (random, relative)
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
