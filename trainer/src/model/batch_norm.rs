//! Batch normalisation with PyTorch's defaults (momentum 0.1, ε = 1e-5, affine), shared by the
//! backbone (2-D, per channel) and the projection head (1-D, per feature).
//!
//! This is candle-nn's [`candle_nn::BatchNorm`], which already has torch's semantics: in training
//! mode it normalises with the batch's biased variance and updates the running statistics as
//! `running = (1 − momentum)·running + momentum·batch`, using the *unbiased* variance for
//! `running_var`; in evaluation mode it normalises with the running statistics and updates
//! nothing. The wrapper adds what candle leaves out: a typed error where torch raises one (a single
//! value per channel in training mode, whose unbiased variance is 0/0), and a way to tell the
//! running statistics apart from the trainable parameters.
//!
//! The running statistics live in the same [`candle_nn::VarMap`] as the parameters (so that
//! checkpoints hold them), under `<prefix>.running_mean` and `<prefix>.running_var`. They never
//! receive a gradient, but an optimiser that walks the whole map must skip them (see
//! [`is_running_stat`]) and parameter counts must not include them.
//!
//! In training mode on the CPU the layer runs a fused kernel ([`BatchNorm::forward_act`]): one
//! pass for the statistics and one for the output, optionally with the following ReLU, and a
//! backward pass that computes dx, dγ and dβ together. candle's composite version (transpose,
//! copy, a dozen broadcast ops, each with its own backward) made the normalisation layers about
//! as expensive as the convolutions. On other devices, and in evaluation mode, the layer uses
//! candle's implementation; [`Kernels::Reference`] forces it everywhere, for tests.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, Var, bail};
use candle_nn::{BatchNormConfig, ModuleT, VarBuilder};
use rayon::prelude::*;

use super::Kernels;
use super::matmul::{Element, contiguous_values};

/// Weight of the current batch in the running statistics (PyTorch's default).
pub const MOMENTUM: f64 = 0.1;
/// Added to the variance before the square root (PyTorch's default).
pub const EPS: f64 = 1e-5;
/// Name suffix of the running mean in a [`candle_nn::VarMap`].
pub const RUNNING_MEAN: &str = "running_mean";
/// Name suffix of the running variance in a [`candle_nn::VarMap`].
pub const RUNNING_VAR: &str = "running_var";

/// Whether the variable called `name` is a batch-norm running statistic (a buffer updated by the
/// forward pass) rather than a trainable parameter. Optimisers and parameter counts skip these.
pub fn is_running_stat(name: &str) -> bool {
    name.rsplit('.')
        .next()
        .is_some_and(|last| last == RUNNING_MEAN || last == RUNNING_VAR)
}

/// An affine batch-norm layer over dimension 1 of its input: (B, C) or (B, C, H, W).
#[derive(Debug, Clone)]
pub struct BatchNorm {
    inner: candle_nn::BatchNorm,
    num_features: usize,
    kernels: Kernels,
    group: Option<usize>,
}

impl BatchNorm {
    /// A layer over `num_features` channels whose weight (init 1), bias (init 0), running mean
    /// (init 0) and running variance (init 1) are `weight`, `bias`, `running_mean` and
    /// `running_var` under `vb`.
    pub fn new(num_features: usize, vb: VarBuilder<'_>) -> Result<Self> {
        let config = BatchNormConfig {
            eps: EPS,
            remove_mean: true,
            affine: true,
            momentum: MOMENTUM,
        };
        Ok(Self {
            inner: candle_nn::batch_norm(num_features, config, vb)?,
            num_features,
            kernels: Kernels::default(),
            group: None,
        })
    }

    /// Number of channels (the size of dimension 1 of the input).
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// The running mean (C), as the evaluation mode uses it.
    pub fn running_mean(&self) -> &Tensor {
        self.inner.running_mean()
    }

    /// The running variance (C), as the evaluation mode uses it.
    pub fn running_var(&self) -> &Tensor {
        self.inner.running_var()
    }

