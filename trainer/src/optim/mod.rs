//! AdamW with parameter groups, per-group gradient clipping and checkpointable state.
//!
//! candle-nn's `AdamW` has a single learning rate and weight decay and keeps its moments private.
//! ManifoldCLR trains three groups with their own rates, decays, floors and clipping (docs/method.md §7), and a
//! resumed run must continue bit-for-bit. This optimiser follows
//! `torch.optim.AdamW` (default betas and eps, decoupled weight decay, bias correction with a
//! per-parameter step count) and `torch.nn.utils.clip_grad_norm_` applied per group.

use std::collections::{HashMap, HashSet};

use candle_core::backprop::GradStore;
use candle_core::{DType, Result, Tensor, Var, bail};
use serde::{Deserialize, Serialize};

use crate::schedule::LinearWarmupCosine;
use update::update_param;

mod update;

/// The settings of one parameter group, as the configuration states them (docs/method.md §7's table: lr,
/// weight decay, the floor the schedule anneals to, and the gradient-norm clip).
///
/// The optimiser holds no defaults: the configuration supplies every number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupSettings {
    /// Peak learning rate (reached at the end of the warm-up).
    pub lr: f64,
    /// Decoupled weight decay coefficient (`p ← p − lr · wd · p`).
    pub weight_decay: f64,
    /// The learning rate the cosine anneals to.
    pub floor: f64,
    /// Clip the group's total gradient L2 norm to this value; `None` disables clipping.
    pub max_grad_norm: Option<f64>,
}

/// A named set of parameters trained with one learning rate, weight decay, clip and schedule.
#[derive(Debug, Clone)]
pub struct ParamGroup {
    /// The group's name (`backbone`, `operators`, `encoder`, ...). It prefixes the group's state
    /// tensors in checkpoints, so it must be non-empty, unique and free of `.`.
    pub name: String,
    /// The parameters, in a fixed order: a parameter's index names its state in checkpoints.
    pub params: Vec<Var>,
    /// The current learning rate, set from `schedule` by [`AdamW::set_iteration`].
    pub lr: f64,
    /// Decoupled weight decay coefficient.
    pub weight_decay: f64,
    /// Clip the group's total gradient L2 norm to this value before the step; `None` disables it.
    pub max_grad_norm: Option<f64>,
    /// The learning-rate schedule of this group.
    pub schedule: LinearWarmupCosine,
}

impl ParamGroup {
    /// Builds a group from its settings and the run's length: the schedule warms up over
    /// `warmup_iters` iterations (a float, as in the reference) and anneals from `settings.lr` to
    /// `settings.floor` at `max_iters`. The current learning rate starts at the schedule's value at
    /// iteration 0.
    pub fn new(
        name: impl Into<String>,
        params: Vec<Var>,
        settings: &GroupSettings,
        warmup_iters: f64,
        max_iters: u64,
    ) -> Result<Self> {
        let schedule =
            LinearWarmupCosine::new(settings.lr, settings.floor, warmup_iters, max_iters)?;
        let group = Self {
            name: name.into(),
            params,
            lr: schedule.lr_at(0),
            weight_decay: settings.weight_decay,
            max_grad_norm: settings.max_grad_norm,
            schedule,
        };
        group.validate()?;
        Ok(group)
    }

