//! The losses of docs/method.md §6 against the authors' recorded outputs and gradients
//! (`fixtures/reference/`, README §a, §b, §f) and against naive f64 loops.
// Tests: a panic is a test failure with a message, which is what we want; the measured errors
// are printed (see them with `--nocapture`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use crate::device::device;
use crate::reference::{Fixture, Lcg, assert_close, flat_f64, rel_err};
use candle_core::{Tensor, Var};
use mclr_trainer::losses::{
    KL_EXPONENTIAL_ITERS, KlWarmup, KlWeightSchedule, encoder_location_l2, kl_weight_exponential,
    l2_normalize, laplace_kl, laplace_kl_per_sample, lie_infonce_mse, manifold_matching,
    nt_xent_cosine, simclr_nt_xent,
};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

fn var(t: &Tensor) -> Var {
    Var::from_tensor(t).unwrap()
}

fn grad(grads: &candle_core::backprop::GradStore, v: &Var) -> Tensor {
    grads.get(v.as_tensor()).expect("no gradient").clone()
}

// ---------------------------------------------------------------- fixtures: contrastive

#[test]
fn lie_infonce_mse_matches_reference_value_and_gradients_with_self_term_kept() {
    let f = Fixture::load("lie_ntxent_mse_neg.safetensors");
    let (za, z1, z0) = (
        var(&f.get("input.z_aug")),
        var(&f.get("input.z1")),
        var(&f.get("input.z0")),
    );
    let tau = f.scalar("param.temperature");
    let loss = lie_infonce_mse(za.as_tensor(), z1.as_tensor(), z0.as_tensor(), tau).unwrap();
    assert_close("loss", &loss, &f.get("output.loss"), 1e-5);
    let g = loss.backward().unwrap();
    assert_close("grad.z_aug", &grad(&g, &za), &f.get("grad.z_aug"), 1e-5);
    assert_close("grad.z1", &grad(&g, &z1), &f.get("grad.z1"), 1e-5);
    assert_close("grad.z0", &grad(&g, &z0), &f.get("grad.z0"), 1e-5);
}

#[test]
fn nt_xent_cosine_matches_reference_through_the_normalisation() {
    let f = Fixture::load("lie_ntxent_cos.safetensors");
    let tau = f.scalar("param.temperature");
    let (a, b) = (
        var(&f.get("input.out_1_raw")),
        var(&f.get("input.out_2_raw")),
    );
    let loss = nt_xent_cosine(a.as_tensor(), b.as_tensor(), tau).unwrap();
    assert_close("loss_raw", &loss, &f.get("output.loss_raw"), 1e-5);
    let g = loss.backward().unwrap();
    assert_close(
        "grad.out_1_raw",
        &grad(&g, &a),
        &f.get("grad.out_1_raw"),
        1e-5,
    );
    assert_close(
        "grad.out_2_raw",
        &grad(&g, &b),
        &f.get("grad.out_2_raw"),
        1e-5,
    );

    // On the already-normalised leaves the value agrees too (quirk 2: only their gradients differ).
    let loss = nt_xent_cosine(&f.get("input.out_1"), &f.get("input.out_2"), tau).unwrap();
    assert_close(
        "loss (normalised leaves)",
        &loss,
        &f.get("output.loss"),
        1e-5,
    );
    // And our normalisation reproduces torch's F.normalize.
    let normalised = l2_normalize(&f.get("input.out_1_raw")).unwrap();
    assert_close("F.normalize", &normalised, &f.get("input.out_1"), 1e-6);
}

#[test]
fn simclr_nt_xent_matches_both_reference_implementations() {
    let f = Fixture::load("simclr_ntxent.safetensors");
    let tau = f.scalar("param.temperature");
    let (a, b) = (var(&f.get("input.out0")), var(&f.get("input.out1")));
    let loss = simclr_nt_xent(a.as_tensor(), b.as_tensor(), tau).unwrap();
    let g = loss.backward().unwrap();
    for which in ["ntxentloss", "contrastive"] {
        assert_close(
            &format!("loss_{which}"),
            &loss,
            &f.get(&format!("output.loss_{which}")),
            1e-5,
        );
        assert_close(
            &format!("grad.out0_{which}"),
            &grad(&g, &a),
            &f.get(&format!("grad.out0_{which}")),
            1e-5,
        );
        assert_close(
            &format!("grad.out1_{which}"),
            &grad(&g, &b),
            &f.get(&format!("grad.out1_{which}")),
            1e-5,
        );
    }
}

