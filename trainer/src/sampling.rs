//! Coefficient sampling on candle tensors (docs/method.md §5, fixtures README §c, §e, §g): the Laplace
//! reparameterisation with the straight-through soft threshold, seeded noise, the prior's warm-up
//! and best-of-J selection (the paper's Algorithm 1).
//!
//! The scalar reference of the same maths is `mclr_shared::operators::{laplace_deviation,
//! soft_threshold, warm_up_prior}`; its constants are reused here so that both sides agree.

use candle_core::{D, Device, Result, Shape, Tensor, bail};
use mclr_shared::operators::{NOISE_LOG_CLAMP, SCALE_PRIOR_LN, SHIFT_PRIOR, prior_warmup_weight};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// A batch of Laplace distributions over coefficients as tensors: locations μ and log-scales
/// ln b (natural log of the scale b, density ∝ exp(−|x − μ|/b)), both of the same shape.
#[derive(Debug, Clone)]
pub struct Laplace {
    /// Locations μ.
    pub loc: Tensor,
    /// Log-scales ln b.
    pub logscale: Tensor,
}

/// The Laplace deviation `ε = −b·sign(u)·ln(clamp(1 − 2|u|, 1e-6, 1e6))`, b = exp(`logscale`), for
/// centred uniform noise u ∈ [−½, ½) of the same shape. Differentiable in `logscale`
/// (dε/d ln b = ε); the noise is treated as a constant. An underflowed scale (b = 0 in f32,
/// quirk 5) gives ε = 0.
pub fn laplace_deviation(logscale: &Tensor, noise: &Tensor) -> Result<Tensor> {
    if logscale.dims() != noise.dims() {
        bail!(
            "`noise` has shape {:?} but `logscale` has shape {:?}; they must match",
            noise.dims(),
            logscale.dims()
        );
    }
    let u = noise.detach();
    let (lo, hi) = NOISE_LOG_CLAMP;
    // sign(u)·(−ln(clamp(1 − 2|u|))): the deviation of a unit-scale Laplace, a constant.
    let unit = u
        .abs()?
        .affine(-2.0, 1.0)?
        .clamp(f64::from(lo), f64::from(hi))?
        .log()?
        .neg()?
        .mul(&u.sign()?)?;
    logscale.exp()?.mul(&unit)
}

/// Laplace reparameterisation with the soft threshold ζ and the straight-through estimator
/// (docs/method.md §5, quirk 4).
///
/// With ε from [`laplace_deviation`], the forward value is `μ + sign(ε)(|ε| − ζ)` where |ε| > ζ
/// and exactly 0 elsewhere (also where ε = 0 with ζ = 0): the threshold acts on the deviation, as
/// in the released code. The backward pass is that of s = μ + ε everywhere, zeroed entries
/// included: dc/dμ = 1 and dc/d ln b = ε. It is built as `c = sg[c_thr] + (s − sg[s])`, whose
/// forward value is c_thr exactly (so the zero pattern is exact).
///
/// `mu` and `logscale` have the same shape, e.g. (B, M); `noise` has that shape or extra leading
/// axes, e.g. (J, B, M), over which μ and ln b broadcast (their gradients are summed over them).
/// `zeta` ≥ 0 (0.01 in thresholded configs, 0 elsewhere). Returns a tensor of `noise`'s shape.
pub fn reparameterize(mu: &Tensor, logscale: &Tensor, noise: &Tensor, zeta: f64) -> Result<Tensor> {
    if mu.dims() != logscale.dims() {
        bail!(
            "`logscale` has shape {:?} but `mu` has shape {:?}; they must match",
            logscale.dims(),
            mu.dims()
        );
    }
    if !noise.dims().ends_with(mu.dims()) {
        bail!(
            "`noise` has shape {:?}, which does not end with `mu`'s shape {:?}",
            noise.dims(),
            mu.dims()
        );
    }
    if !(zeta.is_finite() && zeta >= 0.0) {
        bail!("`zeta` must be finite and >= 0, got {zeta}");
    }
    let mu = mu.broadcast_as(noise.shape())?;
    let logscale = logscale.broadcast_as(noise.shape())?;
    let eps = laplace_deviation(&logscale, noise)?;
    let s = (&mu + &eps)?;

    // Forward value, without gradient.
    let eps = eps.detach();
    let shrunk = eps.sign()?.mul(&eps.abs()?.affine(1.0, -zeta)?.relu()?)?;
    let thresholded = shrunk
        .eq(0.0)?
        .where_cond(&shrunk.zeros_like()?, &(mu.detach() + &shrunk)?)?;
    thresholded + (&s - s.detach())?
}