    /// Checks what does not depend on other groups: the name, the hyper-parameters and that every
    /// parameter is a contiguous, non-empty float tensor on the group's device.
    fn validate(&self) -> Result<()> {
        let name = &self.name;
        if name.is_empty() || name.contains('.') {
            bail!("parameter group name `{name}` must be non-empty and must not contain `.`");
        }
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            bail!(
                "parameter group `{name}`: lr must be finite and >= 0, found {}",
                self.lr
            );
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            bail!(
                "parameter group `{name}`: weight decay must be finite and >= 0, found {}",
                self.weight_decay
            );
        }
        if let Some(max) = self.max_grad_norm
            && !(max.is_finite() && max > 0.0)
        {
            bail!("parameter group `{name}`: max grad norm must be finite and > 0, found {max}");
        }
        let mut ids = HashSet::with_capacity(self.params.len());
        for (index, var) in self.params.iter().enumerate() {
            if !var.dtype().is_float() {
                bail!(
                    "parameter group `{name}`: parameter {index} has dtype {:?}; only float parameters can be optimised",
                    var.dtype()
                );
            }
            if var.elem_count() == 0 {
                bail!("parameter group `{name}`: parameter {index} has no elements");
            }
            if !var.is_contiguous() {
                bail!("parameter group `{name}`: parameter {index} is not contiguous");
            }
            if let Some(first) = self.params.first()
                && !var.device().same_device(first.device())
            {
                bail!(
                    "parameter group `{name}`: parameter {index} is on {:?} but parameter 0 is on {:?}",
                    var.device().location(),
                    first.device().location()
                );
            }
            if !ids.insert(var.as_tensor().id()) {
                bail!("parameter group `{name}`: parameter {index} appears twice in the group");
            }
        }
        Ok(())
    }
}

/// What one step did to each group, for metrics (in group order).
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    /// One entry per parameter group, in the optimiser's group order.
    pub groups: Vec<GroupStepReport>,
}

/// What one step did to one group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupStepReport {
    /// The group's name.
    pub name: String,
    /// The learning rate used for this step.
    pub lr: f64,
    /// The total L2 norm of the group's gradients before clipping (0 if no parameter had one).
    pub grad_norm: f64,
    /// The factor the gradients were multiplied by: `max_norm / (norm + 1e-6)` when clipping
    /// applied, otherwise 1.
    pub clip_coef: f64,
    /// How many of the group's parameters had a gradient and were updated.
    pub updated: usize,
}

/// What [`AdamW::step_deferred`] did, with the gradient norms still on the device.
#[derive(Debug, Clone)]
pub struct DeferredStepReport {
    /// The groups' names, in the optimiser's group order.
    pub names: Vec<String>,
    /// The learning rate each group used for this step.
    pub lrs: Vec<f64>,
    /// The total L2 norm of each group's gradients before clipping, (groups,) f64 on the
    /// parameters' device.
    pub grad_norms: Tensor,
}

/// The non-tensor part of the optimiser's state, small and serialisable (for a checkpoint's JSON).
///
/// Together with [`AdamW::state_tensors`] it is everything [`AdamW::load_state`] needs for a
/// resumed run to continue bit-for-bit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerMeta {
    /// How many times [`AdamW::step`] has run.
    pub step: u64,
    /// One entry per parameter group, in the optimiser's group order.
    pub groups: Vec<GroupMeta>,
}

/// The non-tensor state of one parameter group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMeta {
    /// The group's name; must match the optimiser's group at the same position.
    pub name: String,
    /// The group's current learning rate.
    pub lr: f64,
    /// For each parameter, how many updates it has received (its bias-correction step `t`; it
    /// lags [`OptimizerMeta::step`] when the parameter had no gradient at some steps).
    pub param_steps: Vec<u64>,
}

/// Adam moments and step count of one parameter.
#[derive(Debug, Clone)]
struct ParamState {
    /// First moment `m`, same shape, dtype and device as the parameter.
    m: Tensor,
    /// Second moment `v`, same shape, dtype and device as the parameter.
    v: Tensor,
    /// Number of updates this parameter has received.
    step: u64,
}

