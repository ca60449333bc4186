//! Coefficient sampling (docs/method.md §5) against the authors' recorded outputs and gradients
//! (`fixtures/reference/`, README §c, §e, §g) and against the scalar CPU reference in
//! `mclr_shared::operators`.
// Tests: a panic is a test failure with a message, which is what we want; the measured errors
// are printed (see them with `--nocapture`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use crate::device::device;
use crate::reference::{Fixture, Lcg, assert_close, assert_exact, flat_f64, rel_err};
use candle_core::{DType, Tensor, Var};
use mclr_shared::operators::{
    LOC_CLAMP, LaplaceSampler, Operators, PRIOR_LOGSCALE_MAX, SCALE_PRIOR_LN,
    reparameterize as scalar_reparameterize,
};
use mclr_trainer::sampling::{
    NoiseSource, best_of_j, laplace_deviation, prior_warmup, reparameterize,
};

fn var(t: &Tensor) -> Var {
    Var::from_tensor(t).unwrap()
}

fn grad(grads: &candle_core::backprop::GradStore, v: &Var) -> Tensor {
    grads.get(v.as_tensor()).expect("no gradient").clone()
}

fn zero_pattern(t: &Tensor) -> Vec<bool> {
    flat_f64(t).iter().map(|&x| x == 0.0).collect()
}

// ---------------------------------------------------------------- reparameterisation

fn check_reparam_fixture(file: &str) {
    let f = Fixture::load(file);
    let (shift, logscale) = (var(&f.get("input.shift")), var(&f.get("input.logscale")));
    let noise = f.get("input.noise");
    let zeta = f.scalar("param.lambda");
    let c = reparameterize(shift.as_tensor(), logscale.as_tensor(), &noise, zeta).unwrap();
    let want = f.get("output.c");
    assert_close(&format!("{file} c"), &c, &want, 1e-5);
    assert_eq!(
        zero_pattern(&c),
        zero_pattern(&want),
        "{file}: zero pattern"
    );
    // The rule, checked on the fixture's own deviations (so that any fixture of this kind
    // holds): a coefficient is non-zero exactly where |ε| > ζ (ε = 0 gives 0 even for ζ = 0).
    let expected_nonzero = flat_f64(&f.get("output.eps"))
        .iter()
        .filter(|e| e.abs() > zeta)
        .count();
    let nonzero = zero_pattern(&c).iter().filter(|z| !**z).count();
    assert!(
        nonzero > 0 && nonzero < zero_pattern(&c).len(),
        "{file}: a degenerate fixture"
    );
    assert_eq!(nonzero, expected_nonzero, "{file}: non-zero count");

    let eps = laplace_deviation(logscale.as_tensor(), &noise).unwrap();
    assert_close(&format!("{file} eps"), &eps, &f.get("output.eps"), 1e-6);

    let upstream = f.get("upstream.c");
    let g = (&c * &upstream)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_exact(
        &format!("{file} grad.shift"),
        &grad(&g, &shift),
        &f.get("grad.shift"),
    );
    assert_close(
        &format!("{file} grad.logscale"),
        &grad(&g, &logscale),
        &f.get("grad.logscale"),
        1e-5,
    );
}

#[test]
fn reparameterize_with_threshold_matches_reference() {
    check_reparam_fixture("reparam_laplace_lambda0p01.safetensors");
}

#[test]
fn reparameterize_without_threshold_matches_reference_and_zeroes_zero_deviation() {
    check_reparam_fixture("reparam_laplace_lambda0.safetensors");
    // noise[0,1] = 0 gives ε = 0 and therefore c = 0 even with ζ = 0.
    let f = Fixture::load("reparam_laplace_lambda0.safetensors");
    let c = reparameterize(
        &f.get("input.shift"),
        &f.get("input.logscale"),
        &f.get("input.noise"),
        0.0,
    )
    .unwrap();
    assert_eq!(flat_f64(&c)[1], 0.0);
}

#[test]
fn reparameterize_equals_the_scalar_cpu_reference() {
    let mut rng = Lcg::new(11);
    let n = 4000;
    let mu: Vec<f32> = rng.normals(n, 0.1);
    let ls: Vec<f32> = (0..n).map(|_| (rng.uniform() * 4.0 - 6.0) as f32).collect();
    let mut sampler = LaplaceSampler::new(5);
    let u: Vec<f32> = (0..n).map(|_| sampler.noise()).collect();
    let t = |v: &Vec<f32>| Tensor::from_vec(v.clone(), (n / 16, 16), &device()).unwrap();
    for zeta in [0.0f32, 0.01, 0.05] {
        let c = flat_f64(&reparameterize(&t(&mu), &t(&ls), &t(&u), f64::from(zeta)).unwrap());
        let want: Vec<f64> = (0..n)
            .map(|i| f64::from(scalar_reparameterize(mu[i], ls[i], u[i], zeta)))
            .collect();
        let err = rel_err(&c, &want);
        println!("zeta {zeta}: rel err {err:.3e} against mclr_shared::operators::reparameterize");
        assert!(err <= 1e-6);
        let pattern = |v: &[f64]| v.iter().map(|&x| x == 0.0).collect::<Vec<_>>();
        assert_eq!(pattern(&c), pattern(&want), "zeta {zeta}: zero pattern");
    }
}

