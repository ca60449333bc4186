//! Block-diagonal transport, paths, Laplace sampling and the prior/encoder heads, against dense
//! references, closed forms and the authors' PyTorch outputs (fixtures README §c–§e, §g).
// Helpers outside #[test] fns may unwrap: a panic in a test is a failure with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::{Fixture, TestRng, assert_close, assert_close_f32};
use mclr_shared::expm::expm_pade13;
use mclr_shared::operators::{
    CoefficientEncoder, LaplaceSampler, Linear, Mlp, Operators, PathStepper, PriorNetwork,
    laplace_deviation, path, prior_warmup_weight, reparameterize, warm_up_prior,
};

fn widen(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| f64::from(v)).collect()
}

fn operators_from(fx: &Fixture, key: &str) -> Operators {
    let shape = fx.shape(key);
    Operators::new(shape[0], shape[1], shape[2], fx.f32s(key)).unwrap()
}

fn random_operators(rng: &mut TestRng, m: usize, k: usize, n: usize, scale: f64) -> Operators {
    let psi = rng
        .normals(m * k * n * n)
        .iter()
        .map(|x| (x * scale) as f32)
        .collect();
    Operators::new(m, k, n, psi).unwrap()
}

/// Dense d×d block-diagonal T(c) built in f64 from Padé-13 exponentials of each block.
fn dense_transport(ops: &Operators, c: &[f32]) -> Vec<f64> {
    let (k, n, d) = (ops.blocks(), ops.block_size(), ops.dim());
    let mut dense = vec![0.0; d * d];
    for blk in 0..k {
        let mut a = vec![0.0f64; n * n];
        for (m, &cm) in c.iter().enumerate() {
            for (x, &p) in a.iter_mut().zip(ops.generator(m, blk).unwrap()) {
                *x += f64::from(cm) * f64::from(p);
            }
        }
        let e = expm_pade13(&a, n).unwrap();
        for i in 0..n {
            for j in 0..n {
                dense[(blk * n + i) * d + blk * n + j] = e[i * n + j];
            }
        }
    }
    dense
}

fn dense_apply(dense: &[f64], z: &[f32]) -> Vec<f64> {
    let d = z.len();
    (0..d)
        .map(|i| (0..d).map(|j| dense[i * d + j] * f64::from(z[j])).sum())
        .collect()
}

#[test]
fn apply_matches_dense_512_block_diagonal_reference() {
    let mut rng = TestRng::new(10);
    let (m, k, n) = (16, 8, 64);
    let ops = random_operators(&mut rng, m, k, n, 0.02);
    let (s, b) = (3, 2);
    let c: Vec<f32> = rng
        .normals(s * b * m)
        .iter()
        .map(|x| (x * 0.5) as f32)
        .collect();
    let z: Vec<f32> = rng
        .normals(b * ops.dim())
        .iter()
        .map(|x| x.max(0.0) as f32)
        .collect();
    // (S, B, M) coefficients broadcast over (B, d) features: row s·B + b moves feature b.
    let out = ops.apply(&c, &z).unwrap();
    assert_eq!(out.len(), s * b * ops.dim());
    for r in 0..s * b {
        let zb = &z[(r % b) * 512..(r % b + 1) * 512];
        let want = dense_apply(&dense_transport(&ops, &c[r * m..(r + 1) * m]), zb);
        assert_close_f32(
            &format!("row {r}"),
            &out[r * 512..(r + 1) * 512],
            &want,
            2e-5,
        );
    }
}

#[test]
fn apply_action_equals_apply_on_trained_size_operators() {
    // M = 16 operators in two blocks of 64 (the demo-large shape), coefficients at the scale of
    // prior samples and well beyond, broadcast over features as `apply` does.
    let mut rng = TestRng::new(11);
    let (m, k, n) = (16, 2, 64);
    let ops = random_operators(&mut rng, m, k, n, 0.3);
    let (s, b) = (4, 3);
    for scale in [0.0, 0.05, 0.5, 2.0] {
        let c: Vec<f32> = rng
            .normals(s * b * m)
            .iter()
            .map(|x| (x * scale) as f32)
            .collect();
        let z: Vec<f32> = rng
            .normals(b * ops.dim())
            .iter()
            .map(|&x| x as f32)
            .collect();
        let want = ops.apply(&c, &z).unwrap();
        let got = ops.apply_action(&c, &z).unwrap();
        assert_close_f32(&format!("scale {scale}"), &got, &widen(&want), 2e-5);
    }
    let err = ops
        .apply_action(&[0.0; 16], &[0.0; 100])
        .unwrap_err()
        .to_string();
    assert!(err.contains("100 values"), "{err}");
    let err = ops
        .apply_action(&[0.0; 15], &[0.0; 128])
        .unwrap_err()
        .to_string();
    assert!(err.contains("coefficients"), "{err}");
}

