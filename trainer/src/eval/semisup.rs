//! Semi-supervised classification with few labels (SPEC §10): how much do feature-space
//! augmentations help a classifier trained on frozen features with 5 labels per class?
//!
//! One trial, for a seed:
//! 1. pick `labels_per_class` labelled rows of each class of the training features (a seeded
//!    shuffle of the class's rows; a class with fewer rows contributes all of them); every training
//!    row, labelled or not, is in the unlabelled pool, its label unused;
//! 2. train an MLP `d → hidden (LeakyReLU 0.01) → C` (initialised as torch's `nn.Linear`) with
//!    torch's `Adam` (lr 5e-4, L2-style weight decay 5e-4) for `iterations` steps, each drawing
//!    `labelled_batch` labelled and `unlabelled_batch` unlabelled rows uniformly with replacement;
//!    the loss is `CE(labelled) + weight · consistency`, where the consistency term takes the
//!    online classifier's predictions on the unlabelled rows `z_u` (no gradient), keeps those whose
//!    top probability exceeds `threshold`, and sums `CE(clf(aug(z_u)), pseudo-label)` over them,
//!    divided by `unlabelled_batch` (not by the number kept);
//! 3. keep an exponential moving average (decay 0.999) of the weights after each step, and score
//!    the EMA classifier's top-1 accuracy on the test features.
//!
//! Trials use seeds `first_seed..first_seed + trials`; the result reports mean ± std.
//!
//! The augmentation is the caller's ([`Augmentation`]), so the same protocol compares learned
//! operators (a prior sample, threshold 0), no augmentation (pseudo-labelling), or anything else.
//! Two baselines of SPEC §10 are built in, since they need more than a map of `z_u`:
//! * [`Method::Mixup`] (ICT-style, per sample) replaces the consistency term: each unlabelled row
//!   `z_i` is mixed with the row `z_j` a random permutation of the batch pairs it with, with its
//!   own `λ ~ Beta(0.5, 0.5)` ([`sample_beta`]); the target is the same mix of the EMA
//!   classifier's softmax outputs (no gradient), and the term is the mean squared error between
//!   the online classifier's softmax on `λ z_i + (1 − λ) z_j` and that target, over rows and
//!   classes, with no confidence threshold;
//! * [`Method::FeatMatch`] is a parameter-free variant of Kuo et al. 2020's FeatMatch: each
//!   unlabelled `z` attends over the trial's labelled rows `L` (softmax of `cos(z, L_j) / τ`,
//!   τ = [`FEATMATCH_TEMPERATURE`]), and the augmented feature is `½ (z + Σ_j a_j L_j)`, half way to
//!   its attention prototype. The original learns the attention's projections and refines with
//!   class prototypes from k-means; here nothing is learned, so the augmentation only depends on
//!   the frozen features. The consistency term is then the confident-pseudo-label one above.

use candle_core::{D, DType, Device, Tensor, Var};

use super::adam::Adam;
use super::report::SemiSupervisedResult;
use super::{
    Features, accuracy, ensure_positive, ensure_positive_f64, invalid, linear::argmax, linear_layer,
};
use crate::augment::rng::StreamRng;
use crate::{Error, Result};

/// Domain tag of the protocol's random streams.
const SEMI_DOMAIN: u64 = 0x7365_6d69; // "semi"

/// LeakyReLU's negative slope (torch's default).
const LEAKY_SLOPE: f64 = 0.01;

/// Both shape parameters of mixup's `λ ~ Beta(α, α)` (SPEC §10: 0.5).
pub const MIXUP_ALPHA: f64 = 0.5;

/// Temperature τ of FeatMatch's attention `softmax(cos(z, L_j) / τ)` over the labelled rows.
pub const FEATMATCH_TEMPERATURE: f64 = 0.1;

/// Guard on feature norms before dividing by them (a zero row has cosine 0 to everything).
const NORM_EPSILON: f64 = 1e-12;

/// A feature-space augmentation: maps the unlabelled batch `z_u` (`U × d`) to augmented features
/// of the same shape, drawing any randomness from the given stream (seeded per trial, so trials are
/// reproducible).
pub type Augmentation<'a> = dyn Fn(&Tensor, &mut StreamRng) -> Result<Tensor> + 'a;