// ---------------------------------------------------------------- fixtures: KL

#[test]
fn laplace_kl_matches_reference_value_and_gradients() {
    let f = Fixture::load("laplace_kl.safetensors");
    let names = ["mu_q", "logscale_q", "mu_p", "logscale_p"];
    let vars: Vec<Var> = names
        .iter()
        .map(|n| var(&f.get(&format!("input.{n}"))))
        .collect();
    let t: Vec<&Tensor> = vars.iter().map(Var::as_tensor).collect();
    let per_sample = laplace_kl_per_sample(t[0], t[1], t[2], t[3]).unwrap();
    assert_close("kl", &per_sample, &f.get("output.kl"), 1e-5);
    let loss = laplace_kl(t[0], t[1], t[2], t[3]).unwrap();
    assert_close("kl_mean", &loss, &f.get("output.kl_mean"), 1e-5);
    let g = loss.backward().unwrap();
    for (n, v) in names.iter().zip(&vars) {
        assert_close(
            &format!("grad.{n}"),
            &grad(&g, v),
            &f.get(&format!("grad.{n}")),
            1e-5,
        );
    }
}

/// Laplace sample by inverse CDF from a uniform in (0, 1).
fn laplace_sample(mu: f64, b: f64, u: f64) -> f64 {
    let v = u - 0.5;
    mu - b * v.signum() * (1.0 - 2.0 * v.abs()).ln()
}

fn laplace_log_density(x: f64, mu: f64, b: f64) -> f64 {
    -(2.0 * b).ln() - (x - mu).abs() / b
}

#[test]
fn laplace_kl_element_agrees_with_a_monte_carlo_estimate() {
    let f = Fixture::load("laplace_kl.safetensors");
    let [mq, lq, mp, lp] =
        ["mu_q", "logscale_q", "mu_p", "logscale_p"].map(|n| f.f64s(&format!("input.{n}")));
    // The element where the exp(−Δ/b_q) term matters most (smallest Δ/b_q).
    let i = (0..mq.len())
        .min_by(|&a, &b| {
            let ra = (mq[a] - mp[a]).abs() / lq[a].exp();
            let rb = (mq[b] - mp[b]).abs() / lq[b].exp();
            ra.total_cmp(&rb)
        })
        .unwrap();
    let (bq, bp) = (lq[i].exp(), lp[i].exp());
    let one = |v: f64| Tensor::new(&[[v as f32]], &device()).unwrap();
    let closed =
        flat_f64(&laplace_kl(&one(mq[i]), &one(lq[i]), &one(mp[i]), &one(lp[i])).unwrap())[0];

    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let n: u32 = 2_000_000;
    let (mut sum, mut sum_sq) = (0.0f64, 0.0f64);
    for _ in 0..n {
        // Uniform in (0, 1), never exactly 0.
        let u = ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let x = laplace_sample(mq[i], bq, u);
        let term = laplace_log_density(x, mq[i], bq) - laplace_log_density(x, mp[i], bp);
        sum += term;
        sum_sq += term * term;
    }
    let n = f64::from(n);
    let mean = sum / n;
    let se = ((sum_sq / n - mean * mean) / (n - 1.0)).sqrt();
    println!(
        "element {i}: Δ/b_q = {:.3}, closed form {closed:.6}, Monte Carlo {mean:.6} ± {se:.6}",
        (mq[i] - mp[i]).abs() / bq
    );
    assert!(
        (closed - mean).abs() <= 3.0 * se + 1e-6 * closed.abs(),
        "closed form {closed} vs Monte Carlo {mean} ± {se}"
    );
}