/// The state of a [`NoiseSource`]: what a checkpoint saves to resume the exact noise stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NoiseState {
    /// ChaCha8 key.
    pub seed: [u8; 32],
    /// ChaCha8 stream number.
    pub stream: u64,
    /// Position in the stream, in 32-bit words.
    pub word_pos: u128,
}

/// Seeded source of the centred uniform noise u ∈ [−½, ½) that [`reparameterize`] consumes.
///
/// The noise is drawn on the host from a ChaCha8 stream and uploaded, rather than with
/// `Tensor::rand` on the device: a device RNG differs between CPU and CUDA and its state cannot be
/// saved, whereas this stream is identical on every device and platform and resumable from
/// [`NoiseSource::state`]. The cost is one host draw and one upload per call: at B = 512, M = 128
/// and J = 20 draws that is 1.3 M floats (5 MiB), a few milliseconds, small beside the J·B·K
/// matrix exponentials that best-of-J then computes. Values match
/// `mclr_shared::operators::LaplaceSampler` for the same seed (24-bit grid, `U[0,1) − ½`).
#[derive(Debug, Clone)]
pub struct NoiseSource {
    rng: ChaCha8Rng,
}

impl NoiseSource {
    /// A source whose stream is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// A source positioned exactly where `state` was taken.
    pub fn from_state(state: NoiseState) -> Self {
        let mut rng = ChaCha8Rng::from_seed(state.seed);
        rng.set_stream(state.stream);
        rng.set_word_pos(state.word_pos);
        Self { rng }
    }

    /// The current state, for checkpoints.
    pub fn state(&self) -> NoiseState {
        NoiseState {
            seed: self.rng.get_seed(),
            stream: self.rng.get_stream(),
            word_pos: self.rng.get_word_pos(),
        }
    }

    /// One centred uniform value on the f32 grid of 2⁻²⁴, as `U[0,1) − ½`.
    pub fn next_u(&mut self) -> f32 {
        (self.rng.next_u32() >> 8) as f32 * (1.0 / 16_777_216.0) - 0.5
    }

    /// A tensor of centred uniform noise of `shape` (e.g. (B, M) or (J, B, M)), f32, on `device`,
    /// filled in row-major order.
    pub fn uniform<S: Into<Shape>>(&mut self, shape: S, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        let values: Vec<f32> = (0..shape.elem_count()).map(|_| self.next_u()).collect();
        Tensor::from_vec(values, shape, device)
    }

    /// A tensor of standard normal noise N(0, 1) of `shape`, f32, on `device`, filled in
    /// row-major order. Each pair of values comes from two draws of [`Self::next_u`] by the
    /// Box–Muller transform (u₁ = ½ − u ∈ (0, 1], u₂ = u + ½ ∈ [0, 1): `√(−2 ln u₁)·cos 2πu₂`,
    /// then `√(−2 ln u₁)·sin 2πu₂`); an odd count drops the last sine. The values are computed
    /// in f64 on the host, so they are the same on every device.
    pub fn normal<S: Into<Shape>>(&mut self, shape: S, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        let n = shape.elem_count();
        let mut values: Vec<f32> = Vec::with_capacity(n + 1);
        while values.len() < n {
            let u1 = 0.5 - f64::from(self.next_u());
            let u2 = f64::from(self.next_u()) + 0.5;
            let radius = (-2.0 * u1.ln()).sqrt();
            let angle = std::f64::consts::TAU * u2;
            values.push((radius * angle.cos()) as f32);
            values.push((radius * angle.sin()) as f32);
        }
        values.truncate(n);
        Tensor::from_vec(values, shape, device)
    }
}

/// The prior's warm-up at training iteration `iter` (docs/method.md §4): with w = min(iter / W, 1),
/// `ln b ← w·ln b_p + (1−w)·ln 0.01` and `μ ← w·μ_p + (1−w)·0.05·sign(w·μ_p)`, the sign detached.
/// At iteration 0 the location is exactly 0 (quirk 6); from W on the learned prior is returned
/// unchanged in value. `warmup_iters` = W (5000 without a head, 10000 with one; 0 = no warm-up).
/// Gradients flow to `logscale_p` and `mu_p` scaled by w.
pub fn prior_warmup(
    logscale_p: &Tensor,
    mu_p: &Tensor,
    iter: u64,
    warmup_iters: u64,
) -> Result<Laplace> {
    if logscale_p.dims() != mu_p.dims() {
        bail!(
            "`mu_p` has shape {:?} but `logscale_p` has shape {:?}; they must match",
            mu_p.dims(),
            logscale_p.dims()
        );
    }
    let w = f64::from(prior_warmup_weight(iter, warmup_iters));
    let logscale = scale_by(logscale_p, w)?.affine(1.0, (1.0 - w) * f64::from(SCALE_PRIOR_LN))?;
    let push = mu_p
        .detach()
        .affine(w, 0.0)?
        .sign()?
        .affine((1.0 - w) * f64::from(SHIFT_PRIOR), 0.0)?;
    let loc = (scale_by(mu_p, w)? + push)?;
    Ok(Laplace { loc, logscale })
}