/// Which semi-supervised variant a trial trains.
#[derive(Clone, Copy)]
pub enum Method<'a> {
    /// Only the labelled cross-entropy (the baseline).
    SupervisedOnly,
    /// Consistency to confident pseudo-labels with no augmentation (`aug` is the identity).
    PseudoLabel,
    /// Consistency to confident pseudo-labels of features augmented by `augment` (e.g. learned
    /// operators applied with a prior sample, threshold 0).
    Augmented {
        /// The name reported in the result (e.g. `learned-operators`).
        name: &'a str,
        /// The augmentation.
        augment: &'a Augmentation<'a>,
    },
    /// ICT-style mixup: MSE between the classifier's softmax on per-row mixes of the unlabelled
    /// batch (`λ ~ Beta(0.5, 0.5)`) and the same mix of the EMA classifier's softmax outputs.
    Mixup,
    /// Consistency to confident pseudo-labels of features moved half way to their attention
    /// prototype over the labelled rows (a parameter-free FeatMatch, see the module docs).
    FeatMatch,
}

impl std::fmt::Debug for Method<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Method<'_> {
    /// The name reported in [`SemiSupervisedResult::method`].
    pub fn name(&self) -> &str {
        match self {
            Self::SupervisedOnly => "supervised-only",
            Self::PseudoLabel => "pseudo-label",
            Self::Augmented { name, .. } => name,
            Self::Mixup => "mixup",
            Self::FeatMatch => "featmatch",
        }
    }
}

/// The protocol's settings; [`Default`] is SPEC §10's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SemiSupervisedConfig {
    /// Labelled rows per class (SPEC: 5).
    pub labels_per_class: usize,
    /// Number of trials (SPEC: 50).
    pub trials: usize,
    /// Seed of the first trial; trial `t` uses `first_seed + t` (SPEC: seeds 0..49).
    pub first_seed: u64,
    /// Training iterations per trial (SPEC: 10,000).
    pub iterations: usize,
    /// Labelled rows per iteration (SPEC: 32).
    pub labelled_batch: usize,
    /// Unlabelled rows per iteration (SPEC: 480); also the consistency term's divisor.
    pub unlabelled_batch: usize,
    /// Width of the classifier's hidden layer (SPEC: 2048).
    pub hidden: usize,
    /// Adam learning rate (SPEC: 5e-4).
    pub lr: f64,
    /// Adam's L2-style weight decay (SPEC: 5e-4).
    pub weight_decay: f64,
    /// Confidence a pseudo-label needs, strictly exceeded (SPEC: 0.95).
    pub threshold: f64,
    /// Weight of the consistency term (SPEC: 1.0).
    pub consistency_weight: f64,
    /// Decay of the evaluated weight average (SPEC: 0.999).
    pub ema_decay: f64,
}

impl Default for SemiSupervisedConfig {
    fn default() -> Self {
        Self {
            labels_per_class: 5,
            trials: 50,
            first_seed: 0,
            iterations: 10_000,
            labelled_batch: 32,
            unlabelled_batch: 480,
            hidden: 2048,
            lr: 5e-4,
            weight_decay: 5e-4,
            threshold: 0.95,
            consistency_weight: 1.0,
            ema_decay: 0.999,
        }
    }
}

impl SemiSupervisedConfig {
    /// Fails with [`Error::InvalidSetting`] on a zero count or a rate out of range.
    fn validate(&self) -> Result<()> {
        ensure_positive("semisup.labels_per_class", self.labels_per_class)?;
        ensure_positive("semisup.trials", self.trials)?;
        ensure_positive("semisup.iterations", self.iterations)?;
        ensure_positive("semisup.labelled_batch", self.labelled_batch)?;
        ensure_positive("semisup.unlabelled_batch", self.unlabelled_batch)?;
        ensure_positive("semisup.hidden", self.hidden)?;
        ensure_positive_f64("semisup.lr", self.lr)?;
        let unit = |setting: &'static str, value: f64| -> Result<()> {
            if (0.0..=1.0).contains(&value) {
                Ok(())
            } else {
                Err(invalid(setting, "a number in [0, 1]", value))
            }
        };
        unit("semisup.threshold", self.threshold)?;
        unit("semisup.ema_decay", self.ema_decay)?;
        for (setting, value) in [
            ("semisup.weight_decay", self.weight_decay),
            ("semisup.consistency_weight", self.consistency_weight),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(invalid(setting, "a finite number >= 0", value));
            }
        }
        Ok(())
    }
}