    /// Chooses the fused CPU kernel or candle's composite ops (see the module documentation).
    pub fn set_kernels(&mut self, kernels: Kernels) {
        self.kernels = kernels;
    }

    /// "Ghost" batch norm: in training mode, normalise each group of `group` consecutive rows
    /// with its own statistics (the last group may be smaller), and update the running statistics
    /// from the first group only. This is what `torch.nn.DataParallel` does to a BatchNorm layer
    /// on two GPUs: each replica normalises its half of the batch, and only the first replica
    /// shares its buffers with the module. `None` (the default) normalises the whole batch.
    /// Evaluation mode is unaffected.
    pub fn set_group(&mut self, group: Option<usize>) {
        self.group = group.filter(|&g| g > 0);
    }

    /// [`ModuleT::forward_t`], followed by a ReLU when `relu`; fused into one kernel in training
    /// mode on the CPU. With a ghost group ([`Self::set_group`]) in training mode, one call per
    /// group of rows.
    pub fn forward_act(&self, x: &Tensor, train: bool, relu: bool) -> Result<Tensor> {
        let rows = x.dim(0)?;
        match self.group {
            Some(group) if train && rows > group => {
                let chunks = (0..rows)
                    .step_by(group)
                    .map(|start| {
                        let chunk = x.narrow(0, start, group.min(rows - start))?;
                        self.forward_with(&chunk, train, relu, start == 0)
                    })
                    .collect::<Result<Vec<_>>>()?;
                Tensor::cat(&chunks, 0)
            }
            _ => self.forward_with(x, train, relu, true),
        }
    }

    /// [`Self::forward_act`] on the whole of `x`; in training mode the running statistics are
    /// updated only when `update_running` (a DataParallel replica other than the first leaves
    /// the module's untouched).
    pub fn forward_with(
        &self,
        x: &Tensor,
        train: bool,
        relu: bool,
        update_running: bool,
    ) -> Result<Tensor> {
        if train && !update_running {
            // candle-nn's layer always updates its statistics in training mode: put them back.
            let kept = (self.running_mean().copy()?, self.running_var().copy()?);
            let y = self.forward_with(x, train, relu, true)?;
            Var::from_tensor(self.running_mean())?.set(&kept.0)?;
            Var::from_tensor(self.running_var())?.set(&kept.1)?;
            return Ok(y);
        }
        self.check_input(x, train)?;
        let fused = train
            && self.kernels == Kernels::Fast
            && x.device().is_cpu()
            && matches!(x.dtype(), candle_core::DType::F32 | candle_core::DType::F64);
        if !fused {
            let y = self.inner.forward_t(x, train)?;
            return if relu { y.relu() } else { Ok(y) };
        }
        let saved = Arc::new(Mutex::new(Saved::default()));
        let op = BatchNormTrain {
            eps: EPS,
            relu,
            saved: saved.clone(),
        };
        let Some((weight, bias)) = self.inner.weight_and_bias() else {
            bail!("batch norm: the layer has no affine parameters");
        };
        let y = x.contiguous()?.apply_op3(weight, bias, op)?;
        // The running statistics, updated as candle (and torch) do: the unbiased batch variance.
        let Ok(saved) = saved.lock() else {
            bail!("batch norm: statistics lock poisoned");
        };
        let n = (x.elem_count() / self.num_features.max(1)) as f64;
        let device = x.device();
        let mean = Tensor::from_slice(&saved.mean, self.num_features, device)?;
        let var = Tensor::from_slice(&saved.var, self.num_features, device)?;
        let update = |running: &Tensor, batch: Tensor, weight: f64| -> Result<()> {
            let batch = batch.to_dtype(running.dtype())?;
            let new = ((running * (1.0 - MOMENTUM))? + (batch * weight)?)?;
            Var::from_tensor(running)?.set(&new)
        };
        update(self.inner.running_mean(), mean, MOMENTUM)?;
        update(self.inner.running_var(), var, MOMENTUM * n / (n - 1.0))?;
        Ok(y)
    }