/// `w · t` as a multiplication by a 0-d tensor rather than `affine`: candle prunes the backward
/// pass of `affine(0, _)`, which would leave the prior with no gradient at all at iteration 0,
/// where torch gives a zero gradient (and AdamW still applies its decay and step).
fn scale_by(t: &Tensor, w: f64) -> Result<Tensor> {
    // w is an f32 value (from `prior_warmup_weight`), so the f32 scalar is exact.
    t.broadcast_mul(&Tensor::new(w as f32, t.device())?.to_dtype(t.dtype())?)
}

/// What [`best_of_j`] chose, and the per-draw quantities it chose from (for metrics and tests).
#[derive(Debug, Clone)]
pub struct BestOfJ {
    /// The selected coefficients (B, M), recomputed with gradient to μ and ln b.
    pub c: Tensor,
    /// The selected draw j for each sample, (B,) u32.
    pub index: Tensor,
    /// The selected noise `noise[index_b, b]`, (B, M).
    pub noise: Tensor,
    /// Coefficients of every draw, (J, B, M), without gradient.
    pub c_per_draw: Tensor,
    /// Matching error `mean_d (x1_hat − x1)²` of every draw, (J, B).
    pub match_error: Tensor,
    /// Selection score `match_error + l1_penalty · Σ_m |c|`, (J, B).
    pub score: Tensor,
}

/// Best-of-J coefficient selection (docs/method.md §5, the paper's Algorithm 1; the reference's
/// `max_elbo_sample` followed by `reparameterize`).
///
/// For J noise draws `noise` (J, B, M) the coefficients of every draw are computed without
/// gradient from `mu`, `logscale` (B, M) and the threshold `zeta`; `transport` maps them to
/// `x1_hat` = T(c^j) x0 (J, B, d); each draw is scored by `mean_d (x1_hat − x1)² + l1_penalty ·
/// Σ_m |c|` (`x1` is (B, d)); each sample keeps its lowest-scoring draw; and the kept noise is
/// reparameterised again with gradient. The KL term does not enter the choice.
///
/// `transport` is called once, with a (J, B, M) tensor. It should apply the operators with Ψ and
/// x0 detached (nothing here backpropagates into it: its output is detached). Keeping it a
/// closure leaves this module independent of the operator implementation.
pub fn best_of_j(
    mu: &Tensor,
    logscale: &Tensor,
    noise: &Tensor,
    x1: &Tensor,
    zeta: f64,
    l1_penalty: f64,
    transport: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<BestOfJ> {
    let (j, b, m) = match noise.dims() {
        &[j, b, m] => (j, b, m),
        other => bail!("`noise` must be (J, B, M), got shape {other:?}"),
    };
    if j == 0 {
        bail!("`noise` holds no draws (J = 0)");
    }
    if mu.dims() != [b, m] {
        bail!(
            "`mu` must be (B, M) = ({b}, {m}) to match `noise`, got shape {:?}",
            mu.dims()
        );
    }
    let d = match x1.dims() {
        &[rows, d] if rows == b => d,
        other => bail!("`x1` must be (B, d) with B = {b}, got shape {other:?}"),
    };
    if !(l1_penalty.is_finite() && l1_penalty >= 0.0) {
        bail!("`l1_penalty` must be finite and >= 0, got {l1_penalty}");
    }
    let noise = noise.detach();

    let c_per_draw = reparameterize(&mu.detach(), &logscale.detach(), &noise, zeta)?;
    let x1_hat = transport(&c_per_draw)?.detach();
    if x1_hat.dims() != [j, b, d] {
        bail!(
            "`transport` must return (J, B, d) = ({j}, {b}, {d}), got shape {:?}",
            x1_hat.dims()
        );
    }
    let match_error = x1_hat.broadcast_sub(&x1.detach())?.sqr()?.mean(D::Minus1)?;
    let l1 = c_per_draw.abs()?.sum(D::Minus1)?;
    let score = (&match_error + l1.affine(l1_penalty, 0.0)?)?;

    let index = score.argmin(0)?; // (B,) u32
    let gather_index = index
        .reshape((1, b, 1))?
        .broadcast_as((1, b, m))?
        .contiguous()?;
    let selected = noise.gather(&gather_index, 0)?.squeeze(0)?;
    let c = reparameterize(mu, logscale, &selected, zeta)?;
    Ok(BestOfJ {
        c,
        index,
        noise: selected,
        c_per_draw,
        match_error,
        score,
    })
}