/// Runs `config.trials` trials of `method` on `device` (the CPU, or a GPU under the `cuda`
/// feature: at SPEC size a trial is ~3 GFLOP per iteration) and reports the EMA classifier's test accuracy as mean
/// ± std (population std, as numpy's default).
///
/// # Errors
/// [`Error::InvalidSetting`] for an invalid `config`, an empty training set or mismatched
/// train/test features; [`Error::Shape`] when the augmentation changes the batch's shape; the
/// augmentation's own errors; [`Error::Candle`] if a tensor operation fails.
pub fn semi_supervised(
    train: &Features,
    test: &Features,
    method: Method<'_>,
    config: &SemiSupervisedConfig,
    device: &Device,
) -> Result<SemiSupervisedResult> {
    config.validate()?;
    train.ensure_compatible(test)?;
    ensure_positive("semi-supervised training rows", train.len())?;
    let mut trials = Vec::with_capacity(config.trials);
    for t in 0..config.trials {
        let seed = config.first_seed.wrapping_add(t as u64);
        trials.push(trial(train, test, method, config, seed, device)?);
    }
    Ok(summarize(method.name(), trials, config))
}

/// The result of `method`'s `trials` (accuracies, trial `t` with seed `first_seed + t`): mean and
/// population std (ddof 0, as numpy's default), with the settings that produced them. Public so
/// that a caller running the trials one by one (for a progress bar) reports them identically.
pub fn summarize(
    method: &str,
    trials: Vec<f64>,
    config: &SemiSupervisedConfig,
) -> SemiSupervisedResult {
    let n = trials.len().max(1) as f64;
    let mean = trials.iter().sum::<f64>() / n;
    let std = (trials.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / n).sqrt();
    SemiSupervisedResult {
        method: method.to_owned(),
        mean,
        std,
        trials,
        labels_per_class: config.labels_per_class,
        iterations: config.iterations,
    }
}

/// One trial with `seed` on `device`: the EMA classifier's top-1 accuracy on `test`.
///
/// # Errors
/// As [`semi_supervised`].
pub fn trial(
    train: &Features,
    test: &Features,
    method: Method<'_>,
    config: &SemiSupervisedConfig,
    seed: u64,
    device: &Device,
) -> Result<f64> {
    config.validate()?;
    train.ensure_compatible(test)?;
    let labelled = pick_labelled(train, config.labels_per_class, seed);
    ensure_positive("semi-supervised labelled rows", labelled.len())?;

    let mut init = StreamRng::from_words(&[SEMI_DOMAIN, seed, 1]);
    let mut batches = StreamRng::from_words(&[SEMI_DOMAIN, seed, 2]);
    let mut aug_rng = StreamRng::from_words(&[SEMI_DOMAIN, seed, 3]);
    let (w1, b1) = linear_layer(&mut init, train.dim(), config.hidden, device)?;
    let (w2, b2) = linear_layer(&mut init, config.hidden, train.classes(), device)?;
    let params = vec![w1, b1, w2, b2];
    let mut ema: Vec<Tensor> = params.iter().map(|p| p.as_tensor().detach()).collect();
    let mut adam = Adam::new(params.clone(), config.lr, config.weight_decay)?;

    let features = train.tensor(device)?;
    let labels: Vec<u32> = train.labels().iter().map(|&l| u32::from(l)).collect();
    let labels = Tensor::from_vec(labels, train.len(), device)?;
    // Row indices travel as u32 tensors.
    let rows = u32::try_from(train.len()).map(u64::from).map_err(|_| {
        invalid(
            "semi-supervised training rows",
            format!("at most {}", u32::MAX),
            train.len(),
        )
    })?;
    let unlabelled_shape = (config.unlabelled_batch, train.dim());
    // FeatMatch's attention memory: the trial's labelled rows and their unit directions.
    let labelled_rows = Tensor::from_slice(&labelled, labelled.len(), device)?;
    let values = features.index_select(&labelled_rows, 0)?;
    let keys = unit_rows(&values)?;

    for _ in 0..config.iterations {
        let pick: Vec<u32> = (0..config.labelled_batch)
            .filter_map(|_| labelled.get(batches.below(labelled.len() as u64) as usize))
            .copied()
            .collect();
        let pick = Tensor::from_vec(pick, config.labelled_batch, device)?;
        let logits = forward(&features.index_select(&pick, 0)?, &params)?;
        let mut loss = candle_nn::loss::cross_entropy(&logits, &labels.index_select(&pick, 0)?)?;

        if let Some(consistency) = Consistency::of(method) {
            let pick: Vec<u32> = (0..config.unlabelled_batch)
                .map(|_| u32::try_from(batches.below(rows)).unwrap_or(0))
                .collect();
            let pick = Tensor::from_vec(pick, config.unlabelled_batch, device)?;
            let z_u = features.index_select(&pick, 0)?;
            let term = match consistency {
                Consistency::Mixup => Some(mixup_consistency(&z_u, &params, &ema, &mut aug_rng)?),
                Consistency::Confident(augment) => {
                    let probs =
                        candle_nn::ops::softmax_last_dim(&forward(&z_u, &params)?.detach())?;
                    let confident = probs
                        .max(D::Minus1)?
                        .gt(config.threshold)?
                        .to_dtype(DType::F32)?;
                    if confident.sum_all()?.to_scalar::<f32>()? > 0.0 {
                        let pseudo = probs.argmax(D::Minus1)?;
                        let z_aug = match augment {
                            Augment::Identity => z_u,
                            Augment::Caller(augment) => augment(&z_u, &mut aug_rng)?,
                            Augment::FeatMatch => featmatch(&z_u, &keys, &values)?,
                        };
                        if z_aug.dims() != [unlabelled_shape.0, unlabelled_shape.1] {
                            return Err(Error::Shape {
                                what: "augmented unlabelled features",
                                expected: unlabelled_shape.0 * unlabelled_shape.1,
                                found: z_aug.elem_count(),
                            });
                        }
                        let log_probs =
                            candle_nn::ops::log_softmax(&forward(&z_aug, &params)?, D::Minus1)?;
                        let nll = log_probs
                            .gather(&pseudo.unsqueeze(1)?, 1)?
                            .squeeze(1)?
                            .neg()?;
                        Some(((nll * confident)?.sum_all()? / config.unlabelled_batch as f64)?)
                    } else {
                        None
                    }
                }
            };
            if let Some(term) = term {
                loss = (loss + (term * config.consistency_weight)?)?;
            }
        }
        adam.step(&loss.backward()?)?;
        for (average, param) in ema.iter_mut().zip(&params) {
            *average = ((&*average * config.ema_decay)?
                + (param.as_tensor().detach() * (1.0 - config.ema_decay))?)?;
        }
    }

    let logits = forward_tensors(&test.tensor(device)?, &ema)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let predictions: Vec<u16> = logits
        .chunks_exact(test.classes())
        .map(|row| u16::try_from(argmax(row)).unwrap_or(0))
        .collect();
    Ok(accuracy(&predictions, test.labels()))
}

