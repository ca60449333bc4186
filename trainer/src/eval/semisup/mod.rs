//! Semi-supervised classification with few labels (docs/method.md §10), as the authors' `src/eval_ssl.py`
//! (kfallah/manifold-contrastive, commit 15294ef): how much do feature-space augmentations help a
//! classifier trained on frozen features with 5 labels per class?
//!
//! One trial, for a seed:
//! 1. split the training features as the reference's `get_feature_split`: `labels_per_class`
//!    labelled rows of each class (a seeded shuffle of the class's rows; a class with fewer rows
//!    contributes all of them, where the reference's `np.random.choice(..., replace=False)` would
//!    fail), and every *other* row unlabelled, its label unused: the labelled rows are not in the
//!    unlabelled pool (the reference's `~np.in1d(np.arange(len(features)), labeled_idx)`);
//! 2. train an MLP `d → hidden (LeakyReLU 0.01) → C` (initialised as torch's `nn.Linear`) with
//!    torch's `Adam` (lr 5e-4, L2-style weight decay 5e-4) for `iterations` steps. Each step draws
//!    a labelled batch `randperm(n_labelled)[:labelled_batch]` and, for a method with a
//!    consistency term, an unlabelled batch `randperm(n_unlabelled)[:unlabelled_batch]`: distinct
//!    rows within a batch, all of the pool when it is smaller ([`TrialBatches`]). The loss is
//!    `CE(labelled) + weight · consistency`, where the consistency term takes the online
//!    classifier's predictions on the unlabelled rows `z_u` (no gradient), keeps those whose top
//!    probability exceeds `threshold`, and sums `CE(clf(aug(z_u)), pseudo-label)` over them,
//!    divided by the unlabelled batch's row count (not by the number kept), as the reference's
//!    `torch.sum(loss_con[wu]) / len(wu)`;
//! 3. keep an exponential moving average (decay 0.999, lightly's `update_momentum`) of the
//!    classifier's weights after each step, and score the EMA classifier's top-1 accuracy on the
//!    test features.
//!
//! Trials use seeds `first_seed..first_seed + trials`; the result reports mean ± std. For the
//! methods with confident pseudo-labels it also counts, over the first and the last tenth of the
//! iterations, how many unlabelled rows were confident and how many of those pseudo-labels were
//! right ([`PseudoLabelTrend`]): a diagnostic read from the hidden labels, never trained on.
//!
//! The augmentation is the caller's ([`Augmentation`]), so the same protocol compares learned
//! operators (a prior sample, threshold 0), no augmentation (pseudo-labelling), or anything else.
//! Two baselines of the reference are built in, since they need more than a map of `z_u`:
//! * [`Method::Mixup`] (ICT-style, per sample) replaces the consistency term: each unlabelled row
//!   `z_i` is mixed with row `i` of a second, independent unlabelled batch `z_mix` (another
//!   `randperm(n_unlabelled)[:unlabelled_batch]`, the reference's `mix_idx`), with its own
//!   `λ_i ~ Beta(0.5, 0.5)` ([`sample_beta`]; the reference's `np.random.beta(alpha, alpha, 480)`,
//!   `alpha = 0.5`). The target is `λ_i softmax(ema(z_i)) + (1 − λ_i) softmax(ema(z_mix,i))` (no
//!   gradient) and the term is the mean squared error between `softmax(clf(λ_i z_i + (1 − λ_i)
//!   z_mix,i))` and the target over rows and classes (`F.mse_loss`), with no confidence threshold
//!   ([`mixup_consistency`]);
//! * [`Method::FeatMatch`] is the reference's `AttenHead(512, 4)` ([`AttentionHead`]), a learned
//!   attention head after Kuo et al. 2020's FeatMatch, trained jointly with the classifier: its
//!   parameters are in the same Adam (same lr and weight decay) and have no EMA copy. The
//!   unlabelled batch `z_u` (queries) attends over the step's labelled batch `z_l` (keys and
//!   values) with `H` = [`FEATMATCH_HEADS`] heads of width `w = ⌊d / H⌋`:
//!   `a_h = dropout(softmax(embd_h(z_u) embd_h(z_l)ᵀ / √w))` over the labelled rows,
//!   `g_h = ReLU(fc_h([a_h embd_h(z_l), embd_h(z_u)]))` and
//!   `aug(z_u) = ReLU(z_u + fc([g_1, …, g_H]))`, with `embd_h: d → w`, `fc_h: 2w → w` and
//!   `fc: H·w → d` linear layers initialised as torch's `nn.Linear`, created in the reference's
//!   order (the classifier first, then `embd_1..H`, `fc_1..H`, `fc`). The head stays in training
//!   mode, as in the reference: dropout zeroes each attention weight with probability
//!   [`FEATMATCH_DROPOUT`] and scales the others by `1 / (1 − p)`, drawn from the trial's seeded
//!   stream. The consistency term is the confident-pseudo-label one above with
//!   `aug(z_u) = AttenHead(z_u, z_l)`: pseudo-labels from the online classifier on the raw `z_u`,
//!   cross-entropy on `clf(aug(z_u))`, so its gradient trains the head too. When no row is
//!   confident the term is zero and the head's parameters still take Adam's step for a zero
//!   gradient (weight decay only), as torch's do after a backward through an empty selection.
//!
//! Where this differs from the reference: the random draws (splits, batches, initial weights,
//! dropout masks, `λ`) come from the protocol's own seeded streams, not from torch's and numpy's
//! global generators, so trial `t` matches the reference's in distribution, not draw for draw; and
//! a class with fewer than `labels_per_class` rows is used whole rather than refused.

