//! AdamW with parameter groups: updates against torch's formulas evaluated in f64 here, per-group
//! clipping, skipped parameters, and checkpoint round trips that continue bit-for-bit.

// Tests unwrap: a panic is a test failure with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use mclr_trainer::optim::{AdamW, GroupSettings, OptimizerMeta, ParamGroup};
use mclr_trainer::schedule::LinearWarmupCosine;

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

/// torch.optim.AdamW's single-tensor update, in plain f64.
struct ReferenceAdamW {
    p: Vec<f64>,
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
}

impl ReferenceAdamW {
    fn new(p: &[f64]) -> Self {
        Self {
            p: p.to_vec(),
            m: vec![0.0; p.len()],
            v: vec![0.0; p.len()],
            t: 0,
        }
    }

    fn step(&mut self, g: &[f64], lr: f64, wd: f64) {
        self.t += 1;
        let t = f64::from(self.t);
        let step_size = lr / (1.0 - BETA1.powf(t));
        let bias_correction2_sqrt = (1.0 - BETA2.powf(t)).sqrt();
        assert_eq!(g.len(), self.p.len());
        for (((p, m), v), &g) in self.p.iter_mut().zip(&mut self.m).zip(&mut self.v).zip(g) {
            *p *= 1.0 - lr * wd;
            *m = BETA1 * *m + (1.0 - BETA1) * g;
            *v = BETA2 * *v + (1.0 - BETA2) * g * g;
            let denom = v.sqrt() / bias_correction2_sqrt + EPS;
            *p -= step_size * *m / denom;
        }
    }
}

/// torch.nn.utils.clip_grad_norm_ on one group, in plain f64.
fn reference_clip(g: &[f64], max_norm: f64) -> Vec<f64> {
    let norm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
    let coef = (max_norm / (norm + 1e-6)).min(1.0);
    g.iter().map(|x| x * coef).collect()
}

fn var(values: &[f64]) -> Var {
    Var::new(values, &Device::Cpu).unwrap()
}

fn values(var: &Var) -> Vec<f64> {
    var.as_tensor().to_vec1::<f64>().unwrap()
}

/// A group whose `lr` is what the test says (these tests never call `set_iteration`, so the
/// schedule is a placeholder).
fn group(name: &str, params: &[&Var], lr: f64, wd: f64, clip: Option<f64>) -> ParamGroup {
    ParamGroup {
        name: name.to_string(),
        params: params.iter().map(|&v| v.clone()).collect(),
        lr,
        weight_decay: wd,
        max_grad_norm: clip,
        schedule: LinearWarmupCosine::new(1e-3, 1e-3, 0.0, 1).unwrap(),
    }
}

fn grads(pairs: &[(&Var, &[f64])]) -> GradStore {
    let mut store = GradStore::default();
    for (var, g) in pairs {
        store.insert(var.as_tensor(), Tensor::new(*g, &Device::Cpu).unwrap());
    }
    store
}

fn assert_close(ours: &[f64], reference: &[f64], tol: f64, what: &str) {
    assert_eq!(ours.len(), reference.len(), "{what}");
    for (i, (a, b)) in ours.iter().zip(reference).enumerate() {
        assert!(
            (a - b).abs() <= tol * b.abs().max(1.0),
            "{what}[{i}]: ours {a:e}, reference {b:e}"
        );
    }
}

fn state(opt: &AdamW) -> HashMap<String, Tensor> {
    opt.state_tensors().into_iter().collect()
}

const GRADS: [[f64; 2]; 4] = [[0.1, -0.2], [0.3, 0.05], [-0.4, 0.2], [1e-3, -2.0]];

fn check_against_reference(lr: f64, wd: f64) {
    let p = var(&[0.5, -1.5]);
    let mut opt = AdamW::new(vec![group("g", &[&p], lr, wd, None)]).unwrap();
    let mut reference = ReferenceAdamW::new(&[0.5, -1.5]);
    for (step, g) in GRADS.iter().enumerate() {
        opt.step(&grads(&[(&p, g)])).unwrap();
        reference.step(g, lr, wd);
        let what = format!("lr {lr} wd {wd} step {}", step + 1);
        assert_close(&values(&p), &reference.p, 1e-14, &what);
        let st = state(&opt);
        assert_close(
            &st["g.0.m"].to_vec1::<f64>().unwrap(),
            &reference.m,
            1e-14,
            &what,
        );
        assert_close(
            &st["g.0.v"].to_vec1::<f64>().unwrap(),
            &reference.v,
            1e-14,
            &what,
        );
    }
    assert_eq!(opt.step_count(), 4);
    assert_eq!(opt.meta().groups[0].param_steps, vec![4]);
}