#[test]
fn matches_reference_transop_forward() {
    for (file, tol) in [
        ("transop_small.safetensors", 1e-4),
        ("transop_small_dense.safetensors", 1e-4),
        ("transop_large.safetensors", 1e-4),
    ] {
        let fx = Fixture::load(file);
        let ops = operators_from(&fx, "param.psi");
        let out = ops.apply(&fx.f32s("input.c"), &fx.f32s("input.z")).unwrap();
        assert_close_f32(
            &format!("{file} vs torch f32"),
            &out,
            &fx.f64s("output.out"),
            tol,
        );
        assert_close_f32(
            &format!("{file} vs torch f64"),
            &out,
            &fx.f64s("output.out_f64ref"),
            tol,
        );
    }
}

#[test]
fn path_at_time_t_is_transport_by_t_times_c() {
    let mut rng = TestRng::new(11);
    let ops = random_operators(&mut rng, 4, 2, 8, 0.3);
    let c: Vec<f32> = rng.normals(4).iter().map(|&x| x as f32).collect();
    let z0: Vec<f32> = rng.normals(16).iter().map(|&x| x as f32).collect();
    let ts = [-1.0f32, -0.25, 0.0, 0.5, 2.0];
    let p = path(&ops, &c, &z0, &ts).unwrap();
    for (i, &t) in ts.iter().enumerate() {
        let tc: Vec<f32> = c.iter().map(|x| t * x).collect();
        let want = dense_apply(&dense_transport(&ops, &tc), &z0);
        assert_close_f32(&format!("t={t}"), &p[i * 16..(i + 1) * 16], &want, 1e-5);
    }
    assert_eq!(&p[32..48], z0.as_slice(), "t = 0 is the identity");
}

#[test]
fn stepping_the_path_equals_one_big_transport() {
    let mut rng = TestRng::new(12);
    let ops = Operators::stable_init(6, 4, 16, || rng.uniform() as f32).unwrap();
    let mut rng = TestRng::new(13);
    let c: Vec<f32> = rng.normals(6).iter().map(|&x| x as f32).collect();
    let z0: Vec<f32> = rng.normals(64).iter().map(|&x| x as f32).collect();
    let dt = 0.05;
    let mut stepper = PathStepper::new(&ops, &c, &z0, dt).unwrap();
    for _ in 0..40 {
        stepper.step().unwrap();
    }
    assert_eq!(stepper.steps(), 40);
    let tc: Vec<f32> = c.iter().map(|x| 40.0 * dt * x).collect();
    let want = dense_apply(&dense_transport(&ops, &tc), &z0);
    assert_close_f32("40 steps of 0.05", stepper.position(), &want, 1e-4);
}

#[test]
fn stable_init_places_one_rotation_generator_per_block() {
    let mut rng = TestRng::new(14);
    let (m, k, n) = (5, 3, 8);
    let ops = Operators::stable_init(m, k, n, || rng.uniform() as f32).unwrap();
    for mi in 0..m {
        for ki in 0..k {
            let g = ops.generator(mi, ki).unwrap();
            let (r, w) = (g[0], g[n]);
            assert!(r.abs() <= 5e-5 && w.abs() <= 3.0, "r={r} w={w}");
            for i in 0..n {
                for j in 0..n {
                    let want = match (i / 2 == j / 2, i % 2, j % 2) {
                        (true, 0, 0) | (true, 1, 1) => r,
                        (true, 0, 1) => -w,
                        (true, 1, 0) => w,
                        _ => 0.0,
                    };
                    assert_eq!(g[i * n + j], want, "Ψ[{mi},{ki}][{i},{j}]");
                }
            }
        }
    }
    let ws: Vec<f32> = (0..m).map(|mi| ops.generator(mi, 0).unwrap()[n]).collect();
    assert!(
        ws.windows(2).any(|p| p[0] != p[1]),
        "frequencies differ across operators"
    );
}

