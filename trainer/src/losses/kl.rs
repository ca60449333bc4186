//! KL(q‖p) between the encoder's and the prior's Laplace distributions, and the schedules of its
//! weight (docs/method.md §6, fixtures README §b and §f `kl_weight_warmup`).

use candle_core::{D, Result, Tensor, bail};

use super::{ensure_same_shape, matrix_dims};

/// Lower bound on ln b_q used only for the 1/b_q factor inside exp(−Δ/b_q). The encoder's
/// log-scale can reach −104.6, where b_q underflows to 0 in f32 (quirk 5) and Δ/b_q, its product
/// with a zero upstream gradient, turns into NaN. Below −80 (b_q < 2e-35) the term
/// (b_q/b_p)·exp(−Δ/b_q) is 0 in f32 for any Δ > 0 either way, and b_q/b_p for Δ = 0, so the
/// value is unchanged and the gradient stays finite.
const MIN_INV_SCALE_LOGSCALE: f64 = -80.0;

/// Per-sample Laplace KL, `Σ_m KL(Laplace(μ_q, b_q) ‖ Laplace(μ_p, b_p))`, with the closed form
/// `ln b_p − ln b_q + Δ/b_p + (b_q/b_p)·exp(−Δ/b_q) − 1`, Δ = |μ_q − μ_p|, b = exp(logscale).
///
/// All four inputs are (B, M) and receive gradients (the encoder and the prior both train on it).
/// Δ is taken as `(μ_q − μ_p)·sg[sign(μ_q − μ_p)]`, whose gradient at Δ = 0 is 0 as in torch
/// (candle's `abs` would give ±1; the derivative of the KL in Δ vanishes there anyway, so only
/// rounding-level values are at stake). The second term is evaluated as one exponential,
/// `exp(ln b_q − ln b_p − Δ/b_q)`. Returns (B,).
pub fn laplace_kl_per_sample(
    mu_q: &Tensor,
    logscale_q: &Tensor,
    mu_p: &Tensor,
    logscale_p: &Tensor,
) -> Result<Tensor> {
    matrix_dims("mu_q", mu_q)?;
    ensure_same_shape("logscale_q", logscale_q, "mu_q", mu_q)?;
    ensure_same_shape("mu_p", mu_p, "mu_q", mu_q)?;
    ensure_same_shape("logscale_p", logscale_p, "mu_q", mu_q)?;

    let diff = (mu_q - mu_p)?;
    let delta = (&diff * diff.sign()?.detach())?;
    let log_ratio = (logscale_q - logscale_p)?; // ln(b_q / b_p)
    let over_bp = (&delta * logscale_p.neg()?.exp()?)?; // Δ / b_p
    let inv_bq = logscale_q.maximum(MIN_INV_SCALE_LOGSCALE)?.neg()?.exp()?;
    let tail = (&log_ratio - (&delta * inv_bq)?)?.exp()?; // (b_q/b_p)·exp(−Δ/b_q)
    let kl = ((over_bp + tail)? - log_ratio)?.affine(1.0, -1.0)?;
    kl.sum(D::Minus1)
}

/// The KL term as the loss uses it: [`laplace_kl_per_sample`] averaged over the batch. A scalar.
pub fn laplace_kl(
    mu_q: &Tensor,
    logscale_q: &Tensor,
    mu_p: &Tensor,
    logscale_p: &Tensor,
) -> Result<Tensor> {
    let per_sample = laplace_kl_per_sample(mu_q, logscale_q, mu_p, logscale_p)?;
    if per_sample.elem_count() == 0 {
        bail!("`mu_q` has no rows");
    }
    per_sample.mean_all()
}

/// Starting multiplier of the exponential KL warm-up.
pub const KL_EXPONENTIAL_START: f64 = 5e-3;
/// Length in loss calls of the exponential KL warm-up in the reference configs.
pub const KL_EXPONENTIAL_ITERS: u64 = 5000;
/// Per-call increment of the linear KL warm-up (reaches 1 after 20 000 calls).
pub const KL_LINEAR_STEP: f64 = 5e-5;
/// Length in loss calls of the annealed KL schedule.
pub const KL_ANNEAL_ITERS: u64 = 100_000;
/// Final multiplier of the annealed KL schedule.
pub const KL_ANNEAL_FLOOR: f64 = 1e-3;
/// Period in iterations of the cyclic KL schedule.
pub const KL_CYCLE_PERIOD: u64 = 50_000;
/// Position within a period where the cyclic schedule starts falling linearly from 1 to 0.
pub const KL_CYCLE_RAMP_START: u64 = 40_000;