#[test]
fn adamw_without_weight_decay_matches_torch_formulas() {
    check_against_reference(1e-2, 0.0);
}

#[test]
fn adamw_with_weight_decay_matches_torch_formulas() {
    check_against_reference(1e-2, 0.1);
    check_against_reference(3e-3, 1e-5);
}

#[test]
fn first_step_moves_each_coordinate_by_lr_times_the_gradient_sign() {
    // m̂ = g and v̂ = g² at t = 1, so the step is lr · g / (|g| + eps).
    let p = var(&[0.5, -1.5]);
    let mut opt = AdamW::new(vec![group("g", &[&p], 1e-2, 0.0, None)]).unwrap();
    opt.step(&grads(&[(&p, &[0.1, -0.2])])).unwrap();
    let expected = [
        0.5 - 1e-2 * 0.1 / (0.1 + EPS),
        -1.5 + 1e-2 * 0.2 / (0.2 + EPS),
    ];
    assert_close(&values(&p), &expected, 1e-15, "first step");
}

#[test]
fn f32_parameters_follow_the_f64_reference_to_f32_precision() {
    let p = Var::new(&[0.5f32, -1.5], &Device::Cpu).unwrap();
    let mut opt = AdamW::new(vec![group("g", &[&p], 1e-2, 0.1, None)]).unwrap();
    let mut reference = ReferenceAdamW::new(&[0.5, -1.5]);
    for g in &GRADS {
        let mut store = GradStore::default();
        let g32: Vec<f32> = g.iter().map(|&x| x as f32).collect();
        store.insert(
            p.as_tensor(),
            Tensor::new(g32.as_slice(), &Device::Cpu).unwrap(),
        );
        opt.step(&store).unwrap();
        let g_rounded: Vec<f64> = g32.iter().map(|&x| f64::from(x)).collect();
        reference.step(&g_rounded, 1e-2, 0.1);
    }
    let ours: Vec<f64> = p
        .as_tensor()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    assert_close(&ours, &reference.p, 1e-6, "f32 parameters");
}

#[test]
fn clipping_scales_only_the_group_whose_norm_exceeds_its_max() {
    // Every group gets the gradient (3, 4) of norm 5.
    let g = [3.0, 4.0];
    let (a, b, c) = (var(&[1.0, 2.0]), var(&[1.0, 2.0]), var(&[1.0, 2.0]));
    let mut opt = AdamW::new(vec![
        group("clipped", &[&a], 1e-2, 0.0, Some(0.1)),
        group("unclipped", &[&b], 1e-2, 0.0, None),
        group("below", &[&c], 1e-2, 0.0, Some(10.0)),
    ])
    .unwrap();
    let mut refs: [ReferenceAdamW; 3] = std::array::from_fn(|_| ReferenceAdamW::new(&[1.0, 2.0]));
    for step in 0..3 {
        let report = opt.step(&grads(&[(&a, &g), (&b, &g), (&c, &g)])).unwrap();
        for group in &report.groups {
            assert_close(&[group.grad_norm], &[5.0], 1e-15, "pre-clip norm");
        }
        assert_close(
            &[report.groups[0].clip_coef],
            &[0.1 / (5.0 + 1e-6)],
            1e-15,
            "clip coef",
        );
        assert_eq!(report.groups[1].clip_coef, 1.0);
        assert_eq!(report.groups[2].clip_coef, 1.0);

        refs[0].step(&reference_clip(&g, 0.1), 1e-2, 0.0);
        refs[1].step(&g, 1e-2, 0.0);
        refs[2].step(&g, 1e-2, 0.0);
        for (var, reference) in [&a, &b, &c].iter().zip(&refs) {
            assert_close(&values(var), &reference.p, 1e-14, &format!("step {step}"));
        }
    }
    // The first moment after one step is (1 − β1) · g; after three it is (1 − β1³) · g, so it shows
    // the gradient each group actually used: scaled to max_norm (up to the 1e-6 of clip_grad_norm_)
    // in the clipped group, untouched in the others.
    let st = state(&opt);
    let m_norm = |name: &str| {
        let m = st[name].to_vec1::<f64>().unwrap();
        m.iter().map(|x| x * x).sum::<f64>().sqrt() / (1.0 - BETA1.powi(3))
    };
    assert_close(&[m_norm("clipped.0.m")], &[0.1], 1e-6, "clipped norm");
    assert_close(&[m_norm("unclipped.0.m")], &[5.0], 1e-14, "unclipped norm");
    assert_close(&[m_norm("below.0.m")], &[5.0], 1e-14, "below-max norm");
}