/// AdamW (decoupled weight decay, as `torch.optim.AdamW`) over named parameter groups, each with its
/// own learning rate, weight decay, gradient-norm clip and learning-rate schedule.
///
/// One training iteration is: [`set_iteration`](Self::set_iteration)`(iter)`, backward, then
/// [`step`](Self::step)`(&grads)`. For each group, `step` first clips the group's gradients like
/// `clip_grad_norm_` (total L2 norm over the group, multiplied by `max_norm / (norm + 1e-6)` when that
/// is below 1), then for each parameter with gradient `g` and its own step count `t`:
///
/// ```text
/// p ← p · (1 − lr · wd)
/// m ← β1 · m + (1 − β1) · g            v ← β2 · v + (1 − β2) · g²
/// p ← p − lr / (1 − β1^t) · m / (√v / √(1 − β2^t) + eps)
/// ```
///
/// A parameter without a gradient in the [`GradStore`] is skipped entirely, as torch skips a
/// parameter whose `.grad` is `None`: no weight decay, no moment update, and its step count does not
/// advance. Its moments start at zero, as torch's lazily created state does.
#[derive(Debug)]
pub struct AdamW {
    groups: Vec<ParamGroup>,
    state: Vec<Vec<ParamState>>,
    step: u64,
}

impl AdamW {
    /// Exponential decay of the first moment (torch's default).
    pub const BETA1: f64 = 0.9;
    /// Exponential decay of the second moment (torch's default).
    pub const BETA2: f64 = 0.999;
    /// Added to the bias-corrected `√v` (torch's default).
    pub const EPS: f64 = 1e-8;
    /// Added to the total norm in the clip factor, as `clip_grad_norm_` does.
    pub const CLIP_EPS: f64 = 1e-6;

    /// Creates the optimiser with zero moments. Fails, naming the group and parameter, when a
    /// group is invalid (see [`ParamGroup::name`]), two groups share a name, or a parameter appears
    /// in more than one place.
    pub fn new(groups: Vec<ParamGroup>) -> Result<Self> {
        let mut names = HashSet::with_capacity(groups.len());
        let mut owners = HashMap::new();
        let mut state = Vec::with_capacity(groups.len());
        for group in &groups {
            group.validate()?;
            if !names.insert(group.name.as_str()) {
                bail!("two parameter groups are named `{}`", group.name);
            }
            let mut group_state = Vec::with_capacity(group.params.len());
            for (index, var) in group.params.iter().enumerate() {
                if let Some((other, other_index)) =
                    owners.insert(var.as_tensor().id(), (group.name.as_str(), index))
                {
                    bail!(
                        "parameter {index} of group `{}` is also parameter {other_index} of group `{other}`",
                        group.name
                    );
                }
                group_state.push(ParamState {
                    m: var.zeros_like()?,
                    v: var.zeros_like()?,
                    step: 0,
                });
            }
            state.push(group_state);
        }
        Ok(Self {
            groups,
            state,
            step: 0,
        })
    }

    /// The parameter groups, in order.
    pub fn groups(&self) -> &[ParamGroup] {
        &self.groups
    }

    /// How many times [`step`](Self::step) has run.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The current learning rate of each group, in group order.
    pub fn lrs(&self) -> Vec<f64> {
        self.groups.iter().map(|group| group.lr).collect()
    }

    /// Sets every group's learning rate from its schedule for iteration `iter` (0-based). Call it
    /// before each [`step`](Self::step), as the reference steps its scheduler once per iteration.
    pub fn set_iteration(&mut self, iter: u64) {
        for group in &mut self.groups {
            group.lr = group.schedule.lr_at(iter);
        }
    }