use candle_core::backprop::GradStore;
use candle_core::{D, DType, Device, Tensor, Var};

mod batches;
mod featmatch;
mod mixup;

pub use batches::TrialBatches;
pub use featmatch::{AttentionHead, dropout_mask};
pub use mixup::{mix, mixup_consistency, sample_beta};

use super::adam::Adam;
use super::report::{PseudoLabelCounts, PseudoLabelTrend, SemiSupervisedResult};
use super::{
    Features, accuracy, ensure_positive, ensure_positive_f64, invalid, linear::argmax, linear_layer,
};
use crate::augment::rng::StreamRng;
use crate::{Error, Result};

/// Domain tag of the protocol's random streams.
const SEMI_DOMAIN: u64 = 0x7365_6d69; // "semi"

/// LeakyReLU's negative slope (torch's default).
const LEAKY_SLOPE: f64 = 0.01;

/// Both shape parameters of mixup's `λ ~ Beta(α, α)` (the reference's `alpha = 0.5`).
pub const MIXUP_ALPHA: f64 = 0.5;

/// Number of heads of FeatMatch's attention head (the reference's `AttenHead(512, 4)`).
pub const FEATMATCH_HEADS: usize = 4;

/// Probability with which FeatMatch's dropout zeroes an attention weight (the reference's
/// `nn.Dropout(0.1)`).
pub const FEATMATCH_DROPOUT: f64 = 0.1;

/// A feature-space augmentation: maps the unlabelled batch `z_u` (`U × d`), whose rows are the
/// given training-set rows (so that anything computed per row from the frozen features, such as a
/// learned prior's parameters, can be computed once for the whole set), to augmented features of
/// the same shape, drawing any randomness from the given stream (seeded per trial, so trials are
/// reproducible). `Sync`, because trials run in parallel.
pub type Augmentation<'a> = dyn Fn(&Tensor, &[u32], &mut StreamRng) -> Result<Tensor> + Sync + 'a;

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
    /// batch with an independent second unlabelled batch (`λ ~ Beta(0.5, 0.5)`) and the same mix
    /// of the EMA classifier's softmax outputs.
    Mixup,
    /// Consistency to confident pseudo-labels of features refined by a learned 4-head attention
    /// head over the step's labelled batch, trained with the classifier (see the module docs).
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