#[test]
fn laplace_kl_gradient_is_zero_when_locations_coincide_and_finite_when_scale_underflows() {
    let d = device();
    let mu_q = var(&Tensor::new(&[[0.3f32, 0.3]], &d).unwrap());
    let mu_p = var(&Tensor::new(&[[0.3f32, 0.2]], &d).unwrap());
    // Second entry: the encoder's lowest log-scale, −100 + ln 0.01, underflows exp in f32.
    let lq = var(&Tensor::new(&[[-3.0f32, -104.6]], &d).unwrap());
    let lp = var(&Tensor::new(&[[-2.0f32, -2.5]], &d).unwrap());
    let loss = laplace_kl(
        mu_q.as_tensor(),
        lq.as_tensor(),
        mu_p.as_tensor(),
        lp.as_tensor(),
    )
    .unwrap();
    let value = flat_f64(&loss)[0];
    // Element 0: ln(b_p/b_q) + b_q/b_p − 1 at Δ = 0; element 1: ln(b_p/b_q) + Δ/b_p − 1.
    let want = (1.0 + (-1.0f64).exp() - 1.0) + (102.1 + 0.1 / (-2.5f64).exp() - 1.0);
    assert!((value - want).abs() < 1e-4 * want, "{value} vs {want}");
    let g = loss.backward().unwrap();
    let (gq, gp) = (flat_f64(&grad(&g, &mu_q)), flat_f64(&grad(&g, &mu_p)));
    assert_eq!(gq[0], 0.0, "d KL / d mu_q at Δ = 0");
    assert_eq!(gp[0], 0.0, "d KL / d mu_p at Δ = 0");
    for t in [&mu_q, &mu_p, &lq, &lp] {
        assert!(flat_f64(&grad(&g, t)).iter().all(|x| x.is_finite()));
    }
}

// ---------------------------------------------------------------- fixtures: KL weight

#[test]
fn kl_weight_schedules_match_reference_multipliers() {
    let f = Fixture::load("kl_weight_warmup.safetensors");
    let counts: Vec<u64> = f
        .f64s("input.call_count")
        .iter()
        .map(|&c| c as u64)
        .collect();
    let check = |what: &str, got: &[f64], want: &[f64]| {
        let err = got
            .iter()
            .zip(want)
            .map(|(g, w)| ((g - w) / w).abs())
            .fold(0.0f64, f64::max);
        println!("{what}: max relative error {err:.3e}");
        assert!(err <= 1e-12, "{what}: {got:?} vs {want:?}");
    };
    let closed: Vec<f64> = counts
        .iter()
        .map(|&k| kl_weight_exponential(k, KL_EXPONENTIAL_ITERS))
        .collect();
    check(
        "exponential (closed form)",
        &closed,
        &f.f64s("output.multiplier_exponential"),
    );

    let last = *counts.last().unwrap();
    for (mode, key) in [
        (
            KlWarmup::Exponential {
                iters: KL_EXPONENTIAL_ITERS,
            },
            "output.multiplier_exponential",
        ),
        (KlWarmup::Linear, "output.multiplier_linear"),
        (KlWarmup::Annealed, "output.multiplier_annealed"),
        (KlWarmup::None, "output.multiplier_none"),
    ] {
        let mut schedule = KlWeightSchedule::new(1.0, mode);
        let mut got = Vec::new();
        for k in 1..=last {
            let w = schedule.next(k - 1);
            if counts.contains(&k) {
                got.push(w);
            }
        }
        check(key, &got, &f.f64s(key));
        // Resuming from a checkpointed call count continues the same sequence.
        let mut resumed = KlWeightSchedule::resume(1.0, mode, 4999);
        let mut fresh = KlWeightSchedule::new(1.0, mode);
        let expected: Vec<f64> = (0..5002).map(|k| fresh.next(k)).collect();
        assert_eq!(resumed.next(4999), expected[4999], "{key}: resume");
        assert_eq!(resumed.calls(), 5000);
    }

    let mut cyclic = KlWeightSchedule::new(1.0, KlWarmup::Cyclic);
    let got: Vec<f64> = f
        .f64s("input.cyclic_curr_iter")
        .iter()
        .map(|&t| cyclic.next(t as u64))
        .collect();
    check("cyclic", &got, &f.f64s("output.multiplier_cyclic"));

    let mut weighted = KlWeightSchedule::new(
        1e-5,
        KlWarmup::Exponential {
            iters: KL_EXPONENTIAL_ITERS,
        },
    );
    let got: Vec<f64> = (0..10).map(|t| weighted.next(t)).collect();
    check(
        "weight 1e-5, first 10 calls",
        &got,
        &f.f64s("output.kl_weight_exponential_w1e-5_first10"),
    );
    assert!(
        (got[0] - 5.0053e-8).abs() < 1e-12,
        "first call gives 5.0053e-3 · 1e-5"
    );
}