#[test]
fn reparameterize_broadcasts_over_draws_and_sums_their_straight_through_gradients() {
    let mut rng = Lcg::new(12);
    let (j, b, m) = (3, 2, 4);
    let mu = var(&Tensor::from_vec(rng.normals(b * m, 0.2), (b, m), &device()).unwrap());
    let ls = var(
        &Tensor::from_vec(rng.normals(b * m, 0.3), (b, m), &device())
            .unwrap()
            .affine(1.0, -3.0)
            .unwrap(),
    );
    let noise = NoiseSource::new(3).uniform((j, b, m), &device()).unwrap();
    let c = reparameterize(mu.as_tensor(), ls.as_tensor(), &noise, 0.02).unwrap();
    assert_eq!(c.dims(), &[j, b, m]);
    let g = c.sum_all().unwrap().backward().unwrap();
    // dc/dμ = 1 for every draw, zeroed or not.
    let gmu = flat_f64(&grad(&g, &mu));
    assert!(gmu.iter().all(|&x| x == j as f64), "{gmu:?}");
    // dc/d ln b = ε, summed over draws.
    let ls_b = ls.as_tensor().broadcast_as((j, b, m)).unwrap();
    let eps_sum = laplace_deviation(&ls_b, &noise).unwrap().sum(0).unwrap();
    assert_close("grad.logscale over draws", &grad(&g, &ls), &eps_sum, 1e-6);
}

#[test]
fn reparameterize_rejects_mismatched_shapes_and_bad_threshold() {
    let d = device();
    let x = Tensor::zeros((2, 3), DType::F32, &d).unwrap();
    let y = Tensor::zeros((2, 4), DType::F32, &d).unwrap();
    let msg = |r: candle_core::Result<Tensor>| r.unwrap_err().to_string();
    assert!(msg(reparameterize(&x, &y, &x, 0.0)).contains("`logscale`"));
    assert!(msg(reparameterize(&x, &x, &y, 0.0)).contains("`noise`"));
    assert!(msg(reparameterize(&x, &x, &x, -1.0)).contains("`zeta`"));
}

// ---------------------------------------------------------------- noise

#[test]
fn noise_source_matches_the_shared_sampler_and_resumes_from_its_state() {
    let mut ours = NoiseSource::new(42);
    let mut shared = LaplaceSampler::new(42);
    for _ in 0..1000 {
        assert_eq!(ours.next_u(), shared.noise());
    }
    let state = ours.state();
    let a = ours.uniform((5, 4, 16), &device()).unwrap();
    let mut resumed = NoiseSource::from_state(state);
    let b = resumed.uniform((5, 4, 16), &device()).unwrap();
    assert_exact("resumed noise", &b, &a);
    assert_eq!(resumed.state(), ours.state());
    let values = flat_f64(&a);
    assert!(values.iter().all(|&u| (-0.5..0.5).contains(&u)));
    assert_eq!(a.dtype(), DType::F32);
}

// ---------------------------------------------------------------- prior warm-up

#[test]
fn prior_warmup_matches_reference_at_iterations_0_2500_5000() {
    let f = Fixture::load("coeff_encoder.safetensors");
    let warmup = f.scalar("param.prior_warmup_iters") as u64;
    // The learned prior from the raw heads, with shared's clamps (docs/method.md §4).
    let logscale_p = var(&f
        .get("output.prior_scale_raw")
        .clamp(f32::NEG_INFINITY, PRIOR_LOGSCALE_MAX)
        .unwrap()
        .affine(1.0, f64::from(SCALE_PRIOR_LN))
        .unwrap());
    let mu_p = var(&f
        .get("output.prior_shift_raw")
        .clamp(-LOC_CLAMP, LOC_CLAMP)
        .unwrap());
    for iter in [0u64, 2500, 5000] {
        let p = prior_warmup(logscale_p.as_tensor(), mu_p.as_tensor(), iter, warmup).unwrap();
        assert_close(
            &format!("prior_logscale_iter{iter}"),
            &p.logscale,
            &f.get(&format!("output.prior_logscale_iter{iter}")),
            1e-4,
        );
        assert_close(
            &format!("prior_shift_iter{iter}"),
            &p.loc,
            &f.get(&format!("output.prior_shift_iter{iter}")),
            1e-4,
        );
        if iter == 0 {
            assert!(
                flat_f64(&p.loc).iter().all(|&x| x == 0.0),
                "location exactly 0 at iter 0"
            );
        }
        // The sign is detached: d loc / d μ_p = w exactly, d ln b / d ln b_p = w.
        let w = (iter as f64 / warmup as f64).min(1.0);
        let g = (p.loc.sum_all().unwrap() + p.logscale.sum_all().unwrap())
            .unwrap()
            .backward()
            .unwrap();
        assert!(
            flat_f64(&grad(&g, &mu_p))
                .iter()
                .all(|&x| (x - w).abs() < 1e-7)
        );
        assert!(
            flat_f64(&grad(&g, &logscale_p))
                .iter()
                .all(|&x| (x - w).abs() < 1e-7)
        );
    }
}

