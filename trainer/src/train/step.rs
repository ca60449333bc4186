//! One training step's objective (docs/method.md §5–6): the two views through the backbone, then either
//! SimCLR's NT-Xent, ManifoldCLR's contrastive + manifold-matching + KL + location terms, or the
//! feature-augmentation ablations' contrastive term alone (see [`crate::feature_aug`]).

use candle_core::{D, DType, Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::config::{Config, KlWarmup as KlWarmupConfig, Method};
use crate::feature_aug::{self, Layout};
use crate::losses::{
    KlWarmup, KlWeightSchedule, encoder_location_l2, laplace_kl, lie_infonce_mse,
    manifold_matching, nt_xent_cosine,
};
use crate::model::ssl::{ManifoldParts, SslModel};
use crate::sampling::{NoiseSource, NoiseState, best_of_j, prior_warmup, reparameterize};

/// The loss terms of one step, as host numbers (the weighted total is what was minimised).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LossTerms {
    /// The contrastive term (Lie-InfoNCE, or NT-Xent with a head / for SimCLR).
    pub contrastive: f64,
    /// Manifold matching mean (T(c)z0 − sg z1)².
    pub manifold: f64,
    /// KL(q‖p), batch mean.
    pub kl: f64,
    /// The KL weight used this step (after warm-up).
    pub kl_weight: f64,
    /// Encoder-location L2 mean_b Σ_m μ².
    pub shift: f64,
    /// Weighted total.
    pub total: f64,
}

impl LossTerms {
    /// The names of the terms in [`StepOutput::terms`], in order.
    pub const NAMES: [&'static str; 5] = ["contrastive", "manifold", "kl", "shift", "total"];

    /// The terms from their values in [`Self::NAMES`] order and the step's KL weight; `None`
    /// if `values` does not hold exactly five.
    pub fn from_values(values: &[f64], kl_weight: f64) -> Option<Self> {
        let &[contrastive, manifold, kl, shift, total] = values else {
            return None;
        };
        Some(Self {
            contrastive,
            manifold,
            kl,
            kl_weight,
            shift,
            total,
        })
    }

    /// The first term that is NaN or infinite, by name.
    pub fn first_non_finite(&self) -> Option<(&'static str, f64)> {
        Self::NAMES
            .into_iter()
            .zip([
                self.contrastive,
                self.manifold,
                self.kl,
                self.shift,
                self.total,
            ])
            .find(|(_, v)| !v.is_finite())
    }
}

/// What a step leaves for the diagnostics of docs/method.md §11 (detached).
#[derive(Debug, Clone)]
pub struct StepTensors {
    /// Backbone features of the first view (B, d).
    pub z0: Tensor,
    /// Backbone features of the second view (B, d).
    pub z1: Tensor,
    /// ManifoldCLR only: the inferred coefficients c (B, M), T(c) z0, the encoder's and the
    /// warmed prior's (loc, logscale).
    pub manifold: Option<ManifoldTensors>,
    /// The augmented features z_aug (B, d) that the contrastive term moved towards z1:
    /// ManifoldCLR's T(c_aug) z0, or the feature-augmentation ablations' noisy / mixed z0;
    /// `None` for SimCLR.
    pub z_aug: Option<Tensor>,
}

/// ManifoldCLR's per-step tensors for diagnostics.
#[derive(Debug, Clone)]
pub struct ManifoldTensors {
    /// Coefficients used for manifold matching (B, M).
    pub c: Tensor,
    /// T(c) z0 (B, d).
    pub z_hat: Tensor,
    /// Encoder location and log-scale (B, M).
    pub encoder: (Tensor, Tensor),
    /// Warmed prior location and log-scale (B, M).
    pub prior: (Tensor, Tensor),
    /// Prior sample used for the feature augmentation (B, M).
    pub c_aug: Tensor,
}

/// The loss of one step with its graph, its terms and its tensors. Nothing in it has been read
/// back from the device: the training loop reads the terms only when it logs.
pub struct StepOutput {
    /// Scalar to differentiate.
    pub loss: Tensor,
    /// The terms in [`LossTerms::NAMES`] order, a detached (5,) f64 tensor on the device.
    pub terms: Tensor,
    /// The KL weight used this step (after warm-up; 0 for SimCLR).
    pub kl_weight: f64,
    /// Detached tensors for diagnostics.
    pub tensors: StepTensors,
}

/// The stateful parts of the objective: the noise stream (coefficient noise, or the ablations'
/// feature noise and mixup weights) and the KL warm-up counter.
/// Both are saved in checkpoints so a resumed run draws the same noise and weights.
pub struct Objective {
    method: Method,
    temperature: f64,
    manifold_weight: f64,
    shift_weight: f64,
    threshold: f64,
    best_of_j: usize,
    best_of_j_start: u64,
    prior_warmup_iters: u64,
    feature_noise_scale: f64,
    feature_layout: Layout,
    noise: NoiseSource,
    kl: KlWeightSchedule,
}

/// The resumable state of an [`Objective`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectiveState {
    /// Position of the noise stream.
    pub noise: NoiseState,
    /// KL weight calls so far.
    pub kl_calls: u64,
}