#[test]
fn reparameterisation_matches_reference_with_and_without_threshold() {
    for file in [
        "reparam_laplace_lambda0.safetensors",
        "reparam_laplace_lambda0p01.safetensors",
    ] {
        let fx = Fixture::load(file);
        let lambda = fx.scalar("param.lambda") as f32;
        let (shift, logscale, noise) = (
            fx.f32s("input.shift"),
            fx.f32s("input.logscale"),
            fx.f32s("input.noise"),
        );
        let eps: Vec<f32> = noise
            .iter()
            .zip(&logscale)
            .map(|(&u, &l)| laplace_deviation(u, l))
            .collect();
        assert_close_f32(&format!("{file} eps"), &eps, &fx.f64s("output.eps"), 1e-5);
        let c: Vec<f32> = (0..shift.len())
            .map(|i| reparameterize(shift[i], logscale[i], noise[i], lambda))
            .collect();
        let want = fx.f32s("output.c");
        let zeros_match = c.iter().zip(&want).all(|(a, b)| (*a == 0.0) == (*b == 0.0));
        assert!(zeros_match, "{file}: zero pattern differs");
        // The rule, checked on the fixture's own deviations (so that any fixture of this kind
        // holds): a coefficient is non-zero exactly where |ε| > ζ (ε = 0 gives 0 even for ζ = 0).
        let nonzero = fx
            .f64s("output.eps")
            .iter()
            .filter(|e| e.abs() > f64::from(lambda))
            .count();
        assert!(
            nonzero > 0 && nonzero < c.len(),
            "{file}: a degenerate fixture"
        );
        assert_eq!(c.iter().filter(|x| **x != 0.0).count(), nonzero, "{file}");
        assert_close_f32(&format!("{file} c"), &c, &widen(&want), 1e-5);
    }
}

#[test]
fn laplace_sampler_is_seeded_and_has_laplace_moments() {
    let (loc, logscale) = (vec![0.3f32, -1.0], vec![(0.2f32).ln(), (0.05f32).ln()]);
    let a = LaplaceSampler::new(7)
        .sample(&loc, &logscale, 0.0, 50_000)
        .unwrap();
    let b = LaplaceSampler::new(7)
        .sample(&loc, &logscale, 0.0, 50_000)
        .unwrap();
    let c = LaplaceSampler::new(8)
        .sample(&loc, &logscale, 0.0, 50_000)
        .unwrap();
    assert_eq!(a, b, "same seed, same samples");
    assert_ne!(a, c, "different seeds differ");
    for j in 0..2 {
        let xs: Vec<f64> = a.iter().skip(j).step_by(2).map(|&x| f64::from(x)).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let mad = xs
            .iter()
            .map(|x| (x - f64::from(loc[j])).abs())
            .sum::<f64>()
            / xs.len() as f64;
        let b = f64::from(logscale[j].exp());
        // Laplace(μ, b): E[X] = μ and E|X − μ| = b; the standard errors here are ≈ b/160.
        assert!(
            (mean - f64::from(loc[j])).abs() < 0.03 * b * 5.0,
            "mean {mean}"
        );
        assert!((mad / b - 1.0).abs() < 0.03, "E|X-μ|/b = {}", mad / b);
    }
    let mut s = LaplaceSampler::new(1);
    assert!(
        (0..10_000)
            .map(|_| s.noise())
            .all(|u| (-0.5..0.5).contains(&u))
    );
}

