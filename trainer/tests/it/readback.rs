//! The training step reads nothing back from the device: loss terms and gradient norms stay
//! there until the loop logs or ends an epoch. On the CPU the reads are counted
//! (`mclr_trainer::readback`), and clippy forbids uncounted ones in the step's code.

// A panic in a test is a failure with a message, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use candle_core::{DType, Device, Tensor};
use mclr_trainer::config::Config;
use mclr_trainer::expm::expm_composite;
use mclr_trainer::model::ssl::SslModel;
use mclr_trainer::readback;
use mclr_trainer::train::monitor::{Divergence, StepMonitor, first_divergence};
use mclr_trainer::train::optimizer_for;
use mclr_trainer::train::step::{Objective, StepOutput, StepTensors};

fn shrunk(name: &str, extra: &[&str]) -> Config {
    let mut sets: Vec<String> = [
        "model.base_width=4",
        "method.block_size=8",
        "method.operators=4",
        "model.projection_hidden=16",
        "model.projection_dim=8",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    sets.extend(extra.iter().map(|s| (*s).to_owned()));
    Config::resolve(name, &sets).unwrap()
}

fn views(seed: u64) -> Tensor {
    let mut state = seed;
    let values: Vec<f32> = (0..8 * 3 * 32 * 32)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    Tensor::from_vec(values, (8, 3, 32, 32), &Device::Cpu).unwrap()
}

#[test]
fn training_steps_read_nothing_back_until_the_monitor_is_read() {
    for (name, extra) in [
        ("demo", &[][..]),
        // Head, soft threshold and best-of-J sampling, all active from the first step.
        (
            "cifar10-manifoldclr-thresh",
            &["method.best_of_j_start=0", "method.prior_warmup_iters=1"][..],
        ),
        ("cifar10-simclr", &[][..]),
        // The feature-augmentation ablations (their noise is drawn on the host and uploaded).
        ("cifar10-simclr-gaussaug", &[][..]),
        ("cifar10-simclr-mixup", &[][..]),
    ] {
        let config = shrunk(name, extra);
        let model = SslModel::new(&config, 32, &Device::Cpu).unwrap();
        let mut optimizer = optimizer_for(&config, &model, 100).unwrap();
        let mut objective = Objective::new(&config);
        let mut monitor = StepMonitor::new();
        let before = readback::count();
        for step in 0..3 {
            optimizer.set_iteration(step);
            let out = objective
                .step(&model, &views(2 * step), &views(2 * step + 1), step)
                .unwrap();
            let report = optimizer
                .step_deferred(&out.loss.backward().unwrap())
                .unwrap();
            monitor.record(step, &out, report).unwrap();
        }
        assert_eq!(
            readback::count(),
            before,
            "{name}: a training step read back"
        );
        let steps = monitor.read().unwrap();
        assert_eq!(
            readback::count(),
            before + 1,
            "{name}: three steps, one read"
        );
        assert_eq!(steps.iter().map(|s| s.step).collect::<Vec<_>>(), [0, 1, 2]);
        for s in &steps {
            assert!(
                s.terms.total.is_finite() && s.terms.contrastive > 0.0,
                "{name}: {s:?}"
            );
            assert_eq!(s.grad_norm.len(), optimizer.groups().len(), "{name}");
            assert!(
                s.grad_norm.values().all(|g| g.is_finite() && *g > 0.0),
                "{name}: {s:?}"
            );
        }
        assert_eq!(monitor.pending(), 0);
        assert!(monitor.read().unwrap().is_empty());
        assert_eq!(
            readback::count(),
            before + 1,
            "{name}: nothing pending, nothing read"
        );
    }
}

#[test]
fn the_deferred_step_updates_exactly_as_the_checked_step() {
    // This config clips the operator (max norm 0.1) and encoder (1.0) groups.
    let config = shrunk("cifar10-manifoldclr-thresh", &["method.best_of_j_start=0"]);
    let run = |deferred: bool| {
        let model = SslModel::new(&config, 32, &Device::Cpu).unwrap();
        let mut optimizer = optimizer_for(&config, &model, 100).unwrap();
        let mut objective = Objective::new(&config);
        let mut norms = Vec::new();
        for step in 0..2 {
            optimizer.set_iteration(step);
            let out = objective
                .step(&model, &views(7 + step), &views(9 + step), step)
                .unwrap();
            let grads = out.loss.backward().unwrap();
            if deferred {
                let report = optimizer.step_deferred(&grads).unwrap();
                norms.extend(readback::to_f64s(&report.grad_norms).unwrap());
            } else {
                let report = optimizer.step(&grads).unwrap();
                norms.extend(report.groups.iter().map(|g| g.grad_norm));
            }
        }
        let data = model.varmap.data().lock().unwrap();
        let mut weights: Vec<(String, Vec<f32>)> = data
            .iter()
            .map(|(n, v)| {
                (
                    n.clone(),
                    v.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                )
            })
            .collect();
        weights.sort_by(|a, b| a.0.cmp(&b.0));
        (norms, weights)
    };
    let (norms_checked, checked) = run(false);
    let (norms_deferred, deferred) = run(true);
    assert_eq!(norms_checked, norms_deferred);
    // Equal as numbers (the deferred step multiplies by a clip factor of exactly 1 where the
    // checked one skips it, which can only turn -0 into +0).
    assert_eq!(checked, deferred);
}

#[test]
fn the_off_cpu_matrix_exponential_reads_its_plan_once_per_call() {
    let a = Tensor::from_vec(
        (0..2 * 3 * 4 * 4)
            .map(|i| (i % 7) as f32 * 0.1)
            .collect::<Vec<_>>(),
        (2, 3, 4, 4),
        &Device::Cpu,
    )
    .unwrap();
    let before = readback::count();
    expm_composite(&a).unwrap();
    assert_eq!(readback::count(), before + 1);
    // The CPU op plans from the data it already holds.
    mclr_trainer::expm::expm(&a).unwrap();
    assert_eq!(readback::count(), before + 1);
}

fn output(terms: [f64; 5]) -> StepOutput {
    let z = Tensor::zeros((2, 4), DType::F32, &Device::Cpu).unwrap();
    StepOutput {
        loss: Tensor::new(terms[4], &Device::Cpu).unwrap(),
        terms: Tensor::new(&terms, &Device::Cpu).unwrap(),
        kl_weight: 0.5,
        tensors: StepTensors {
            z0: z.clone(),
            z1: z,
            manifold: None,
            z_aug: None,
        },
    }
}

fn report(norms: [f64; 2]) -> mclr_trainer::optim::DeferredStepReport {
    mclr_trainer::optim::DeferredStepReport {
        names: vec!["backbone".into(), "operators".into()],
        lrs: vec![0.1, 0.2],
        grad_norms: Tensor::new(&norms, &Device::Cpu).unwrap(),
    }
}

#[test]
fn the_monitor_finds_the_first_non_finite_step_loss_terms_first() {
    let mut monitor = StepMonitor::new();
    monitor
        .record(10, &output([1.0, 2.0, 3.0, 4.0, 5.0]), report([0.5, 0.25]))
        .unwrap();
    monitor
        .record(
            11,
            &output([1.0, 2.0, 3.0, 4.0, 5.0]),
            report([f64::INFINITY, 0.25]),
        )
        .unwrap();
    monitor
        .record(
            12,
            &output([1.0, f64::NAN, 3.0, 4.0, f64::NAN]),
            report([f64::NAN, 0.0]),
        )
        .unwrap();
    let steps = monitor.read().unwrap();
    assert_eq!(steps.len(), 3);
    assert_eq!(steps[0].terms.kl, 3.0);
    assert_eq!(steps[0].terms.kl_weight, 0.5);
    assert_eq!(steps[0].lr["operators"], 0.2);
    assert_eq!(steps[0].grad_norm["backbone"], 0.5);
    assert_eq!(
        first_divergence(&steps),
        Some(Divergence::Gradient {
            step: 11,
            group: "backbone".into(),
            value: f64::INFINITY
        })
    );
    match first_divergence(&steps[2..]) {
        Some(Divergence::Loss {
            step: 12,
            term: "manifold",
            value,
        }) => assert!(value.is_nan()),
        other => panic!("{other:?}"),
    }
    assert_eq!(first_divergence(&steps[..1]), None);
}
