//! The learning-rate schedule against the reference's `LinearWarmupCosineAnnealingLR`
//! (`fixtures/reference/lr_schedule.safetensors`, README §f and quirk 7).

// Tests unwrap: a panic is a test failure with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use mclr_trainer::schedule::LinearWarmupCosine;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/reference/lr_schedule.safetensors"
);

fn fixture() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(FIXTURE, &Device::Cpu).unwrap()
}

fn f64s(tensors: &HashMap<String, Tensor>, name: &str) -> Vec<f64> {
    tensors[name].to_vec1::<f64>().unwrap()
}

/// The fixture's schedule for group `g`, built from its stored parameters.
fn schedule_for_group(tensors: &HashMap<String, Tensor>, g: usize) -> LinearWarmupCosine {
    let base = f64s(tensors, "param.base_lr")[g];
    let floor = f64s(tensors, "param.eta_min")[g];
    let warmup = tensors["param.warmup_iters"].to_scalar::<i64>().unwrap() as f64;
    let max = u64::try_from(tensors["param.max_iters"].to_scalar::<i64>().unwrap()).unwrap();
    LinearWarmupCosine::new(base, floor, warmup, max).unwrap()
}

fn assert_rel_close(ours: f64, reference: f64, tol: f64, what: &str) {
    assert!(
        (ours - reference).abs() <= tol * reference.abs(),
        "{what}: ours {ours:e}, reference {reference:e}"
    );
}

#[test]
fn every_group_matches_the_reference_schedule_at_every_iteration() {
    let tensors = fixture();
    let iters = tensors["input.iter"].to_vec1::<i64>().unwrap();
    assert_eq!(iters.len(), 1001);
    for g in 0..3 {
        let schedule = schedule_for_group(&tensors, g);
        let reference = f64s(&tensors, &format!("output.lr_group{g}"));
        for (&iter, &lr) in iters.iter().zip(&reference) {
            let iter = u64::try_from(iter).unwrap();
            assert_rel_close(
                schedule.lr_at(iter),
                lr,
                1e-12,
                &format!("group {g} iteration {iter}"),
            );
        }
    }
}

#[test]
fn backbone_group_matches_the_reference_closed_form() {
    let tensors = fixture();
    let schedule = schedule_for_group(&tensors, 0);
    let reference = f64s(&tensors, "output.lr_closed_form_group0");
    for (iter, &lr) in (0u64..).zip(&reference) {
        assert_rel_close(
            schedule.lr_at(iter),
            lr,
            1e-12,
            &format!("iteration {iter}"),
        );
    }
}

#[test]
fn warmup_starts_at_zero_peaks_one_before_its_end_and_anneals_to_the_group_floor() {
    let tensors = fixture();
    for g in 0..3 {
        let schedule = schedule_for_group(&tensors, g);
        let base = schedule.base_lr();
        assert_eq!(schedule.lr_at(0), 0.0);
        assert_rel_close(schedule.lr_at(99), base, 1e-15, "peak at W - 1");
        assert!(schedule.lr_at(98) < schedule.lr_at(99));
        assert_eq!(schedule.lr_at(100), base);
        assert!(schedule.lr_at(101) < base);
        assert_eq!(schedule.lr_at(1000), schedule.floor());
    }
    // The operator and encoder groups anneal to their own floor, not the scheduler's 1e-5.
    assert_eq!(schedule_for_group(&tensors, 1).lr_at(1000), 1e-6);
    assert_eq!(schedule_for_group(&tensors, 0).lr_at(1000), 1e-5);
}

#[test]
fn from_epochs_warms_up_over_ten_epochs_of_iterations() {
    let tensors = fixture();
    // The fixture's run: 100 epochs of 10 iterations, warm-up 10 epochs.
    let schedule = LinearWarmupCosine::from_epochs(3e-3, 1e-5, 10.0, 10, 100).unwrap();
    assert_eq!(schedule.warmup_iters(), 100.0);
    assert_eq!(schedule.max_iters(), 1000);
    assert_eq!(schedule, schedule_for_group(&tensors, 0));
}

#[test]
fn past_the_last_iteration_the_floor_is_held() {
    let schedule = LinearWarmupCosine::new(2e-3, 1e-5, 10.0, 100).unwrap();
    for iter in [100, 101, 150, 200, 10_000, u64::MAX] {
        assert_eq!(schedule.lr_at(iter), 1e-5, "iteration {iter}");
    }
}

#[test]
fn zero_warmup_starts_at_the_base_rate() {
    let schedule = LinearWarmupCosine::new(1e-3, 1e-6, 0.0, 10).unwrap();
    assert_eq!(schedule.lr_at(0), 1e-3);
    assert!(schedule.lr_at(1) < 1e-3);
}

#[test]
fn warmup_longer_than_the_run_ramps_linearly_throughout() {
    let schedule = LinearWarmupCosine::new(1e-3, 1e-6, 50.0, 20).unwrap();
    for iter in 0..20 {
        assert_rel_close(
            schedule.lr_at(iter),
            iter as f64 * 1e-3 / 49.0,
            1e-15,
            &format!("iteration {iter}"),
        );
    }
}

#[test]
fn invalid_settings_are_rejected_with_the_setting_named() {
    let cases = [
        (LinearWarmupCosine::new(-1e-3, 0.0, 1.0, 10), "base lr"),
        (LinearWarmupCosine::new(f64::NAN, 0.0, 1.0, 10), "base lr"),
        (LinearWarmupCosine::new(1e-3, -1.0, 1.0, 10), "floor"),
        (
            LinearWarmupCosine::new(1e-3, 0.0, f64::INFINITY, 10),
            "warm-up",
        ),
        (
            LinearWarmupCosine::from_epochs(1e-3, 0.0, 1.0, u64::MAX, 2),
            "overflow",
        ),
    ];
    for (result, needle) in cases {
        let message = result.unwrap_err().to_string();
        assert!(
            message.contains(needle),
            "{message:?} should mention {needle:?}"
        );
    }
}