    /// Evaluation mode for inference: the running statistics folded into one scale and shift per
    /// channel, applied in one pass (with the ReLU when `relu`), with nothing recorded for
    /// backpropagation. Same values as `forward_act(x, false, relu)` to rounding.
    #[allow(clippy::disallowed_methods)] // inference (the folded scale, CPU only), no training step
    pub fn infer(&self, x: &Tensor, relu: bool) -> Result<Tensor> {
        self.check_input(x, false)?;
        let Some((weight, bias)) = self.inner.weight_and_bias() else {
            bail!("batch norm: the layer has no affine parameters");
        };
        let scale = (weight.detach() / (self.inner.running_var().detach() + EPS)?.sqrt()?)?;
        let shift = (bias.detach() - (self.inner.running_mean().detach() * &scale)?)?;
        let x = x.detach();
        if !x.device().is_cpu() || self.kernels == Kernels::Reference {
            let mut shape = vec![1; x.rank()];
            shape[1] = self.num_features;
            let y = x
                .broadcast_mul(&scale.reshape(shape.clone())?)?
                .broadcast_add(&shift.reshape(shape)?)?;
            return if relu { y.relu() } else { Ok(y) };
        }
        let to_f64 = |t: &Tensor| t.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>();
        x.contiguous()?.apply_op1_no_bwd(&ChannelAffine {
            scale: to_f64(&scale)?,
            shift: to_f64(&shift)?,
            relu,
        })
    }

    fn check_input(&self, x: &Tensor, train: bool) -> Result<()> {
        let dims = x.dims();
        if dims.len() < 2 || dims[1] != self.num_features {
            bail!(
                "batch norm over {} channels expects (B, {}, ...), got {:?}",
                self.num_features,
                self.num_features,
                dims
            );
        }
        if train {
            let per_channel = x.elem_count() / self.num_features.max(1);
            if per_channel < 2 {
                bail!(
                    "batch norm in training mode needs more than one value per channel, got input {dims:?}"
                );
            }
        }
        Ok(())
    }
}

impl ModuleT for BatchNorm {
    /// Normalises `x` with the batch statistics and updates the running ones (`train`), or with
    /// the running statistics (`!train`). In training mode every channel needs at least two values
    /// (B·H·W ≥ 2), as in PyTorch.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_act(x, train, false)
    }
}

/// The gradient reaching the normalisation: `dy`, or 0 where the ReLU after it was closed.
fn masked<T: Element>(dy: T, y: T, relu: bool) -> T {
    if relu && y.to_f64() <= 0.0 {
        T::ZERO
    } else {
        dy
    }
}

/// Σ f(v) over a slice with eight partial sums in T, so the loop vectorises; the total in f64.
fn lane_sum<T: Element>(v: &[T], f: impl Fn(T) -> T) -> f64 {
    let mut lanes = [T::ZERO; 8];
    let mut chunks = v.chunks_exact(8);
    for chunk in &mut chunks {
        for (l, &x) in lanes.iter_mut().zip(chunk) {
            *l += f(x);
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|&x| f(x).to_f64()).sum();
    lanes.iter().map(|l| l.to_f64()).sum::<f64>() + tail
}

/// [`lane_sum`] of f(a_i, b_i) over two slices of equal length.
fn lane_sum_zip<T: Element>(a: &[T], b: &[T], f: impl Fn(T, T) -> T) -> f64 {
    let mut lanes = [T::ZERO; 8];
    let (mut ca, mut cb) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x, y) in (&mut ca).zip(&mut cb) {
        for ((l, &x), &y) in lanes.iter_mut().zip(x).zip(y) {
            *l += f(x, y);
        }
    }
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| f(x, y).to_f64())
        .sum();
    lanes.iter().map(|l| l.to_f64()).sum::<f64>() + tail
}