impl Objective {
    /// The objective of `config`, with fresh state seeded by the run seed.
    pub fn new(config: &Config) -> Self {
        Self::with_state(config, None)
    }

    /// The objective of `config`, continuing from `state` when given.
    pub fn with_state(config: &Config, state: Option<&ObjectiveState>) -> Self {
        let mode = match config.loss.kl_warmup {
            KlWarmupConfig::None => KlWarmup::None,
            KlWarmupConfig::Exponential => KlWarmup::Exponential { iters: 5000 },
        };
        let base = f64::from(config.loss.kl_weight);
        let (noise, kl) = match state {
            Some(s) => (
                NoiseSource::from_state(s.noise),
                KlWeightSchedule::resume(base, mode, s.kl_calls),
            ),
            None => (
                NoiseSource::new(config.run.seed ^ NOISE_STREAM),
                KlWeightSchedule::new(base, mode),
            ),
        };
        Self {
            method: config.method.kind,
            temperature: f64::from(config.loss.temperature),
            manifold_weight: f64::from(config.loss.manifold_weight),
            shift_weight: f64::from(config.loss.shift_weight),
            threshold: f64::from(config.method.threshold),
            best_of_j: config.method.best_of_j,
            best_of_j_start: config.method.best_of_j_start,
            prior_warmup_iters: config.method.prior_warmup_iters,
            feature_noise_scale: f64::from(config.method.feature_noise_scale),
            feature_layout: Layout::from_flag(config.method.feature_aug_per_dimension),
            noise,
            kl,
        }
    }

    /// State to save in a checkpoint.
    pub fn state(&self) -> ObjectiveState {
        ObjectiveState {
            noise: self.noise.state(),
            kl_calls: self.kl.calls(),
        }
    }

    /// Forward pass and loss of one batch of view pairs `x0`, `x1` (B, 3, H, W) at iteration `iter`.
    pub fn step(
        &mut self,
        model: &SslModel,
        x0: &Tensor,
        x1: &Tensor,
        iter: u64,
    ) -> Result<StepOutput> {
        // Each view passes through the backbone separately: BatchNorm statistics per view.
        let z0 = model.features(x0, true)?;
        let z1 = model.features(x1, true)?;
        self.head_step(model, &z0, &z1, iter)
    }