#[test]
fn threshold_zeroes_small_deviations_and_shrinks_the_rest() {
    let zeta = 0.1;
    let t = LaplaceSampler::new(3)
        .sample(&[2.0], &[(0.1f32).ln()], zeta, 20_000)
        .unwrap();
    let zero = t.iter().filter(|x| **x == 0.0).count() as f64 / t.len() as f64;
    // P(|ε| ≤ ζ) = 1 − exp(−ζ/b) = 1 − e⁻¹ for ζ = b.
    assert!(
        (zero - (1.0 - (-1.0f64).exp())).abs() < 0.02,
        "zero fraction {zero}"
    );
    assert!(t.iter().all(|&x| x == 0.0 || (x - 2.0).abs() > 0.0));
    assert!(
        LaplaceSampler::new(0)
            .sample(&[0.0], &[0.0], f32::NAN, 1)
            .is_err()
    );
    assert!(
        LaplaceSampler::new(0)
            .sample(&[0.0, 1.0], &[0.0], 0.0, 1)
            .is_err()
    );
}

/// Dequantises `param.<layer>.weight_q` into a [`Linear`] (fixtures README §e).
fn layer(fx: &Fixture, name: &str) -> Linear {
    let shape = fx.shape(&format!("param.{name}.weight_q"));
    let step = fx.scalar(&format!("param.{name}.weight_step")) as f32;
    let w: Vec<f32> = fx
        .f64s(&format!("param.{name}.weight_q"))
        .iter()
        .map(|&q| (q as f32 - 128.0) * step)
        .collect();
    Linear::new(
        name,
        shape[1],
        shape[0],
        w,
        fx.f32s(&format!("param.{name}.bias")),
    )
    .unwrap()
}

fn mlp(fx: &Fixture, trunk: &str, scale: &str, shift: &str) -> Mlp {
    let layers = ["0", "2", "4"]
        .iter()
        .map(|i| layer(fx, &format!("{trunk}.{i}")))
        .collect();
    Mlp::new(trunk, layers, layer(fx, scale), layer(fx, shift)).unwrap()
}

#[test]
fn encoder_and_prior_heads_match_reference() {
    let fx = Fixture::load("coeff_encoder.safetensors");
    let enc_mlp = mlp(&fx, "enc_feat_extract", "enc_scale", "enc_shift");
    let prior_mlp = mlp(&fx, "prior_feat_extract", "prior_scale", "prior_shift");
    let (x0, x1) = (fx.f32s("input.x0"), fx.f32s("input.x1"));

    let concat: Vec<f32> = x0
        .chunks(512)
        .zip(x1.chunks(512))
        .flat_map(|(a, b)| a.iter().chain(b).copied())
        .collect();
    let raw = enc_mlp.forward(&concat).unwrap();
    assert_close_f32(
        "enc features",
        &raw.features,
        &fx.f64s("output.enc_features"),
        1e-4,
    );
    assert_close_f32(
        "enc scale raw",
        &raw.scale,
        &fx.f64s("output.enc_scale_raw"),
        1e-4,
    );
    assert_close_f32(
        "enc shift raw",
        &raw.loc,
        &fx.f64s("output.enc_shift_raw"),
        1e-4,
    );

    let encoder = CoefficientEncoder::new(enc_mlp).unwrap();
    let q = encoder.posterior(&x0, &x1).unwrap();
    assert_close_f32(
        "enc logscale",
        &q.logscale,
        &fx.f64s("output.enc_logscale"),
        1e-4,
    );
    assert_close_f32("enc shift", &q.loc, &fx.f64s("output.enc_shift"), 1e-4);

    let raw = prior_mlp.forward(&x0).unwrap();
    assert_close_f32(
        "prior features",
        &raw.features,
        &fx.f64s("output.prior_features"),
        1e-4,
    );
    assert_close_f32(
        "prior scale raw",
        &raw.scale,
        &fx.f64s("output.prior_scale_raw"),
        1e-4,
    );
    assert_close_f32(
        "prior shift raw",
        &raw.loc,
        &fx.f64s("output.prior_shift_raw"),
        1e-4,
    );

    let learned = PriorNetwork::new(prior_mlp).prior(&x0).unwrap();
    let warmup = fx.scalar("param.prior_warmup_iters") as u64;
    for iter in [0u64, 2500, 5000] {
        let p = warm_up_prior(&learned, prior_warmup_weight(iter, warmup));
        let ls = fx.f64s(&format!("output.prior_logscale_iter{iter}"));
        let sh = fx.f64s(&format!("output.prior_shift_iter{iter}"));
        assert_close_f32(&format!("prior logscale @{iter}"), &p.logscale, &ls, 1e-4);
        assert_close_f32(&format!("prior shift @{iter}"), &p.loc, &sh, 1e-4);
        if iter == 0 {
            assert!(
                p.loc.iter().all(|&x| x == 0.0),
                "prior location is exactly 0 at iteration 0"
            );
        }
    }

    // Training-mode samples: encoder location + Laplace deviation with λ = 0. Where exp(logscale)
    // underflows in f32 the reference gives 0; so must we (the deviation is exactly 0).
    let noise = fx.f32s("input.noise");
    let samples: Vec<f32> = (0..noise.len())
        .map(|i| reparameterize(q.loc[i], q.logscale[i], noise[i], 0.0))
        .collect();
    let underflow = fx.f64s("output.samples_f32_underflow");
    assert_eq!(underflow.iter().filter(|&&u| u == 1.0).count(), 5);
    let want = fx.f64s("output.samples");
    for (i, u) in underflow.iter().enumerate() {
        if *u == 1.0 {
            assert_eq!(samples[i], 0.0, "underflowed entry {i}");
        }
    }
    let keep = |v: &[f64]| -> Vec<f64> {
        v.iter()
            .zip(&underflow)
            .filter(|(_, u)| **u == 0.0)
            .map(|(x, _)| *x)
            .collect()
    };
    assert_close("samples", &keep(&widen(&samples)), &keep(&want), 1e-5);
}