/// [`lane_sum`] of f(a_i, b_i, c_i) over three slices of equal length.
fn lane_sum_zip3<T: Element>(a: &[T], b: &[T], c: &[T], f: impl Fn(T, T, T) -> T) -> f64 {
    let mut lanes = [T::ZERO; 8];
    let (mut ca, mut cb, mut cc) = (a.chunks_exact(8), b.chunks_exact(8), c.chunks_exact(8));
    for ((x, y), z) in (&mut ca).zip(&mut cb).zip(&mut cc) {
        for (((l, &x), &y), &z) in lanes.iter_mut().zip(x).zip(y).zip(z) {
            *l += f(x, y, z);
        }
    }
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .zip(cc.remainder())
        .map(|((&x, &y), &z)| f(x, y, z).to_f64())
        .sum();
    lanes.iter().map(|l| l.to_f64()).sum::<f64>() + tail
}

/// x → x·scale + shift per channel (dimension 1), then ReLU if `relu`: batch norm in evaluation
/// mode with its statistics folded in. Inference only (no backward).
struct ChannelAffine {
    scale: Vec<f64>,
    shift: Vec<f64>,
    relu: bool,
}

impl ChannelAffine {
    fn apply<T: Element>(&self, x: &[T], (_, c, s): (usize, usize, usize)) -> Vec<T> {
        let scale: Vec<T> = self.scale.iter().map(|&v| T::from_f64(v)).collect();
        let shift: Vec<T> = self.shift.iter().map(|&v| T::from_f64(v)).collect();
        let mut y = vec![T::ZERO; x.len()];
        y.par_chunks_mut(c * s)
            .zip(x.par_chunks(c * s))
            .for_each(|(y, x)| {
                for (ch, (y, x)) in y.chunks_exact_mut(s).zip(x.chunks_exact(s)).enumerate() {
                    affine_relu(y, x, scale[ch], shift[ch], self.relu);
                }
            });
        y
    }
}

/// `y = x·a + b`, clamped at 0 when `relu`.
fn affine_relu<T: Element>(y: &mut [T], x: &[T], a: T, b: T, relu: bool) {
    if relu {
        for (y, &x) in y.iter_mut().zip(x) {
            let v = x * a + b;
            *y = if v.to_f64() > 0.0 { v } else { T::ZERO };
        }
    } else {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = x * a + b;
        }
    }
}

impl candle_core::CustomOp1 for ChannelAffine {
    fn name(&self) -> &'static str {
        "mclr-batch-norm-infer"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let dims = bcs(layout.shape())?;
        if self.scale.len() != dims.1 {
            bail!(
                "batch norm: {} channel scales for {} channels",
                self.scale.len(),
                dims.1
            );
        }
        let out = match storage {
            CpuStorage::F32(x) => {
                CpuStorage::F32(self.apply(contiguous_values(x, layout, "batch norm")?, dims))
            }
            CpuStorage::F64(x) => {
                CpuStorage::F64(self.apply(contiguous_values(x, layout, "batch norm")?, dims))
            }
            _ => bail!("batch norm: input must be f32 or f64"),
        };
        Ok((out, layout.shape().clone()))
    }
}

/// What the fused forward pass leaves for its backward pass and for the running statistics.
#[derive(Debug, Default)]
struct Saved {
    /// Batch mean per channel.
    mean: Vec<f64>,
    /// Biased batch variance per channel.
    var: Vec<f64>,
    /// 1/√(var + ε) per channel.
    inv_std: Vec<f64>,
    /// γ per channel.
    gamma: Vec<f64>,
}

/// (x, γ, β) → γ·(x − mean)/√(var + ε) + β, then ReLU if `relu`, with batch statistics over every
/// dimension but 1.
struct BatchNormTrain {
    eps: f64,
    relu: bool,
    saved: Arc<Mutex<Saved>>,
}

/// Dimensions of a (B, C, S...) input: (B, C, S) with S the product of the trailing ones.
fn bcs(shape: &Shape) -> Result<(usize, usize, usize)> {
    let dims = shape.dims();
    match dims {
        [b, c, rest @ ..] => Ok((*b, *c, rest.iter().product())),
        _ => bail!("batch norm: expected (B, C, ...), got {dims:?}"),
    }
}