// ---------------------------------------------------------------- naive f64 oracles

/// `rows × cols` matrix of f32 values as a tensor, and the same values as f64 rows.
fn random_matrix(rng: &mut Lcg, rows: usize, cols: usize, scale: f64) -> (Tensor, Vec<Vec<f64>>) {
    let v = rng.normals(rows * cols, scale);
    let t = Tensor::from_vec(v.clone(), (rows, cols), &device()).unwrap();
    let m = v
        .chunks(cols)
        .map(|r| r.iter().map(|&x| f64::from(x)).collect())
        .collect();
    (t, m)
}

fn ln_sum_exp(xs: &[f64], extra: f64) -> f64 {
    (xs.iter().map(|x| x.exp()).sum::<f64>() + extra).ln()
}

fn naive_lie_infonce(za: &[Vec<f64>], z1: &[Vec<f64>], z0: &[Vec<f64>], tau: f64) -> f64 {
    let d = za[0].len() as f64;
    let sim = |x: &[f64], y: &[f64]| {
        -x.iter().zip(y).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / d / tau
    };
    let rows: Vec<&Vec<f64>> = za.iter().chain(z1).collect();
    let cols: Vec<&Vec<f64>> = za.iter().chain(z1).chain(z0).collect();
    let b = za.len();
    let mut total = 0.0;
    for (r, row) in rows.iter().enumerate() {
        let sims: Vec<f64> = cols.iter().map(|c| sim(row, c)).collect();
        let pos = sim(&za[r % b], &z1[r % b]);
        total += -pos + ln_sum_exp(&sims, 1e-6);
    }
    total / (2 * b) as f64
}

fn naive_nt_xent(a: &[Vec<f64>], b: &[Vec<f64>], tau: f64) -> f64 {
    let unit = |x: &Vec<f64>| {
        let n = x.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
        x.iter().map(|v| v / n).collect::<Vec<f64>>()
    };
    let z: Vec<Vec<f64>> = a.iter().chain(b).map(unit).collect();
    let n = a.len();
    let dot = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f64>() / tau;
    let mut total = 0.0;
    for i in 0..2 * n {
        let others: Vec<f64> = (0..2 * n)
            .filter(|&j| j != i)
            .map(|j| dot(&z[i], &z[j]))
            .collect();
        let pos = dot(&z[i], &z[(i + n) % (2 * n)]);
        total += -pos + ln_sum_exp(&others, 1e-6);
    }
    total / (2 * n) as f64
}

fn naive_laplace_kl(mq: &[Vec<f64>], lq: &[Vec<f64>], mp: &[Vec<f64>], lp: &[Vec<f64>]) -> f64 {
    let mut total = 0.0;
    for r in 0..mq.len() {
        for m in 0..mq[r].len() {
            let (bq, bp) = (lq[r][m].exp(), lp[r][m].exp());
            let delta = (mq[r][m] - mp[r][m]).abs();
            total += (bp / bq).ln() + delta / bp + bq / bp * (-delta / bq).exp() - 1.0;
        }
    }
    total / mq.len() as f64
}

/// A loss written as plain f64 loops over its inputs, each a matrix of rows.
type NaiveLoss<'a> = &'a dyn Fn(&[Vec<Vec<f64>>]) -> f64;
/// The same loss on candle tensors.
type TensorLoss<'a> = &'a dyn Fn(&[&Tensor]) -> candle_core::Result<Tensor>;