#[test]
fn the_clip_norm_is_the_total_over_the_groups_parameters() {
    let (p, q) = (var(&[0.0, 0.0]), var(&[0.0]));
    let mut opt = AdamW::new(vec![group("g", &[&p, &q], 1e-3, 0.0, Some(1.0))]).unwrap();
    let report = opt
        .step(&grads(&[(&p, &[2.0, 4.0]), (&q, &[4.0])]))
        .unwrap();
    assert_close(&[report.groups[0].grad_norm], &[6.0], 1e-15, "total norm");
    let st = state(&opt);
    let coef = 1.0 / (6.0 + 1e-6);
    let expected_m = |g: &[f64]| {
        g.iter()
            .map(|x| (1.0 - BETA1) * x * coef)
            .collect::<Vec<_>>()
    };
    assert_close(
        &st["g.0.m"].to_vec1::<f64>().unwrap(),
        &expected_m(&[2.0, 4.0]),
        1e-15,
        "p",
    );
    assert_close(
        &st["g.1.m"].to_vec1::<f64>().unwrap(),
        &expected_m(&[4.0]),
        1e-15,
        "q",
    );
}

#[test]
fn groups_with_different_learning_rates_move_by_different_amounts() {
    let (fast, slow) = (var(&[1.0, 1.0]), var(&[1.0, 1.0]));
    let mut opt = AdamW::new(vec![
        group("fast", &[&fast], 1e-2, 0.0, None),
        group("slow", &[&slow], 1e-3, 0.0, None),
    ])
    .unwrap();
    let report = opt
        .step(&grads(&[(&fast, &[0.5, -0.5]), (&slow, &[0.5, -0.5])]))
        .unwrap();
    assert_eq!(report.groups[0].lr, 1e-2);
    assert_eq!(report.groups[1].lr, 1e-3);
    let moved = |v: &Var| {
        values(v)
            .iter()
            .map(|x| (x - 1.0).abs())
            .collect::<Vec<_>>()
    };
    let (fast_moved, slow_moved) = (moved(&fast), moved(&slow));
    for i in 0..2 {
        assert_close(&[fast_moved[i]], &[10.0 * slow_moved[i]], 1e-9, "ratio");
        assert_close(&[fast_moved[i]], &[1e-2], 1e-6, "fast step");
    }
}

#[test]
fn a_parameter_without_a_gradient_is_left_alone_and_keeps_its_own_step_count() {
    let (p, idle) = (var(&[0.5, -1.5]), var(&[2.0, 3.0]));
    let mut opt = AdamW::new(vec![group("g", &[&p, &idle], 1e-2, 0.1, None)]).unwrap();
    for g in &GRADS[..2] {
        let report = opt.step(&grads(&[(&p, g)])).unwrap();
        assert_eq!(report.groups[0].updated, 1);
    }
    // Bitwise unchanged: no weight decay either.
    assert_eq!(values(&idle), vec![2.0, 3.0]);
    assert_eq!(opt.meta().groups[0].param_steps, vec![2, 0]);
    assert_eq!(
        state(&opt)["g.1.m"].to_vec1::<f64>().unwrap(),
        vec![0.0, 0.0]
    );

    // Its first update then uses bias correction for t = 1, as torch's lazily created state does.
    opt.step(&grads(&[(&idle, &[0.3, -0.1])])).unwrap();
    let mut reference = ReferenceAdamW::new(&[2.0, 3.0]);
    reference.step(&[0.3, -0.1], 1e-2, 0.1);
    assert_close(
        &values(&idle),
        &reference.p,
        1e-15,
        "first update of the idle parameter",
    );
    assert_eq!(opt.meta().groups[0].param_steps, vec![2, 1]);
    assert_eq!(opt.step_count(), 3);
}