impl BatchNormTrain {
    fn forward<T: Element>(
        &self,
        x: &[T],
        (b, c, s): (usize, usize, usize),
        gamma: &[T],
        beta: &[T],
    ) -> Result<Vec<T>> {
        if gamma.len() != c || beta.len() != c {
            bail!("batch norm: γ and β must have {c} values");
        }
        let n = (b * s) as f64;
        // Two passes per channel: the mean, then the centred sum of squares; partial sums per
        // plane in T (vectorised), accumulated across planes in f64.
        let stats: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let plane = |i: usize| &x[(i * c + ch) * s..][..s];
                let sum: f64 = (0..b).map(|i| lane_sum(plane(i), |v| v)).sum();
                let mean = sum / n;
                let m = T::from_f64(mean);
                let ss: f64 = (0..b)
                    .map(|i| {
                        lane_sum(plane(i), |v| {
                            let d = v - m;
                            d * d
                        })
                    })
                    .sum();
                (mean, ss / n)
            })
            .collect();
        let mut saved = Saved {
            mean: stats.iter().map(|s| s.0).collect(),
            var: stats.iter().map(|s| s.1).collect(),
            ..Saved::default()
        };
        saved.inv_std = saved
            .var
            .iter()
            .map(|v| 1.0 / (v + self.eps).sqrt())
            .collect();
        saved.gamma = gamma.iter().map(|g| g.to_f64()).collect();
        // y = x·scale + shift per channel.
        let scale: Vec<T> = (0..c)
            .map(|ch| T::from_f64(saved.gamma[ch] * saved.inv_std[ch]))
            .collect();
        let shift: Vec<T> = (0..c)
            .map(|ch| {
                T::from_f64(
                    beta[ch].to_f64() - saved.mean[ch] * saved.gamma[ch] * saved.inv_std[ch],
                )
            })
            .collect();
        let mut y = vec![T::ZERO; x.len()];
        let relu = self.relu;
        y.par_chunks_mut(c * s)
            .zip(x.par_chunks(c * s))
            .for_each(|(y, x)| {
                for (ch, (y, x)) in y.chunks_exact_mut(s).zip(x.chunks_exact(s)).enumerate() {
                    affine_relu(y, x, scale[ch], shift[ch], relu);
                }
            });
        let Ok(mut slot) = self.saved.lock() else {
            bail!("batch norm: statistics lock poisoned");
        };
        *slot = saved;
        Ok(y)
    }
}

impl CustomOp3 for BatchNormTrain {
    fn name(&self) -> &'static str {
        "mclr-batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = bcs(l1.shape())?;
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(g), CpuStorage::F32(b)) => {
                CpuStorage::F32(self.forward(
                    contiguous_values(x, l1, "batch norm")?,
                    dims,
                    contiguous_values(g, l2, "batch norm")?,
                    contiguous_values(b, l3, "batch norm")?,
                )?)
            }
            (CpuStorage::F64(x), CpuStorage::F64(g), CpuStorage::F64(b)) => {
                CpuStorage::F64(self.forward(
                    contiguous_values(x, l1, "batch norm")?,
                    dims,
                    contiguous_values(g, l2, "batch norm")?,
                    contiguous_values(b, l3, "batch norm")?,
                )?)
            }
            _ => bail!("batch norm: x, γ and β must all be f32 or all f64"),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        _gamma: &Tensor,
        _beta: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let c = x.dim(1)?;
        let grads = x.apply_op3_no_bwd(
            &dy.contiguous()?,
            y,
            &BatchNormGrad {
                relu: self.relu,
                saved: self.saved.clone(),
            },
        )?;
        let count = x.elem_count();
        let dx = grads.narrow(0, 0, count)?.reshape(x.shape())?;
        let dgamma = grads.narrow(0, count, c)?;
        let dbeta = grads.narrow(0, count + c, c)?;
        Ok((Some(dx), Some(dgamma), Some(dbeta)))
    }
}

/// (x, dy, y) → [dx, dγ, dβ] flattened into one vector, from the statistics the forward pass saved.
struct BatchNormGrad {
    relu: bool,
    saved: Arc<Mutex<Saved>>,
}