    /// Clips each group's gradients and applies one AdamW update with each group's current
    /// learning rate; returns each group's pre-clip gradient norm and learning rate.
    ///
    /// Everything is checked before anything changes: a gradient whose shape, dtype or device does
    /// not match its parameter, or a group whose gradient norm is not finite, is an error (naming the
    /// group and parameter) and leaves parameters and state untouched, so the caller can decide what
    /// to do with a diverged batch (torch would silently write NaN into the weights). The check
    /// reads the groups' norms back to the host, once per call; a training loop on a GPU uses
    /// [`step_deferred`](Self::step_deferred) instead.
    pub fn step(&mut self, grads: &GradStore) -> Result<StepReport> {
        let plans = self.plan(grads)?;
        let norms = match plans.iter().map(|p| p.norm_sq.clone()).collect::<Vec<_>>() {
            squares if squares.is_empty() => Vec::new(),
            squares => crate::readback::to_f64s(&Tensor::stack(&squares, 0)?)?
                .into_iter()
                .map(f64::sqrt)
                .collect(),
        };
        for (group, norm) in self.groups.iter().zip(&norms) {
            if !norm.is_finite() {
                bail!(
                    "parameter group `{}`: gradient norm is {norm}; no parameter was updated at this step",
                    group.name
                );
            }
        }
        let coefs: Vec<f64> = self
            .groups
            .iter()
            .zip(&norms)
            .map(|(group, &norm)| match group.max_grad_norm {
                Some(max_norm) => (max_norm / (norm + Self::CLIP_EPS)).min(1.0),
                None => 1.0,
            })
            .collect();
        let updated = self.apply(plans, |index, grad| {
            let coef = coefs[index];
            if coef < 1.0 {
                grad.affine(coef, 0.0)
            } else {
                Ok(grad)
            }
        })?;
        Ok(StepReport {
            groups: self
                .groups
                .iter()
                .zip(norms.into_iter().zip(coefs))
                .zip(updated)
                .map(
                    |((group, (grad_norm, clip_coef)), updated)| GroupStepReport {
                        name: group.name.clone(),
                        lr: group.lr,
                        grad_norm,
                        clip_coef,
                        updated,
                    },
                )
                .collect(),
        })
    }

    /// [`step`](Self::step) without reading anything back from the device: the clip factors are
    /// computed on the device, and the gradient norms come back as a tensor, for the caller to
    /// read when it logs (a GPU then never waits for the host between steps).
    ///
    /// Shapes, dtypes and devices are still checked first, but finiteness cannot be: a group with
    /// a NaN or infinite gradient norm is updated with non-finite values. The caller must read
    /// [`DeferredStepReport::grad_norms`] before it keeps (e.g. checkpoints) the parameters, as the
    /// training loop does.
    pub fn step_deferred(&mut self, grads: &GradStore) -> Result<DeferredStepReport> {
        let plans = self.plan(grads)?;
        let device = self
            .groups
            .first()
            .and_then(|g| g.params.first())
            .map(|var| var.device().clone());
        let norms: Vec<Tensor> = plans
            .iter()
            .map(|p| p.norm_sq.sqrt())
            .collect::<Result<_>>()?;
        let coefs: Vec<Option<Tensor>> = self
            .groups
            .iter()
            .zip(&norms)
            .map(|(group, norm)| {
                group
                    .max_grad_norm
                    .map(|max_norm| {
                        let one = Tensor::ones((), DType::F64, norm.device())?;
                        (norm + Self::CLIP_EPS)?
                            .recip()?
                            .affine(max_norm, 0.0)?
                            .minimum(&one)
                    })
                    .transpose()
            })
            .collect::<Result<_>>()?;
        self.apply(plans, |index, grad| match &coefs[index] {
            Some(coef) => grad.broadcast_mul(&coef.to_dtype(grad.dtype())?),
            None => Ok(grad),
        })?;
        let grad_norms = match (norms.is_empty(), device) {
            (false, _) => Tensor::stack(&norms, 0)?,
            (true, Some(device)) => Tensor::zeros(0, DType::F64, &device)?,
            (true, None) => Tensor::zeros(0, DType::F64, &candle_core::Device::Cpu)?,
        };
        Ok(DeferredStepReport {
            names: self.groups.iter().map(|g| g.name.clone()).collect(),
            lrs: self.lrs(),
            grad_norms,
        })
    }

    /// Checks every group's gradients against its parameters and sums their squares on the
    /// device; changes nothing.
    fn plan(&self, grads: &GradStore) -> Result<Vec<GroupPlan>> {
        self.groups
            .iter()
            .map(|group| plan_group(group, grads))
            .collect()
    }