/// Exponential KL warm-up multiplier `(5e-3)^(1 − min(k, W)/W)` for the `call_count`-th call
/// (1-based; the reference counts loss calls, not iterations, so the first call already gives
/// 5.0053e-3, quirk 8). `warmup` = W; W = 0 means no warm-up (multiplier 1).
pub fn kl_weight_exponential(call_count: u64, warmup: u64) -> f64 {
    if warmup == 0 {
        return 1.0;
    }
    let progress = call_count.min(warmup) as f64 / warmup as f64;
    KL_EXPONENTIAL_START.powf(1.0 - progress)
}

/// How the KL weight is warmed up (the reference's `kl_weight_warmup` modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KlWarmup {
    /// Constant multiplier 1 (head and thresholded configs).
    None,
    /// `(5e-3)^(1 − min(k, iters)/iters)` by call count k (no-head configs, `iters` = 5000).
    Exponential {
        /// Warm-up length W in loss calls.
        iters: u64,
    },
    /// `min(k · 5e-5, 1)`, accumulated by repeated f64 addition exactly as the reference does.
    Linear,
    /// `(100000 − k' + 0.001·k') / 100000` with k' = min(k, 100000): a linear fall to 1e-3.
    Annealed,
    /// By training iteration t, not call count: 1, except where t mod 50000 ≥ 40000, where it
    /// falls linearly from 1 towards 0 over the last 10000 iterations of the period.
    Cyclic,
}

/// The stateful KL weight: call [`KlWeightSchedule::next`] once per training iteration in which
/// the KL loss is on, as the reference's `get_kl_weight` is called. The call count is the state a
/// checkpoint must save ([`KlWeightSchedule::calls`]) and restore ([`KlWeightSchedule::resume`]).
#[derive(Debug, Clone, PartialEq)]
pub struct KlWeightSchedule {
    base: f64,
    mode: KlWarmup,
    calls: u64,
    linear: f64,
}

impl KlWeightSchedule {
    /// A fresh schedule for the configured KL weight `base` (e.g. 1e-5) and warm-up `mode`.
    pub fn new(base: f64, mode: KlWarmup) -> Self {
        Self {
            base,
            mode,
            calls: 0,
            linear: 0.0,
        }
    }

    /// The schedule as it was after `calls` calls (for resuming from a checkpoint). The linear
    /// mode's accumulator is replayed addition by addition, so the values stay bit-identical.
    pub fn resume(base: f64, mode: KlWarmup, calls: u64) -> Self {
        let mut schedule = Self::new(base, mode);
        schedule.calls = calls;
        for _ in 0..calls {
            if schedule.linear >= 1.0 {
                break;
            }
            schedule.linear += KL_LINEAR_STEP;
        }
        schedule
    }

    /// Number of calls so far.
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// The configured weight the multiplier scales.
    pub fn base(&self) -> f64 {
        self.base
    }

    /// Counts one call and returns the KL weight `base · multiplier` for it. `curr_iter` is the
    /// training iteration; only the cyclic mode reads it.
    pub fn next(&mut self, curr_iter: u64) -> f64 {
        self.calls = self.calls.saturating_add(1);
        if self.linear < 1.0 {
            self.linear += KL_LINEAR_STEP;
        }
        let k = self.calls;
        let multiplier = match self.mode {
            KlWarmup::None => 1.0,
            KlWarmup::Exponential { iters } => kl_weight_exponential(k, iters),
            KlWarmup::Linear => self.linear.min(1.0),
            KlWarmup::Annealed => {
                let total = KL_ANNEAL_ITERS as f64;
                let k = k.min(KL_ANNEAL_ITERS) as f64;
                (total - k + KL_ANNEAL_FLOOR * k) / total
            }
            KlWarmup::Cyclic => {
                let phase = curr_iter % KL_CYCLE_PERIOD;
                if phase >= KL_CYCLE_RAMP_START {
                    let ramp = (KL_CYCLE_PERIOD - KL_CYCLE_RAMP_START) as f64;
                    1.0 - (phase - KL_CYCLE_RAMP_START) as f64 / ramp
                } else {
                    1.0
                }
            }
        };
        self.base * multiplier
    }
}