/// The consistency term a [`Method`] adds to the labelled cross-entropy.
#[derive(Clone, Copy)]
enum Consistency<'a> {
    /// Cross-entropy to confident pseudo-labels of augmented features.
    Confident(Augment<'a>),
    /// Mixup's MSE to mixed EMA soft labels.
    Mixup,
}

/// The augmentation of [`Consistency::Confident`].
#[derive(Clone, Copy)]
enum Augment<'a> {
    /// None: pseudo-labelling.
    Identity,
    /// The caller's.
    Caller(&'a Augmentation<'a>),
    /// Half way to the attention prototype over the labelled rows.
    FeatMatch,
}

impl<'a> Consistency<'a> {
    /// `None` when `method` has no consistency term (supervised-only).
    fn of(method: Method<'a>) -> Option<Self> {
        match method {
            Method::SupervisedOnly => None,
            Method::PseudoLabel => Some(Self::Confident(Augment::Identity)),
            Method::Augmented { augment, .. } => Some(Self::Confident(Augment::Caller(augment))),
            Method::FeatMatch => Some(Self::Confident(Augment::FeatMatch)),
            Method::Mixup => Some(Self::Mixup),
        }
    }
}

/// Mixup's consistency term on the unlabelled batch `z_u` (`U × d`): per-row `λ ~ Beta(α, α)` and a
/// random pairing `j` drawn from `rng`, then
/// `mean((softmax(clf(λ z_i + (1 − λ) z_j)) − (λ p_i + (1 − λ) p_j))²)` over rows and classes, where
/// `p = softmax(ema(z_u))` carries no gradient.
fn mixup_consistency(
    z_u: &Tensor,
    params: &[Var],
    ema: &[Tensor],
    rng: &mut StreamRng,
) -> Result<Tensor> {
    let rows = z_u.dim(0)?;
    let lambda = (0..rows)
        .map(|_| sample_beta(rng, MIXUP_ALPHA, MIXUP_ALPHA).map(|l| l as f32))
        .collect::<Result<Vec<f32>>>()?;
    let mut partner: Vec<u32> = (0..rows).filter_map(|i| u32::try_from(i).ok()).collect();
    rng.shuffle(&mut partner);
    let device = z_u.device();
    let partner = Tensor::from_vec(partner, rows, device)?;
    let lambda = Tensor::from_vec(lambda, (rows, 1), device)?;
    let rest = lambda.affine(-1.0, 1.0)?;
    let mix = |x: &Tensor| -> Result<Tensor> {
        Ok((x.broadcast_mul(&lambda)? + x.index_select(&partner, 0)?.broadcast_mul(&rest)?)?)
    };
    let soft = candle_nn::ops::softmax_last_dim(&forward_tensors(z_u, ema)?.detach())?;
    let target = mix(&soft)?.detach();
    let predicted = candle_nn::ops::softmax_last_dim(&forward(&mix(z_u)?, params)?)?;
    Ok((predicted - target)?.sqr()?.mean_all()?)
}