#[test]
fn set_iteration_applies_each_groups_schedule() {
    let (p, q) = (var(&[1.0]), var(&[1.0]));
    let backbone = GroupSettings {
        lr: 3e-3,
        weight_decay: 1e-5,
        floor: 1e-5,
        max_grad_norm: None,
    };
    let operators = GroupSettings {
        lr: 1e-3,
        weight_decay: 1e-3,
        floor: 1e-6,
        max_grad_norm: Some(0.1),
    };
    let mut opt = AdamW::new(vec![
        ParamGroup::new("backbone", vec![p], &backbone, 100.0, 1000).unwrap(),
        ParamGroup::new("operators", vec![q], &operators, 100.0, 1000).unwrap(),
    ])
    .unwrap();
    assert_eq!(opt.lrs(), vec![0.0, 0.0]);
    opt.set_iteration(100);
    assert_eq!(opt.lrs(), vec![3e-3, 1e-3]);
    opt.set_iteration(1000);
    assert_eq!(opt.lrs(), vec![1e-5, 1e-6]);
    let groups = opt.groups();
    assert_eq!(groups[1].max_grad_norm, Some(0.1));
    assert_eq!(groups[1].weight_decay, 1e-3);
}

/// A two-group model with f32 matrices, trained on a real backward pass; `skip_q_at` leaves the
/// second group's parameter out of the graph at that step.
struct Run {
    w: Var,
    q: Var,
    opt: AdamW,
}

impl Run {
    fn new(w: &[f32], q: &[f32]) -> Self {
        let w = Var::from_tensor(
            &Tensor::new(w, &Device::Cpu)
                .unwrap()
                .reshape((2, 3))
                .unwrap(),
        )
        .unwrap();
        let q = Var::new(q, &Device::Cpu).unwrap();
        let backbone = GroupSettings {
            lr: 3e-3,
            weight_decay: 1e-5,
            floor: 1e-5,
            max_grad_norm: None,
        };
        let operators = GroupSettings {
            lr: 1e-3,
            weight_decay: 1e-3,
            floor: 1e-6,
            max_grad_norm: Some(0.1),
        };
        let opt = AdamW::new(vec![
            ParamGroup::new("backbone", vec![w.clone()], &backbone, 2.0, 10).unwrap(),
            ParamGroup::new("operators", vec![q.clone()], &operators, 2.0, 10).unwrap(),
        ])
        .unwrap();
        Self { w, q, opt }
    }

    fn iteration(&mut self, iter: u64) {
        let x = Tensor::new(&[[1.0f32, -2.0, 0.5], [0.25, 1.5, -1.0]], &Device::Cpu).unwrap();
        let scale = 1.0 + iter as f64;
        let mut loss = (self.w.as_tensor() * &x)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        if iter != 1 {
            let q_term = (self.q.as_tensor().sum_all().unwrap() * scale)
                .unwrap()
                .sqr()
                .unwrap();
            loss = (loss + q_term).unwrap();
        }
        let grads = loss.backward().unwrap();
        self.opt.set_iteration(iter);
        self.opt.step(&grads).unwrap();
    }

    fn bits(&self) -> Vec<u32> {
        let w = self
            .w
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let q = self.q.as_tensor().to_vec1::<f32>().unwrap();
        w.iter().chain(&q).map(|x| x.to_bits()).collect()
    }

    fn state_bits(&self) -> Vec<(String, Vec<u32>)> {
        self.opt
            .state_tensors()
            .into_iter()
            .map(|(name, t)| {
                let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                (name, v.iter().map(|x| x.to_bits()).collect())
            })
            .collect()
    }
}

const W0: [f32; 6] = [0.3, -0.7, 1.1, 0.05, -0.4, 0.9];
const Q0: [f32; 2] = [0.2, -0.6];

/// Saves a run the way a checkpoint does: tensors through a safetensors file, meta through JSON.
fn checkpoint(run: &Run, dir: &std::path::Path) -> (OptimizerMeta, HashMap<String, Tensor>) {
    let path = dir.join("optim.safetensors");
    let tensors: HashMap<String, Tensor> = run.opt.state_tensors().into_iter().collect();
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let json = serde_json::to_string(&run.opt.meta()).unwrap();
    let meta: OptimizerMeta = serde_json::from_str(&json).unwrap();
    assert_eq!(meta, run.opt.meta());
    (
        meta,
        candle_core::safetensors::load(&path, &Device::Cpu).unwrap(),
    )
}