    /// Applies one update to every parameter that has a gradient, each gradient first passed
    /// through `clip(group index, gradient)`; returns how many parameters of each group moved.
    fn apply(
        &mut self,
        plans: Vec<GroupPlan>,
        clip: impl Fn(usize, Tensor) -> Result<Tensor>,
    ) -> Result<Vec<usize>> {
        self.step += 1;
        let mut counts = Vec::with_capacity(self.groups.len());
        for (index, ((group, state), plan)) in self
            .groups
            .iter()
            .zip(&mut self.state)
            .zip(plans)
            .enumerate()
        {
            let mut updated = 0;
            for ((var, param_state), grad) in group.params.iter().zip(state).zip(plan.grads) {
                let Some(grad) = grad else { continue };
                let grad = clip(index, grad)?;
                update_param(var, param_state, &grad, group.lr, group.weight_decay)?;
                updated += 1;
            }
            counts.push(updated);
        }
        Ok(counts)
    }

    /// The optimiser's tensors for a checkpoint: for group `g` and parameter index `i`, the first
    /// moment `"{g}.{i}.m"` and the second moment `"{g}.{i}.v"`, in group and parameter order. Every
    /// parameter has both, zero until its first update.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut tensors = Vec::with_capacity(2 * self.state.iter().map(Vec::len).sum::<usize>());
        for (group, state) in self.groups.iter().zip(&self.state) {
            for (index, param_state) in state.iter().enumerate() {
                let (m, v) = state_names(&group.name, index);
                tensors.push((m, param_state.m.clone()));
                tensors.push((v, param_state.v.clone()));
            }
        }
        tensors
    }

    /// The optimiser's non-tensor state for a checkpoint (step counts and learning rates).
    pub fn meta(&self) -> OptimizerMeta {
        OptimizerMeta {
            step: self.step,
            groups: self
                .groups
                .iter()
                .zip(&self.state)
                .map(|(group, state)| GroupMeta {
                    name: group.name.clone(),
                    lr: group.lr,
                    param_steps: state.iter().map(|param_state| param_state.step).collect(),
                })
                .collect(),
        }
    }

    /// Restores the state saved by [`meta`](Self::meta) and [`state_tensors`](Self::state_tensors)
    /// into an optimiser built with the same groups (names, order, parameter counts and shapes).
    ///
    /// Every expected tensor must be present with the parameter's shape and dtype; tensors are
    /// moved to the parameter's device. A missing, misshapen or unexpected tensor, or a group that
    /// does not match, is an error naming it, and leaves the optimiser unchanged.
    pub fn load_state(
        &mut self,
        meta: &OptimizerMeta,
        tensors: &HashMap<String, Tensor>,
    ) -> Result<()> {
        if meta.groups.len() != self.groups.len() {
            bail!(
                "optimiser state has {} parameter groups, this optimiser has {}",
                meta.groups.len(),
                self.groups.len()
            );
        }
        let mut expected = HashSet::with_capacity(tensors.len());
        let mut new_state = Vec::with_capacity(self.groups.len());
        for (position, (group, group_meta)) in self.groups.iter().zip(&meta.groups).enumerate() {
            let name = &group.name;
            if group_meta.name != *name {
                bail!(
                    "optimiser state: parameter group {position} is `{}`, this optimiser's is `{name}`",
                    group_meta.name
                );
            }
            if !(group_meta.lr.is_finite() && group_meta.lr >= 0.0) {
                bail!("optimiser state: group `{name}` has lr {}", group_meta.lr);
            }
            if group_meta.param_steps.len() != group.params.len() {
                bail!(
                    "optimiser state: group `{name}` has {} parameters, this optimiser's has {}",
                    group_meta.param_steps.len(),
                    group.params.len()
                );
            }
            let mut group_state = Vec::with_capacity(group.params.len());
            for (index, (var, &step)) in
                group.params.iter().zip(&group_meta.param_steps).enumerate()
            {
                if step > meta.step {
                    bail!(
                        "optimiser state: group `{name}` parameter {index} has {step} updates but the optimiser made only {} steps",
                        meta.step
                    );
                }
                let (m_name, v_name) = state_names(name, index);
                let m = load_moment(tensors, &m_name, var)?;
                let v = load_moment(tensors, &v_name, var)?;
                expected.insert(m_name);
                expected.insert(v_name);
                group_state.push(ParamState { m, v, step });
            }
            new_state.push(group_state);
        }
        let mut unexpected: Vec<&String> = tensors
            .keys()
            .filter(|key| !expected.contains(*key))
            .collect();
        unexpected.sort();
        if let Some(first) = unexpected.first() {
            bail!(
                "optimiser state has {} unexpected tensor(s), first `{first}`: no parameter of this optimiser has that name",
                unexpected.len()
            );
        }

        self.state = new_state;
        self.step = meta.step;
        for (group, group_meta) in self.groups.iter_mut().zip(&meta.groups) {
            group.lr = group_meta.lr;
        }
        Ok(())
    }
}