    /// Everything of [`Self::step`] after the backbone: the objective of backbone features `z0`,
    /// `z1` (B, d) at iteration `iter`. Gradients reach `z0` and `z1` as they would the backbone.
    pub fn head_step(
        &mut self,
        model: &SslModel,
        z0: &Tensor,
        z1: &Tensor,
        iter: u64,
    ) -> Result<StepOutput> {
        let (z0, z1) = (z0.clone(), z1.clone());
        match (&self.method, &model.manifold) {
            (Method::Simclr, _) => {
                let (h0, h1) = model.project_pair(&z0, &z1, true)?;
                let loss = nt_xent_cosine(&h0, &h1, self.temperature)?;
                let contrastive = term(&loss)?;
                let zero = contrastive.zeros_like()?;
                let terms = Tensor::stack(&[&contrastive, &zero, &zero, &zero, &contrastive], 0)?;
                let tensors = StepTensors {
                    z0: z0.detach(),
                    z1: z1.detach(),
                    manifold: None,
                    z_aug: None,
                };
                Ok(StepOutput {
                    loss,
                    terms,
                    kl_weight: 0.0,
                    tensors,
                })
            }
            (Method::Manifoldclr, Some(parts)) => self.manifold_step(model, parts, &z0, &z1, iter),
            (Method::Manifoldclr, None) => {
                candle_core::bail!("ManifoldCLR config but the model has no operators")
            }
            (Method::SimclrGaussian | Method::SimclrMixup, _) => {
                self.feature_aug_step(model, &z0, &z1)
            }
        }
    }

    /// The feature-augmentation ablations (reference `config/simclr_*_{gaussaug,mixup}.yaml`):
    /// z_aug from z0 by Gaussian noise or mixup with z1 (see [`crate::feature_aug`]), then the
    /// reference's only active term, `lie_nt_xent_loss(z_aug, z1, z0, mse=True, τ)` with weight 1
    /// (`ntxent_loss_active: false`, `ntxent_lie_z0_neg: true`, no head). The noise or λ is drawn
    /// from the objective's seeded stream, so it resumes with the checkpoint.
    fn feature_aug_step(
        &mut self,
        model: &SslModel,
        z0: &Tensor,
        z1: &Tensor,
    ) -> Result<StepOutput> {
        if model.projection.is_some() {
            candle_core::bail!(
                "the feature-augmentation ablations contrast backbone features; the model has a \
                 projection head (set model.projection_head = false)"
            );
        }
        let device = z0.device().clone();
        let (b, d) = z0.dims2()?;
        let z_aug = match self.method {
            Method::SimclrGaussian => {
                let shape = self.feature_layout.draw_shape(b, d, true)?;
                let eps = self.noise.normal(shape, &device)?;
                feature_aug::gaussian_noise(
                    z0,
                    z1,
                    &eps,
                    self.feature_noise_scale,
                    self.feature_layout,
                )?
            }
            Method::SimclrMixup => {
                let shape = self.feature_layout.draw_shape(b, d, false)?;
                // U[0, 1) on the stream's 2⁻²⁴ grid (exact in f32).
                let lambda = self.noise.uniform(shape, &device)?.affine(1.0, 0.5)?;
                feature_aug::mixup(z0, z1, &lambda, self.feature_layout)?
            }
            other => candle_core::bail!("{} is not a feature-augmentation method", other.name()),
        };
        let loss = lie_infonce_mse(&z_aug, z1, z0, self.temperature)?;
        let contrastive = term(&loss)?;
        let zero = contrastive.zeros_like()?;
        let terms = Tensor::stack(&[&contrastive, &zero, &zero, &zero, &contrastive], 0)?;
        Ok(StepOutput {
            loss,
            terms,
            kl_weight: 0.0,
            tensors: StepTensors {
                z0: z0.detach(),
                z1: z1.detach(),
                manifold: None,
                z_aug: Some(z_aug.detach()),
            },
        })
    }