/// A fresh run whose parameters are copies of `run`'s (as a model checkpoint would restore them).
fn fresh_copy(run: &Run) -> Run {
    let w = run
        .w
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let q = run.q.as_tensor().to_vec1::<f32>().unwrap();
    Run::new(&w, &q)
}

#[test]
fn a_restored_optimiser_continues_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let mut continuous = Run::new(&W0, &Q0);
    let mut interrupted = Run::new(&W0, &Q0);
    for iter in 0..2 {
        continuous.iteration(iter);
        interrupted.iteration(iter);
    }
    // Iteration 1 left the operator out of the graph, so its step count lags.
    assert_eq!(interrupted.opt.meta().groups[1].param_steps, vec![1]);
    let (meta, tensors) = checkpoint(&interrupted, dir.path());
    let mut resumed = fresh_copy(&interrupted);
    resumed.opt.load_state(&meta, &tensors).unwrap();
    assert_eq!(resumed.opt.meta(), continuous.opt.meta());

    for iter in 2..5 {
        continuous.iteration(iter);
        resumed.iteration(iter);
        assert_eq!(
            resumed.bits(),
            continuous.bits(),
            "parameters at iteration {iter}"
        );
        assert_eq!(
            resumed.state_bits(),
            continuous.state_bits(),
            "state at iteration {iter}"
        );
    }
    assert_eq!(resumed.opt.meta(), continuous.opt.meta());
}

#[test]
fn state_tensors_have_stable_names_in_group_and_parameter_order() {
    let run = Run::new(&W0, &Q0);
    let names: Vec<String> = run
        .opt
        .state_tensors()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        [
            "backbone.0.m",
            "backbone.0.v",
            "operators.0.m",
            "operators.0.v"
        ]
    );
}

fn trained_checkpoint() -> (Run, OptimizerMeta, HashMap<String, Tensor>) {
    let mut run = Run::new(&W0, &Q0);
    run.iteration(0);
    let meta = run.opt.meta();
    let tensors = state(&run.opt);
    (run, meta, tensors)
}

/// `load_state` fails with a message containing `needle`, and the optimiser is unchanged.
fn assert_load_fails(meta: &OptimizerMeta, tensors: &HashMap<String, Tensor>, needle: &str) {
    let mut fresh = Run::new(&W0, &Q0);
    let before = fresh.state_bits();
    let message = fresh.opt.load_state(meta, tensors).unwrap_err().to_string();
    assert!(
        message.contains(needle),
        "{message:?} should mention {needle:?}"
    );
    assert_eq!(fresh.state_bits(), before);
    assert_eq!(fresh.opt.step_count(), 0);
}

#[test]
fn a_missing_state_tensor_is_reported_by_name() {
    let (_, meta, mut tensors) = trained_checkpoint();
    tensors.remove("operators.0.v");
    assert_load_fails(&meta, &tensors, "missing tensor `operators.0.v`");
}

#[test]
fn a_misshapen_state_tensor_is_reported_by_name_and_shape() {
    let (_, meta, mut tensors) = trained_checkpoint();
    tensors.insert(
        "backbone.0.m".into(),
        Tensor::zeros((3, 2), DType::F32, &Device::Cpu).unwrap(),
    );
    assert_load_fails(
        &meta,
        &tensors,
        "`backbone.0.m` has shape [3, 2], its parameter has shape [2, 3]",
    );
}

#[test]
fn a_state_tensor_of_another_dtype_is_reported_by_name() {
    let (_, meta, mut tensors) = trained_checkpoint();
    tensors.insert(
        "operators.0.m".into(),
        Tensor::zeros(2, DType::F64, &Device::Cpu).unwrap(),
    );
    assert_load_fails(&meta, &tensors, "`operators.0.m` has dtype F64");
}

#[test]
fn an_unexpected_state_tensor_is_reported_by_name() {
    let (_, meta, mut tensors) = trained_checkpoint();
    tensors.insert(
        "encoder.0.m".into(),
        Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap(),
    );
    assert_load_fails(&meta, &tensors, "`encoder.0.m`");
}