/// Central finite-difference gradient of `f` with respect to input `which`.
fn fd_grad(f: NaiveLoss<'_>, inputs: &[Vec<Vec<f64>>], which: usize) -> Vec<f64> {
    let h = 1e-6;
    let mut out = Vec::new();
    let mut x = inputs.to_vec();
    for r in 0..inputs[which].len() {
        for c in 0..inputs[which][r].len() {
            let orig = x[which][r][c];
            x[which][r][c] = orig + h;
            let up = f(&x);
            x[which][r][c] = orig - h;
            let down = f(&x);
            x[which][r][c] = orig;
            out.push((up - down) / (2.0 * h));
        }
    }
    out
}

/// Compares a candle loss and its gradients with a naive f64 function and its finite differences.
fn check_against_naive(
    what: &str,
    inputs: &[(Tensor, Vec<Vec<f64>>)],
    loss: TensorLoss<'_>,
    naive: NaiveLoss<'_>,
) {
    let vars: Vec<Var> = inputs.iter().map(|(t, _)| var(t)).collect();
    let tensors: Vec<&Tensor> = vars.iter().map(Var::as_tensor).collect();
    let values: Vec<Vec<Vec<f64>>> = inputs.iter().map(|(_, v)| v.clone()).collect();
    let got = loss(&tensors).unwrap();
    let want = naive(&values);
    let err = rel_err(&flat_f64(&got), &[want]);
    println!("{what}: value {want:.6}, rel err {err:.3e}");
    assert!(err <= 2e-6, "{what}: {} vs {want}", flat_f64(&got)[0]);
    let g = got.backward().unwrap();
    for (i, v) in vars.iter().enumerate() {
        let fd = fd_grad(naive, &values, i);
        let err = rel_err(&flat_f64(&grad(&g, v)), &fd);
        println!("{what}: grad {i} rel err {err:.3e}");
        assert!(err <= 1e-4, "{what}: gradient {i} rel err {err:.3e}");
    }
}

#[test]
fn lie_infonce_mse_equals_naive_loops() {
    let mut rng = Lcg::new(1);
    let (b, d) = (5, 7);
    // z_aug close to z1 (as T(c) z0 is), z0 unrelated.
    let za = random_matrix(&mut rng, b, d, 1.0);
    let z1 = random_matrix(&mut rng, b, d, 1.0);
    let z1 = (
        (&za.0 + &z1.0.affine(0.3, 0.0).unwrap()).unwrap(),
        za.1.iter()
            .zip(&z1.1)
            .map(|(a, n)| {
                a.iter()
                    .zip(n)
                    .map(|(x, y)| f64::from((*x as f32) + (*y as f32) * 0.3))
                    .collect()
            })
            .collect(),
    );
    let z0 = random_matrix(&mut rng, b, d, 1.5);
    check_against_naive(
        "lie_infonce_mse",
        &[za, z1, z0],
        &|t| lie_infonce_mse(t[0], t[1], t[2], 0.5),
        &|v| naive_lie_infonce(&v[0], &v[1], &v[2], 0.5),
    );
}

#[test]
fn nt_xent_cosine_equals_naive_loops() {
    let mut rng = Lcg::new(2);
    let (b, d) = (6, 5);
    let a = random_matrix(&mut rng, b, d, 2.0);
    let c = random_matrix(&mut rng, b, d, 0.7);
    check_against_naive(
        "nt_xent_cosine",
        &[a, c],
        &|t| nt_xent_cosine(t[0], t[1], 0.2),
        &|v| naive_nt_xent(&v[0], &v[1], 0.2),
    );
}