#[test]
fn best_of_j_draws_match_reference_per_draw_outputs() {
    // The (J, B, M) coefficient layout broadcasting over (B, d) features is what best-of-J uses.
    let fx = Fixture::load("best_of_j.safetensors");
    let ops = operators_from(&fx, "param.psi");
    let (shift, logscale, noise) = (
        fx.f32s("input.shift"),
        fx.f32s("input.logscale"),
        fx.f32s("input.noise"),
    );
    let lambda = fx.scalar("param.lambda") as f32;
    let bm = shift.len();
    let c: Vec<f32> = noise
        .iter()
        .enumerate()
        .map(|(i, &u)| reparameterize(shift[i % bm], logscale[i % bm], u, lambda))
        .collect();
    assert_close_f32("c per draw", &c, &fx.f64s("output.c_per_draw"), 1e-5);
    let x1_hat = ops.apply(&c, &fx.f32s("input.x0")).unwrap();
    assert_close_f32(
        "x1_hat per draw",
        &x1_hat,
        &fx.f64s("output.x1_hat_per_draw"),
        1e-4,
    );
}

#[test]
fn shape_errors_name_the_argument() {
    let ops = Operators::stable_init(2, 2, 4, || 0.25).unwrap();
    let err = ops.apply(&[0.1; 3], &[0.0; 8]).unwrap_err().to_string();
    assert!(err.contains("coefficients"), "{err}");
    let err = ops.apply(&[0.1; 4], &[0.0; 7]).unwrap_err().to_string();
    assert!(err.contains("features") && err.contains("d = 8"), "{err}");
    let err = ops.apply(&[0.1; 2], &[0.0; 16]).unwrap_err().to_string();
    assert!(
        err.contains("features"),
        "2 features cannot broadcast to 1 coefficient row: {err}"
    );
    let err = Operators::new(2, 2, 4, vec![0.0; 63])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("operators") && err.contains("[2, 2, 4, 4]"),
        "{err}"
    );
    let mut psi = vec![0.0; 64];
    psi[9] = f32::NAN;
    let err = Operators::new(2, 2, 4, psi).unwrap_err().to_string();
    assert!(
        err.contains("operators") && err.contains("index 9"),
        "{err}"
    );
    let err = path(&ops, &[0.1; 3], &[0.0; 8], &[0.5])
        .unwrap_err()
        .to_string();
    assert!(err.contains("coefficients"), "{err}");
    let l = Linear::new("prior.trunk[0]", 3, 2, vec![0.0; 5], vec![0.0; 2]).unwrap_err();
    assert!(l.to_string().contains("prior.trunk[0].weight"), "{l}");
}