/// The protocol's settings; [`Default`] is docs/method.md §10's (the reference's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SemiSupervisedConfig {
    /// Labelled rows per class (the paper: 5).
    pub labels_per_class: usize,
    /// Number of trials (the paper: 50).
    pub trials: usize,
    /// Seed of the first trial; trial `t` uses `first_seed + t` (the paper: seeds 0..49).
    pub first_seed: u64,
    /// Training iterations per trial (the paper: 10,000).
    pub iterations: usize,
    /// Labelled rows per iteration, distinct (the paper: 32; all labelled rows when there are fewer).
    pub labelled_batch: usize,
    /// Unlabelled rows per iteration, distinct (the paper: 480; all unlabelled rows when there are
    /// fewer); the batch's row count is also the consistency term's divisor.
    pub unlabelled_batch: usize,
    /// Width of the classifier's hidden layer (the paper: 2048).
    pub hidden: usize,
    /// Adam learning rate (the paper: 5e-4).
    pub lr: f64,
    /// Adam's L2-style weight decay (the paper: 5e-4).
    pub weight_decay: f64,
    /// Confidence a pseudo-label needs, strictly exceeded (the paper: 0.95).
    pub threshold: f64,
    /// Weight of the consistency term (the paper: 1.0).
    pub consistency_weight: f64,
    /// Decay of the evaluated weight average (the paper: 0.999).
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
/// feature: at the paper's size a trial is ~3 GFLOP per iteration) and reports the EMA classifier's test
/// accuracy as mean ± std (population std, as numpy's default).
///
/// # Errors
/// [`Error::InvalidSetting`] for an invalid `config`, an empty training set, mismatched
/// train/test features, no unlabelled row for a method that needs them, or features narrower than
/// [`FEATMATCH_HEADS`] for FeatMatch; [`Error::Shape`] when the augmentation changes the batch's
/// shape; the augmentation's own errors; [`Error::Candle`] if a tensor operation fails.
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
    let trials = parallel_trials(config, |seed| {
        trial(train, test, method, config, seed, device)
    })?;
    Ok(summarise(method.name(), &trials, config))
}

/// What one trial measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrialOutcome {
    /// The EMA classifier's top-1 accuracy on the test features.
    pub accuracy: f64,
    /// Its pseudo-label counts, for a method with confident pseudo-labels.
    pub pseudo_labels: Option<PseudoLabelTrend>,
}

/// `run(seed)` for every trial's seed `first_seed + t`, in parallel (each trial depends on its seed
/// only, so the results equal a loop's), in trial order. The first error in trial order wins.
///
/// # Errors
/// The first failing trial's.
pub fn parallel_trials<T: Send>(
    config: &SemiSupervisedConfig,
    run: impl Fn(u64) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    use rayon::prelude::*;
    (0..config.trials)
        .into_par_iter()
        .map(|t| run(config.first_seed.wrapping_add(t as u64)))
        .collect()
}

/// The result of `method`'s `outcomes` (trial `t` with seed `first_seed + t`): the accuracies' mean
/// and population std (ddof 0, as numpy's default) and the pooled pseudo-label counts, with the
/// settings that produced them. Public so that a caller running the trials one by one (for a
/// progress bar) reports them identically.
pub fn summarise(
    method: &str,
    outcomes: &[TrialOutcome],
    config: &SemiSupervisedConfig,
) -> SemiSupervisedResult {
    let pseudo_labels = outcomes
        .iter()
        .filter_map(|o| o.pseudo_labels)
        .reduce(PseudoLabelTrend::plus);
    let trials: Vec<f64> = outcomes.iter().map(|o| o.accuracy).collect();
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
        pseudo_labels,
    }
}