#[test]
fn encoder_samples_match_reference_including_underflowed_scales() {
    let f = Fixture::load("coeff_encoder.safetensors");
    let c = reparameterize(
        &f.get("output.enc_shift"),
        &f.get("output.enc_logscale"),
        &f.get("input.noise"),
        0.0,
    )
    .unwrap();
    // Where exp(ln b) underflows in f32 (quirk 5) the f32 reference, and we, give 0.
    let underflow = flat_f64(&f.get("output.samples_f32_underflow"));
    assert_eq!(underflow.iter().filter(|&&x| x == 1.0).count(), 5);
    let got = flat_f64(&c);
    for (g, u) in got.iter().zip(&underflow) {
        if *u == 1.0 {
            assert_eq!(*g, 0.0);
        }
    }
    assert_close("samples", &c, &f.get("output.samples"), 1e-5);
}

// ---------------------------------------------------------------- best-of-J

#[test]
fn best_of_j_matches_reference_for_both_penalties() {
    let f = Fixture::load("best_of_j.safetensors");
    let psi = f.get("param.psi");
    let (m, k, n) = (psi.dims()[0], psi.dims()[1], psi.dims()[2]);
    let ops = Operators::new(m, k, n, psi.flatten_all().unwrap().to_vec1().unwrap()).unwrap();
    let x0 = f.get("input.x0");
    let x0_host: Vec<f32> = x0.flatten_all().unwrap().to_vec1().unwrap();
    let x1 = f.get("input.x1");
    let noise = f.get("input.noise");
    let zeta = f.scalar("param.lambda");
    let upstream = f.get("upstream.c");
    // The CPU operator reference, via a host round trip, stands in for the candle transport.
    let transport = |c: &Tensor| -> candle_core::Result<Tensor> {
        let dims = c.dims().to_vec();
        let coeffs: Vec<f32> = c.flatten_all()?.to_vec1()?;
        let out = ops
            .apply(&coeffs, &x0_host)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        Tensor::from_vec(out, (dims[0], dims[1], ops.dim()), c.device())
    };

    for suffix in ["", "_l1pen"] {
        let penalty = f.scalar(&format!("param.l1_penalty{suffix}"));
        let (shift, logscale) = (var(&f.get("input.shift")), var(&f.get("input.logscale")));
        let chosen = best_of_j(
            shift.as_tensor(),
            logscale.as_tensor(),
            &noise,
            &x1,
            zeta,
            penalty,
            transport,
        )
        .unwrap();
        let tag = |s: &str| format!("{s}{suffix}");
        assert_eq!(chosen.index.dtype(), DType::U32);
        let index: Vec<f64> = flat_f64(&chosen.index);
        assert_eq!(index, f.f64s(&tag("output.index")), "{}", tag("index"));
        assert_exact(
            &tag("noise_selected"),
            &chosen.noise,
            &f.get(&tag("output.noise_selected")),
        );
        assert_close(
            "c_per_draw",
            &chosen.c_per_draw,
            &f.get("output.c_per_draw"),
            1e-5,
        );
        assert_close(
            "loss_per_draw",
            &chosen.match_error,
            &f.get("output.loss_per_draw"),
            1e-5,
        );
        assert_close(
            &tag("score_per_draw"),
            &chosen.score,
            &f.get(&tag("output.score_per_draw")),
            1e-5,
        );
        assert_close(&tag("c"), &chosen.c, &f.get(&tag("output.c")), 1e-5);
        let g = (&chosen.c * &upstream)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert_exact(
            &tag("grad.shift"),
            &grad(&g, &shift),
            &f.get(&tag("grad.shift")),
        );
        assert_close(
            &tag("grad.logscale"),
            &grad(&g, &logscale),
            &f.get(&tag("grad.logscale")),
            1e-5,
        );
    }
}

#[test]
fn best_of_j_rejects_a_transport_of_the_wrong_shape() {
    let d = device();
    let mu = Tensor::zeros((2, 3), DType::F32, &d).unwrap();
    let noise = Tensor::zeros((4, 2, 3), DType::F32, &d).unwrap();
    let x1 = Tensor::zeros((2, 5), DType::F32, &d).unwrap();
    let err = best_of_j(&mu, &mu, &noise, &x1, 0.0, 0.0, |_| {
        Tensor::zeros((2, 5), DType::F32, &d)
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("`transport`"), "{err}");
    let err = best_of_j(&mu, &mu, &mu, &x1, 0.0, 0.0, |c| Ok(c.clone()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`noise`"), "{err}");
}