/// A group's gradients for one step, checked, with the sum of their squares.
struct GroupPlan {
    /// The gradient of each parameter (detached), `None` where the store has none.
    grads: Vec<Option<Tensor>>,
    /// Σ g² over the group's gradients, an f64 scalar on the device (0 if none had one).
    norm_sq: Tensor,
}

/// Looks up and checks a group's gradients and sums their squares, without changing anything
/// or reading anything back.
fn plan_group(group: &ParamGroup, grads: &GradStore) -> Result<GroupPlan> {
    let name = &group.name;
    let mut group_grads = Vec::with_capacity(group.params.len());
    let mut squares = Vec::with_capacity(group.params.len());
    for (index, var) in group.params.iter().enumerate() {
        let Some(grad) = grads.get(var.as_tensor()) else {
            group_grads.push(None);
            continue;
        };
        if grad.dims() != var.dims() {
            bail!(
                "parameter group `{name}` parameter {index}: gradient shape {:?} does not match parameter shape {:?}",
                grad.dims(),
                var.dims()
            );
        }
        if grad.dtype() != var.dtype() {
            bail!(
                "parameter group `{name}` parameter {index}: gradient dtype {:?} does not match parameter dtype {:?}",
                grad.dtype(),
                var.dtype()
            );
        }
        if !grad.device().same_device(var.device()) {
            bail!(
                "parameter group `{name}` parameter {index}: gradient is on {:?}, parameter on {:?}",
                grad.device().location(),
                var.device().location()
            );
        }
        // Detached so that the moments never hold on to the backward graph.
        let grad = grad.detach();
        let wide = match grad.dtype() {
            DType::F16 | DType::BF16 => grad.to_dtype(DType::F32)?,
            _ => grad.clone(),
        };
        squares.push(wide.sqr()?.sum_all()?.to_dtype(DType::F64)?);
        group_grads.push(Some(grad));
    }
    let norm_sq = match group.params.first() {
        _ if !squares.is_empty() => Tensor::stack(&squares, 0)?.sum_all()?,
        Some(var) => Tensor::zeros((), DType::F64, var.device())?,
        None => Tensor::zeros((), DType::F64, &candle_core::Device::Cpu)?,
    };
    Ok(GroupPlan {
        grads: group_grads,
        norm_sq,
    })
}

/// The checkpoint names of a parameter's first and second moments.
fn state_names(group: &str, index: usize) -> (String, String) {
    (format!("{group}.{index}.m"), format!("{group}.{index}.v"))
}

/// Takes one moment tensor from a checkpoint, checks it against its parameter and moves it to the
/// parameter's device (as a private copy).
fn load_moment(tensors: &HashMap<String, Tensor>, name: &str, var: &Var) -> Result<Tensor> {
    let Some(tensor) = tensors.get(name) else {
        bail!("optimiser state is missing tensor `{name}`");
    };
    if tensor.dims() != var.dims() {
        bail!(
            "optimiser state tensor `{name}` has shape {:?}, its parameter has shape {:?}",
            tensor.dims(),
            var.dims()
        );
    }
    if tensor.dtype() != var.dtype() {
        bail!(
            "optimiser state tensor `{name}` has dtype {:?}, its parameter has dtype {:?}",
            tensor.dtype(),
            var.dtype()
        );
    }
    tensor.to_device(var.device())?.detach().copy()
}