#[test]
fn laplace_kl_equals_naive_loops() {
    let mut rng = Lcg::new(3);
    let (b, m) = (4, 6);
    let mq = random_matrix(&mut rng, b, m, 0.2);
    let mp = random_matrix(&mut rng, b, m, 0.2);
    let lq = random_matrix(&mut rng, b, m, 0.5);
    let lp = random_matrix(&mut rng, b, m, 0.5);
    let shift = |(t, v): (Tensor, Vec<Vec<f64>>)| {
        (
            t.affine(1.0, -3.0).unwrap(),
            v.iter()
                .map(|r| r.iter().map(|x| f64::from((*x as f32) - 3.0)).collect())
                .collect::<Vec<Vec<f64>>>(),
        )
    };
    check_against_naive(
        "laplace_kl",
        &[mq, shift(lq), mp, shift(lp)],
        &|t| laplace_kl(t[0], t[1], t[2], t[3]),
        &|v| naive_laplace_kl(&v[0], &v[1], &v[2], &v[3]),
    );
}

#[test]
fn manifold_matching_and_location_l2_equal_naive_loops() {
    let mut rng = Lcg::new(4);
    let (b, d) = (3, 8);
    let z_hat = random_matrix(&mut rng, b, d, 1.0);
    let z1 = random_matrix(&mut rng, b, d, 1.0);
    check_against_naive(
        "manifold_matching (z_hat)",
        std::slice::from_ref(&z_hat),
        &|t| manifold_matching(t[0], &z1.0),
        &|v| {
            let mut s = 0.0;
            for (r, row) in v[0].iter().enumerate() {
                for (c, x) in row.iter().enumerate() {
                    s += (x - z1.1[r][c]).powi(2);
                }
            }
            s / (b * d) as f64
        },
    );
    // z1 is detached: it gets no gradient.
    let (zh, z1v) = (var(&z_hat.0), var(&z1.0));
    let g = manifold_matching(zh.as_tensor(), z1v.as_tensor())
        .unwrap()
        .backward()
        .unwrap();
    assert!(g.get(z1v.as_tensor()).is_none(), "z1 must be detached");
    assert!(g.get(zh.as_tensor()).is_some());

    let mu = random_matrix(&mut rng, 4, 5, 0.3);
    check_against_naive(
        "encoder_location_l2",
        &[mu],
        &|t| encoder_location_l2(t[0]),
        &|v| {
            v[0].iter()
                .map(|r| r.iter().map(|x| x * x).sum::<f64>())
                .sum::<f64>()
                / 4.0
        },
    );
}

// ---------------------------------------------------------------- edges and errors

#[test]
fn nt_xent_cosine_gives_finite_gradients_for_a_zero_row() {
    let d = device();
    let a = var(&Tensor::new(&[[0.0f32, 0.0, 0.0], [1.0, 2.0, 3.0]], &d).unwrap());
    let b = var(&Tensor::new(&[[1.0f32, 0.0, 0.0], [0.0, 1.0, 1.0]], &d).unwrap());
    let loss = nt_xent_cosine(a.as_tensor(), b.as_tensor(), 0.5).unwrap();
    assert!(flat_f64(&loss)[0].is_finite());
    let g = loss.backward().unwrap();
    assert!(flat_f64(&grad(&g, &a)).iter().all(|x| x.is_finite()));
}

#[test]
fn shape_mistakes_are_errors_naming_the_argument() {
    let d = device();
    let x = Tensor::zeros((4, 3), candle_core::DType::F32, &d).unwrap();
    let y = Tensor::zeros((4, 2), candle_core::DType::F32, &d).unwrap();
    let v = Tensor::zeros(4, candle_core::DType::F32, &d).unwrap();
    let msg = |r: candle_core::Result<Tensor>| r.unwrap_err().to_string();
    assert!(msg(lie_infonce_mse(&x, &y, &x, 0.5)).contains("`z1`"));
    assert!(msg(lie_infonce_mse(&x, &x, &y, 0.5)).contains("`z0`"));
    assert!(msg(lie_infonce_mse(&x, &x, &x, 0.0)).contains("`tau`"));
    assert!(msg(nt_xent_cosine(&v, &v, 0.5)).contains("`a`"));
    assert!(msg(nt_xent_cosine(&x, &y, 0.5)).contains("`b`"));
    assert!(msg(laplace_kl(&x, &x, &x, &y)).contains("`logscale_p`"));
    assert!(msg(manifold_matching(&x, &y)).contains("`z1`"));
    assert!(msg(encoder_location_l2(&v)).contains("`mu`"));
}