    fn manifold_step(
        &mut self,
        model: &SslModel,
        parts: &ManifoldParts,
        z0: &Tensor,
        z1: &Tensor,
        iter: u64,
    ) -> Result<StepOutput> {
        let (z0, z1) = (z0.clone(), z1.clone());
        let device = z0.device().clone();
        let (b, m) = (z0.dim(0)?, parts.operators.num_operators());
        // q(c | sg z0, sg z1) and the warmed prior p(c | sg z0).
        let q = parts.encoder.forward(&z0, &z1)?;
        let p_raw = parts.prior.forward(&z0)?;
        let p = prior_warmup(&p_raw.logscale, &p_raw.loc, iter, self.prior_warmup_iters)?;

        // Coefficients carrying z0 to z1: best-of-J once it is on, else one draw.
        let c = if self.best_of_j > 1 && iter >= self.best_of_j_start {
            let noise = self.noise.uniform((self.best_of_j, b, m), &device)?;
            let (z0d, psi) = (z0.detach(), parts.operators.psi().detach());
            let ops = crate::model::operators::TransportOperator::from_tensor(&psi)?;
            best_of_j(
                &q.loc,
                &q.logscale,
                &noise,
                &z1.detach(),
                self.threshold,
                0.0,
                |cj| ops.transport(cj, &z0d),
            )?
            .c
        } else {
            let noise = self.noise.uniform((b, m), &device)?;
            reparameterize(&q.loc, &q.logscale, &noise, self.threshold)?
        };
        let z_hat = parts.operators.transport(&c, &z0)?;
        let manifold = manifold_matching(&z_hat, &z1)?;
        let kl = laplace_kl(&q.loc, &q.logscale, &p.loc, &p.logscale)?;
        let shift = encoder_location_l2(&q.loc)?;
        let kl_weight = self.kl.next(iter);

        // Feature augmentation: a prior sample moves z0 (neither z0 nor Ψ detached).
        let noise = self.noise.uniform((b, m), &device)?;
        let c_aug = reparameterize(&p.loc, &p.logscale, &noise, self.threshold)?;
        let z_aug = parts.operators.transport(&c_aug, &z0)?;
        let contrastive = if model.projection.is_some() {
            // As the reference's head variant (`src/model/loss.py`): z1's projection comes from
            // the head's pass over cat[z0; z1], z_aug's from a pass of its own.
            let (_, h1) = model.project_pair(&z0, &z1, true)?;
            nt_xent_cosine(&model.project(&z_aug, true)?, &h1, self.temperature)?
        } else {
            lie_infonce_mse(&z_aug, &z1, &z0, self.temperature)?
        };

        let mut loss = (&contrastive + manifold.affine(self.manifold_weight, 0.0)?)?;
        loss = (loss + kl.affine(kl_weight, 0.0)?)?;
        if self.shift_weight != 0.0 {
            loss = (loss + shift.affine(self.shift_weight, 0.0)?)?;
        }
        let terms = Tensor::stack(
            &[
                term(&contrastive)?,
                term(&manifold)?,
                term(&kl)?,
                term(&shift)?,
                term(&loss)?,
            ],
            0,
        )?;
        let tensors = StepTensors {
            z0: z0.detach(),
            z1: z1.detach(),
            manifold: Some(ManifoldTensors {
                c: c.detach(),
                z_hat: z_hat.detach(),
                encoder: (q.loc.detach(), q.logscale.detach()),
                prior: (p.loc.detach(), p.logscale.detach()),
                c_aug: c_aug.detach(),
            }),
            z_aug: Some(z_aug.detach()),
        };
        Ok(StepOutput {
            loss,
            terms,
            kl_weight,
            tensors,
        })
    }
}

/// Offset of the objective's noise stream (coefficient noise, feature noise and mixup weights)
/// from the run seed: the stream is `NoiseSource::new(seed ^ NOISE_STREAM)`, kept apart from Ψ's
/// init stream.
pub const NOISE_STREAM: u64 = 0x004e_4f49_5345;

impl StepOutput {
    /// Reads the terms back to the host (one transfer): for a test or a one-off step; the
    /// training loop reads many steps' terms at once instead.
    ///
    /// # Errors
    /// If the transfer fails.
    pub fn read_terms(&self) -> Result<LossTerms> {
        let values = crate::readback::to_f64s(&self.terms)?;
        LossTerms::from_values(&values, self.kl_weight).ok_or_else(|| {
            candle_core::Error::Msg(format!("expected 5 loss terms, found {}", values.len()))
        })
    }
}

/// A scalar loss as a detached f64 scalar tensor on its device (the mean, should it have more
/// than one element).
fn term(t: &Tensor) -> Result<Tensor> {
    t.detach()
        .to_dtype(DType::F64)?
        .flatten_all()?
        .mean(D::Minus1)
}