/// One trial with `seed` on `device`: the EMA classifier's top-1 accuracy on `test`, and the
/// pseudo-label counts of a method that has them.
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
) -> Result<TrialOutcome> {
    config.validate()?;
    train.ensure_compatible(test)?;
    let mut batches = TrialBatches::new(train, config, seed)?;
    ensure_positive(
        "semi-supervised labelled rows",
        batches.labelled_rows().len(),
    )?;
    let consistency = Consistency::of(method);
    if consistency.is_some() {
        ensure_positive(
            "semi-supervised unlabelled rows",
            batches.unlabelled_rows().len(),
        )?;
    }

    let mut init = StreamRng::from_words(&[SEMI_DOMAIN, seed, 1]);
    let mut aug_rng = StreamRng::from_words(&[SEMI_DOMAIN, seed, 3]);
    let (w1, b1) = linear_layer(&mut init, train.dim(), config.hidden, device)?;
    let (w2, b2) = linear_layer(&mut init, config.hidden, train.classes(), device)?;
    let classifier = vec![w1, b1, w2, b2];
    // FeatMatch's head is created after the classifier, as in the reference.
    let head = match method {
        Method::FeatMatch => Some(AttentionHead::new(
            &mut init,
            train.dim(),
            FEATMATCH_HEADS,
            device,
        )?),
        _ => None,
    };
    let head_vars = head.as_ref().map(AttentionHead::vars).unwrap_or_default();
    let mut ema: Vec<Tensor> = classifier.iter().map(|p| p.as_tensor().detach()).collect();
    let mut params = classifier.clone();
    params.extend(head_vars.iter().cloned());
    let mut adam = Adam::new(params, config.lr, config.weight_decay)?;

    let features = train.tensor(device)?;
    let labels: Vec<u32> = train.labels().iter().map(|&l| u32::from(l)).collect();
    let labels = Tensor::from_vec(labels, train.len(), device)?;
    let rows_of = |pick: Vec<u32>| -> Result<Tensor> {
        let n = pick.len();
        Ok(Tensor::from_vec(pick, n, device)?)
    };

    // Iterations counted in each window of the pseudo-label diagnostic.
    let tenth = config.iterations.div_ceil(10);
    let mut trend = PseudoLabelTrend::default();
    for iteration in 0..config.iterations {
        let pick = rows_of(batches.labelled_batch())?;
        let z_l = features.index_select(&pick, 0)?;
        let logits = forward(&z_l, &classifier)?;
        let mut loss = candle_nn::loss::cross_entropy(&logits, &labels.index_select(&pick, 0)?)?;

        if let Some(consistency) = consistency {
            let unlabelled = batches.unlabelled_batch();
            let unlabelled_index = rows_of(unlabelled.clone())?;
            let z_u = features.index_select(&unlabelled_index, 0)?;
            let unlabelled_shape = z_u.dims2()?;
            let term = match consistency {
                Consistency::Mixup => {
                    let z_mix = features.index_select(&rows_of(batches.unlabelled_batch())?, 0)?;
                    let lambda = (0..unlabelled_shape.0)
                        .map(|_| {
                            sample_beta(&mut aug_rng, MIXUP_ALPHA, MIXUP_ALPHA).map(|l| l as f32)
                        })
                        .collect::<Result<Vec<f32>>>()?;
                    let lambda = Tensor::from_vec(lambda, (unlabelled_shape.0, 1), device)?;
                    let online: Vec<Tensor> =
                        classifier.iter().map(|p| p.as_tensor().clone()).collect();
                    Some(mixup_consistency(&z_u, &z_mix, &lambda, &online, &ema)?)
                }
                Consistency::Confident(augment) => {
                    let logits_u = forward(&z_u, &classifier)?;
                    let probs = candle_nn::ops::softmax_last_dim(&logits_u.detach())?;
                    let confident = probs
                        .max(D::Minus1)?
                        .gt(config.threshold)?
                        .to_dtype(DType::F32)?;
                    let n_confident = confident.sum_all()?.to_scalar::<f32>()?;
                    let (in_first, in_last) =
                        (iteration < tenth, iteration + tenth >= config.iterations);
                    let mut counts = PseudoLabelCounts {
                        rows: unlabelled_shape.0 as u64,
                        confident: n_confident as u64,
                        correct: 0,
                    };
                    let term = if n_confident > 0.0 {
                        let pseudo = probs.argmax(D::Minus1)?;
                        if in_first || in_last {
                            let truth = labels.index_select(&unlabelled_index, 0)?;
                            counts.correct =
                                (pseudo.eq(&truth)?.to_dtype(DType::F32)? * &confident)?
                                    .sum_all()?
                                    .to_scalar::<f32>()? as u64;
                        }
                        let z_aug = match (augment, &head) {
                            (Augment::Identity, _) => None,
                            (Augment::Caller(augment), _) => {
                                Some(augment(&z_u, &unlabelled, &mut aug_rng)?)
                            }
                            (Augment::FeatMatch, Some(head)) => {
                                let mask = dropout_mask(
                                    &mut aug_rng,
                                    (head.heads(), unlabelled_shape.0, z_l.dim(0)?),
                                    FEATMATCH_DROPOUT,
                                    device,
                                )?;
                                Some(head.forward(&z_u, &z_l, Some(&mask))?)
                            }
                            (Augment::FeatMatch, None) => {
                                return Err(invalid(
                                    "featmatch attention head",
                                    "a head for the FeatMatch method",
                                    "none",
                                ));
                            }
                        };
                        // Without augmentation the classifier's output on z_u is reused: the
                        // same values the pseudo-labels came from, now with their gradient.
                        let logits_aug = match z_aug {
                            None => logits_u,
                            Some(z_aug) => {
                                if z_aug.dims() != [unlabelled_shape.0, unlabelled_shape.1] {
                                    return Err(Error::Shape {
                                        what: "augmented unlabelled features",
                                        expected: unlabelled_shape.0 * unlabelled_shape.1,
                                        found: z_aug.elem_count(),
                                    });
                                }
                                forward(&z_aug, &classifier)?
                            }
                        };
                        let log_probs = candle_nn::ops::log_softmax(&logits_aug, D::Minus1)?;
                        let nll = log_probs
                            .gather(&pseudo.unsqueeze(1)?, 1)?
                            .squeeze(1)?
                            .neg()?;
                        Some(((nll * confident)?.sum_all()? / unlabelled_shape.0 as f64)?)
                    } else {
                        None
                    };
                    if in_first {
                        trend.first = trend.first.plus(counts);
                    }
                    if in_last {
                        trend.last = trend.last.plus(counts);
                    }
                    term
                }
            };
            if let Some(term) = term {
                loss = (loss + (term * config.consistency_weight)?)?;
            }
        }
        let mut grads = loss.backward()?;
        zero_missing_grads(&mut grads, &head_vars)?;
        adam.step(&grads)?;
        for (average, param) in ema.iter_mut().zip(&classifier) {
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
    Ok(TrialOutcome {
        accuracy: accuracy(&predictions, test.labels()),
        pseudo_labels: matches!(consistency, Some(Consistency::Confident(_))).then_some(trend),
    })
}

/// Gives every var of `vars` without a gradient in `grads` a zero one, as torch's backward does
/// for parameters reached only through an empty selection: Adam then still applies their weight
/// decay and moment decay.
fn zero_missing_grads(grads: &mut GradStore, vars: &[Var]) -> Result<()> {
    for var in vars {
        if grads.get(var.as_tensor()).is_none() {
            grads.insert(var.as_tensor(), var.as_tensor().zeros_like()?);
        }
    }
    Ok(())
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
    /// The trial's learned attention head over the step's labelled batch.
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

/// Softmax over the last dimension that backpropagates (candle-nn's `softmax_last_dim` records no
/// gradient): `exp(x − max) / Σ exp(x − max)`, the max detached since softmax ignores the shift.
pub(super) fn softmax_rows(x: &Tensor) -> Result<Tensor> {
    let shifted = x.broadcast_sub(&x.max_keepdim(D::Minus1)?.detach())?;
    let num = shifted.exp()?;
    Ok(num.broadcast_div(&num.sum_keepdim(D::Minus1)?)?)
}

/// The classifier on `x` with the trainable `params` `[w1, b1, w2, b2]`.
fn forward(x: &Tensor, params: &[Var]) -> Result<Tensor> {
    let tensors: Vec<Tensor> = params.iter().map(|p| p.as_tensor().clone()).collect();
    forward_tensors(x, &tensors)
}

/// `LeakyReLU(x W1ᵀ + b1) W2ᵀ + b2` with `params = [w1, b1, w2, b2]`.
pub(super) fn forward_tensors(x: &Tensor, params: &[Tensor]) -> Result<Tensor> {
    let [w1, b1, w2, b2] = params else {
        return Err(invalid("classifier parameters", "4 tensors", params.len()));
    };
    let hidden = x.matmul(&w1.t()?)?.broadcast_add(b1)?;
    let hidden = candle_nn::ops::leaky_relu(&hidden, LEAKY_SLOPE)?;
    Ok(hidden.matmul(&w2.t()?)?.broadcast_add(b2)?)
}