#[test]
fn meta_for_other_groups_is_rejected() {
    let (_, meta, tensors) = trained_checkpoint();
    let mut renamed = meta.clone();
    renamed.groups[1].name = "encoder".into();
    assert_load_fails(&renamed, &tensors, "parameter group 1 is `encoder`");

    let mut fewer = meta.clone();
    fewer.groups.pop();
    assert_load_fails(&fewer, &tensors, "1 parameter groups, this optimiser has 2");

    let mut more_params = meta.clone();
    more_params.groups[0].param_steps.push(0);
    assert_load_fails(&more_params, &tensors, "group `backbone` has 2 parameters");

    let mut impossible = meta;
    impossible.groups[0].param_steps[0] = 7;
    assert_load_fails(
        &impossible,
        &tensors,
        "group `backbone` parameter 0 has 7 updates",
    );
}

#[test]
fn a_bad_gradient_fails_the_step_without_touching_anything() {
    let (p, q) = (var(&[0.5, -1.5]), var(&[1.0]));
    let mut opt = AdamW::new(vec![
        group("first", &[&p], 1e-2, 0.1, None),
        group("second", &[&q], 1e-2, 0.1, None),
    ])
    .unwrap();

    let message = opt
        .step(&grads(&[(&p, &[0.1, 0.2]), (&q, &[f64::NAN])]))
        .unwrap_err()
        .to_string();
    assert!(message.contains("group `second`"), "{message}");
    assert!(message.contains("NaN"), "{message}");

    let message = opt
        .step(&grads(&[(&p, &[0.1, 0.2, 0.3]), (&q, &[1.0])]))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("group `first` parameter 0: gradient shape [3]"),
        "{message}"
    );

    assert_eq!(values(&p), vec![0.5, -1.5]);
    assert_eq!(values(&q), vec![1.0]);
    assert_eq!(opt.step_count(), 0);
    assert_eq!(opt.meta().groups[0].param_steps, vec![0]);
}

#[test]
fn invalid_groups_are_rejected_with_the_group_named() {
    let (p, q) = (var(&[1.0]), var(&[2.0]));
    let cases = [
        (
            vec![
                group("a", &[&p], 1e-3, 0.0, None),
                group("a", &[&q], 1e-3, 0.0, None),
            ],
            "two parameter groups are named `a`",
        ),
        (
            vec![
                group("a", &[&p], 1e-3, 0.0, None),
                group("b", &[&p], 1e-3, 0.0, None),
            ],
            "parameter 0 of group `b` is also parameter 0 of group `a`",
        ),
        (
            vec![group("a", &[&p, &p], 1e-3, 0.0, None)],
            "group `a`: parameter 1 appears twice",
        ),
        (
            vec![group("a.b", &[&p], 1e-3, 0.0, None)],
            "`a.b` must be non-empty and must not contain `.`",
        ),
        (vec![group("", &[&p], 1e-3, 0.0, None)], "must be non-empty"),
        (vec![group("a", &[&p], -1e-3, 0.0, None)], "group `a`: lr"),
        (
            vec![group("a", &[&p], 1e-3, f64::NAN, None)],
            "group `a`: weight decay",
        ),
        (
            vec![group("a", &[&p], 1e-3, 0.0, Some(0.0))],
            "group `a`: max grad norm",
        ),
    ];
    for (groups, needle) in cases {
        let message = AdamW::new(groups).unwrap_err().to_string();
        assert!(
            message.contains(needle),
            "{message:?} should mention {needle:?}"
        );
    }
    let ints = Var::new(&[1u32, 2], &Device::Cpu).unwrap();
    let message = AdamW::new(vec![group("ints", &[&ints], 1e-3, 0.0, None)])
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("group `ints`: parameter 0 has dtype U32"),
        "{message}"
    );
}

#[test]
fn an_empty_group_steps_with_zero_norm() {
    let p = var(&[1.0]);
    let mut opt = AdamW::new(vec![
        group("empty", &[], 1e-3, 0.0, Some(1.0)),
        group("g", &[&p], 1e-3, 0.0, None),
    ])
    .unwrap();
    let report = opt.step(&grads(&[(&p, &[1.0])])).unwrap();
    assert_eq!(report.groups[0].grad_norm, 0.0);
    assert_eq!(report.groups[0].updated, 0);
    assert_eq!(report.groups[1].updated, 1);
}