/// FeatMatch's refined features `½ (z + Σ_j a_j L_j)` with `a = softmax_j(cos(z, L_j) / τ)`, given
/// the labelled rows' unit directions `keys` (`L × d`) and the rows themselves `values` (`L × d`).
fn featmatch(z: &Tensor, keys: &Tensor, values: &Tensor) -> Result<Tensor> {
    let scores = (unit_rows(z)?.matmul(&keys.t()?)? / FEATMATCH_TEMPERATURE)?;
    let prototypes = candle_nn::ops::softmax_last_dim(&scores)?.matmul(values)?;
    Ok(((z + prototypes)? * 0.5)?)
}

/// `x` with each row divided by its euclidean norm (a zero row stays zero).
fn unit_rows(x: &Tensor) -> Result<Tensor> {
    let norms = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(NORM_EPSILON, f64::MAX)?;
    Ok(x.broadcast_div(&norms)?)
}

/// One draw of `Beta(a, b)` by Jöhnk's method, for shape parameters in `(0, 1]` (mixup uses
/// `a = b = 0.5`): with `U, V` uniform on `(0, 1]`, `X = U^(1/a)` and `Y = V^(1/b)` are accepted
/// when `X + Y ≤ 1`, and `X / (X + Y)` is then `Beta(a, b)` distributed. The test and the ratio are
/// computed from logarithms, so tiny `X` and `Y` cannot underflow to `0 / 0`. The acceptance rate
/// is `Γ(a + 1) Γ(b + 1) / Γ(a + b + 1)` (π/4 for `a = b = ½`), which is why larger parameters are
/// refused rather than sampled slowly.
///
/// # Errors
/// [`Error::InvalidSetting`] naming `beta shape` unless `0 < a ≤ 1` and `0 < b ≤ 1`.
pub fn sample_beta(rng: &mut StreamRng, a: f64, b: f64) -> Result<f64> {
    for shape in [a, b] {
        if !(shape > 0.0 && shape <= 1.0) {
            return Err(invalid("beta shape", "a number in (0, 1]", shape));
        }
    }
    loop {
        let log_x = (1.0 - rng.unit()).ln() / a;
        let log_y = (1.0 - rng.unit()).ln() / b;
        let log_sum = log_x.max(log_y) + (-(log_x - log_y).abs()).exp().ln_1p();
        if log_sum <= 0.0 {
            return Ok((log_x - log_sum).exp().clamp(0.0, 1.0));
        }
    }
}

/// The rows labelled in a trial: for each class, the first `per_class` of its rows after a seeded
/// shuffle.
fn pick_labelled(train: &Features, per_class: usize, seed: u64) -> Vec<u32> {
    let mut by_class: Vec<Vec<u32>> = vec![Vec::new(); train.classes()];
    for (i, &label) in train.labels().iter().enumerate() {
        if let (Some(rows), Ok(i)) = (by_class.get_mut(usize::from(label)), u32::try_from(i)) {
            rows.push(i);
        }
    }
    let mut rng = StreamRng::from_words(&[SEMI_DOMAIN, seed, 0]);
    let mut picked = Vec::with_capacity(per_class * train.classes());
    for mut rows in by_class {
        rng.shuffle(&mut rows);
        picked.extend(rows.into_iter().take(per_class));
    }
    picked
}

/// The classifier on `x` with the trainable `params` `[w1, b1, w2, b2]`.
fn forward(x: &Tensor, params: &[Var]) -> Result<Tensor> {
    let tensors: Vec<Tensor> = params.iter().map(|p| p.as_tensor().clone()).collect();
    forward_tensors(x, &tensors)
}

/// `LeakyReLU(x W1ᵀ + b1) W2ᵀ + b2` with `params = [w1, b1, w2, b2]`.
fn forward_tensors(x: &Tensor, params: &[Tensor]) -> Result<Tensor> {
    let [w1, b1, w2, b2] = params else {
        return Err(invalid("classifier parameters", "4 tensors", params.len()));
    };
    let hidden = x.matmul(&w1.t()?)?.broadcast_add(b1)?;
    let hidden = candle_nn::ops::leaky_relu(&hidden, LEAKY_SLOPE)?;
    Ok(hidden.matmul(&w2.t()?)?.broadcast_add(b2)?)
}