impl BatchNormGrad {
    fn backward<T: Element>(
        &self,
        x: &[T],
        (b, c, s): (usize, usize, usize),
        dy: &[T],
        y: &[T],
    ) -> Result<Vec<T>> {
        let Ok(saved) = self.saved.lock() else {
            bail!("batch norm: statistics lock poisoned");
        };
        if saved.mean.len() != c || dy.len() != x.len() || y.len() != x.len() {
            bail!("batch norm backward: shapes differ from the forward pass");
        }
        let relu = self.relu;
        let plane = |v: &'_ [T], i: usize, ch: usize| -> std::ops::Range<usize> {
            let start = (i * c + ch) * s;
            debug_assert!(start + s <= v.len());
            start..start + s
        };
        // dβ = Σ g and dγ = Σ g·x̂ = σ⁻¹(Σ g·x − mean·Σ g) per channel: partial sums per plane
        // in T (vectorised), accumulated across planes in f64.
        let sums: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let (mut sum_g, mut sum_gx) = (0.0, 0.0);
                for i in 0..b {
                    let r = plane(x, i, ch);
                    let (x, dy, y) = (&x[r.clone()], &dy[r.clone()], &y[r]);
                    sum_g += lane_sum_zip(dy, y, |dy, y| masked(dy, y, relu));
                    sum_gx += lane_sum_zip3(x, dy, y, |x, dy, y| masked(dy, y, relu) * x);
                }
                let dg = saved.inv_std[ch] * (sum_gx - saved.mean[ch] * sum_g);
                (dg, sum_g)
            })
            .collect();
        // dx = γσ⁻¹/N · (N·g − dβ − x̂·dγ) = a·g + b + c·x per channel.
        let n = (b * s) as f64;
        let coefficients: Vec<(T, T, T)> = (0..c)
            .map(|ch| {
                let (mean, inv_std) = (saved.mean[ch], saved.inv_std[ch]);
                let (dg, db) = sums[ch];
                let k = saved.gamma[ch] * inv_std / n;
                (
                    T::from_f64(k * n),
                    T::from_f64(-k * db + k * dg * mean * inv_std),
                    T::from_f64(-k * dg * inv_std),
                )
            })
            .collect();
        let mut out = vec![T::ZERO; x.len() + 2 * c];
        let (dx, rest) = out.split_at_mut(x.len());
        dx.par_chunks_mut(c * s).enumerate().for_each(|(i, dx)| {
            for (ch, dx) in dx.chunks_exact_mut(s).enumerate() {
                let (a, b, cx) = coefficients[ch];
                let r = plane(x, i, ch);
                for (d, ((&x, &dy), &y)) in dx
                    .iter_mut()
                    .zip(x[r.clone()].iter().zip(&dy[r.clone()]).zip(&y[r]))
                {
                    *d = a * masked(dy, y, relu) + b + cx * x;
                }
            }
        });
        for (ch, (dg, db)) in sums.iter().enumerate() {
            rest[ch] = T::from_f64(*dg);
            rest[c + ch] = T::from_f64(*db);
        }
        Ok(out)
    }
}

impl CustomOp3 for BatchNormGrad {
    fn name(&self) -> &'static str {
        "mclr-batch-norm-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = bcs(l1.shape())?;
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(dy), CpuStorage::F32(y)) => {
                CpuStorage::F32(self.backward(
                    contiguous_values(x, l1, "batch norm")?,
                    dims,
                    contiguous_values(dy, l2, "batch norm")?,
                    contiguous_values(y, l3, "batch norm")?,
                )?)
            }
            (CpuStorage::F64(x), CpuStorage::F64(dy), CpuStorage::F64(y)) => {
                CpuStorage::F64(self.backward(
                    contiguous_values(x, l1, "batch norm")?,
                    dims,
                    contiguous_values(dy, l2, "batch norm")?,
                    contiguous_values(y, l3, "batch norm")?,
                )?)
            }
            _ => bail!("batch norm backward: x, dy and y must all be f32 or all f64"),
        };
        let len = l1.shape().elem_count() + 2 * dims.1;
        Ok((out, Shape::from(len)))
    }
}
