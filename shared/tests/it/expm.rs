//! The matrix exponential against closed forms, identities, an f64 Padé-13 oracle and the
//! authors' `torch.matrix_exp` outputs.
// Helpers outside #[test] fns may unwrap: a panic in a test is a failure with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::{Fixture, TestRng, assert_close, assert_close_f32};
use mclr_shared::expm::{ExpmPlan, Real, expm, expm_batch, expm_pade13, norm1, plan, squarings};

fn eye(n: usize) -> Vec<f64> {
    (0..n * n)
        .map(|i| if i % (n + 1) == 0 { 1.0 } else { 0.0 })
        .collect()
}

fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut c = vec![0.0; n * n];
    for i in 0..n {
        for k in 0..n {
            for j in 0..n {
                c[i * n + j] += a[i * n + k] * b[k * n + j];
            }
        }
    }
    c
}

fn to_f32(a: &[f64]) -> Vec<f32> {
    a.iter().map(|&x| x as f32).collect()
}

fn widen(a: &[f32]) -> Vec<f64> {
    a.iter().map(|&x| f64::from(x)).collect()
}

/// A random n×n Gaussian matrix rescaled to 1-norm exactly `norm`.
fn random_with_norm(rng: &mut TestRng, n: usize, norm: f64) -> Vec<f64> {
    let a = rng.normals(n * n);
    let s = norm / norm1(&a, n);
    a.iter().map(|x| x * s).collect()
}

#[test]
fn rotation_generator_exponentiates_to_cos_sin() {
    // Block-diagonal 2×2 generators [[r, −w], [w, r]] (the operators' stable init) have the closed
    // form e^r [[cos w, −sin w], [sin w, cos w]].
    let n = 64;
    let mut a = vec![0.0; n * n];
    let mut want = vec![0.0; n * n];
    for blk in 0..n / 2 {
        let (r, w) = (1e-4 * (blk as f64 - 16.0), 0.7 * blk as f64 - 9.0);
        let (i, j) = (2 * blk, 2 * blk + 1);
        a[i * n + i] = r;
        a[j * n + j] = r;
        a[i * n + j] = -w;
        a[j * n + i] = w;
        let e = r.exp();
        want[i * n + i] = e * w.cos();
        want[j * n + j] = e * w.cos();
        want[i * n + j] = -e * w.sin();
        want[j * n + i] = e * w.sin();
    }
    assert_close("f64 rotation", &expm(&a, n).unwrap(), &want, 1e-13);
    assert_close(
        "pade13 rotation",
        &expm_pade13(&a, n).unwrap(),
        &want,
        1e-13,
    );
    assert_close_f32("f32 rotation", &expm(&to_f32(&a), n).unwrap(), &want, 1e-5);
}

#[test]
fn nilpotent_matrix_exponentiates_to_its_finite_series() {
    let n = 8;
    let mut rng = TestRng::new(1);
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        for j in i + 1..n {
            a[i * n + j] = rng.normal();
        }
    }
    // A⁸ = 0, so expm(A) = Σ_{j<8} Aʲ/j! exactly.
    let mut want = eye(n);
    let mut term = eye(n);
    for j in 1..n {
        term = matmul(&term, &a, n).iter().map(|x| x / j as f64).collect();
        want.iter_mut().zip(&term).for_each(|(w, t)| *w += t);
    }
    assert_close("f64 nilpotent", &expm(&a, n).unwrap(), &want, 1e-13);
    assert_close_f32("f32 nilpotent", &expm(&to_f32(&a), n).unwrap(), &want, 1e-6);
}

#[test]
fn diagonal_matrix_exponentiates_elementwise() {
    let n = 8;
    let diag: [f64; 8] = [-7.0, -1.5, -1e-6, 0.0, 1e-8, 0.5, 2.0, 4.0];
    let mut a = vec![0.0; n * n];
    let mut want = vec![0.0; n * n];
    for (i, d) in diag.iter().enumerate() {
        a[i * n + i] = *d;
        want[i * n + i] = d.exp();
    }
    let got = expm(&a, n).unwrap();
    for i in 0..n {
        let rel: f64 = (got[i * n + i] - want[i * n + i]).abs() / want[i * n + i];
        assert!(rel < 1e-14, "diag {i}: relative error {rel:e}");
    }
    assert_close_f32("f32 diagonal", &expm(&to_f32(&a), n).unwrap(), &want, 1e-6);
}

#[test]
fn expm_of_a_times_expm_of_minus_a_is_identity() {
    let n = 64;
    let mut rng = TestRng::new(2);
    for norm in [1e-3, 0.5, 3.0, 10.0] {
        let a = random_with_norm(&mut rng, n, norm);
        let neg: Vec<f64> = a.iter().map(|x| -x).collect();
        let prod = matmul(&expm(&a, n).unwrap(), &expm(&neg, n).unwrap(), n);
        assert_close(&format!("f64 norm {norm}"), &prod, &eye(n), 1e-12);
        let p32 = matmul(
            &widen(&expm(&to_f32(&a), n).unwrap()),
            &widen(&expm(&to_f32(&neg), n).unwrap()),
            n,
        );
        assert_close(&format!("f32 norm {norm}"), &p32, &eye(n), 2e-5);
    }
}

#[test]
fn commuting_sum_exponentiates_to_the_product() {
    // B = 0.3 A − 0.2 A² commutes with A, so expm(A + B) = expm(A) expm(B).
    let n = 8;
    let mut rng = TestRng::new(3);
    let a = random_with_norm(&mut rng, n, 1.5);
    let a2 = matmul(&a, &a, n);
    let b: Vec<f64> = a.iter().zip(&a2).map(|(x, y)| 0.3 * x - 0.2 * y).collect();
    let sum: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    let want = matmul(&expm(&a, n).unwrap(), &expm(&b, n).unwrap(), n);
    assert_close("f64 commuting", &expm(&sum, n).unwrap(), &want, 1e-13);
    assert_close(
        "pade13 commuting",
        &expm_pade13(&sum, n).unwrap(),
        &want,
        1e-13,
    );
}

#[test]
fn f32_matches_f64_pade_oracle_across_norms_and_sizes() {
    let mut rng = TestRng::new(4);
    for n in [2, 8, 64] {
        for norm in [1e-8, 1e-4, 0.1, 1.0, 3.0, 10.0, 25.0, 50.0] {
            for trial in 0..3 {
                let a32 = to_f32(&random_with_norm(&mut rng, n, norm));
                // The right target for an f32 implementation is the exact expm of its f32 input.
                let oracle = expm_pade13(&widen(&a32), n).unwrap();
                let got = expm(&a32, n).unwrap();
                assert_close_f32(
                    &format!("n={n} norm={norm} trial={trial}"),
                    &got,
                    &oracle,
                    1e-5,
                );
            }
        }
    }
}

#[test]
fn f64_taylor_agrees_with_pade13() {
    let mut rng = TestRng::new(5);
    for n in [3, 16] {
        for norm in [1e-6, 0.7, 5.0, 40.0] {
            let a = random_with_norm(&mut rng, n, norm);
            let want = expm_pade13(&a, n).unwrap();
            assert_close(
                &format!("n={n} norm={norm}"),
                &expm(&a, n).unwrap(),
                &want,
                1e-12,
            );
        }
    }
}

#[test]
fn batch_equals_one_at_a_time() {
    let (n, count) = (8, 5);
    let mut rng = TestRng::new(6);
    let a: Vec<f32> = (0..count)
        .flat_map(|i| to_f32(&random_with_norm(&mut rng, n, f64::from(i) + 0.5)))
        .collect();
    let batch = expm_batch(&a, n).unwrap();
    for (i, m) in a.chunks_exact(n * n).enumerate() {
        assert_eq!(
            &batch[i * n * n..(i + 1) * n * n],
            expm(m, n).unwrap().as_slice(),
            "matrix {i}"
        );
    }
}

#[test]
fn squarings_bring_the_norm_under_theta() {
    assert_eq!(squarings(0.0, 1.0), 0);
    assert_eq!(squarings(1.0, 1.0), 0);
    assert_eq!(squarings(1.0000001, 1.0), 1);
    assert_eq!(squarings(2.0, 1.0), 1);
    assert_eq!(squarings(3.0, 1.0), 2);
    assert_eq!(squarings(50.0, 1.0), 6);
    for k in 0..60 {
        let norm = 1.37f64.powi(k);
        let s = squarings(norm, 1.0);
        assert!(norm / 2f64.powi(s as i32) <= 1.0);
        assert!(
            s == 0 || norm / 2f64.powi(s as i32 - 1) > 1.0,
            "s={s} is not minimal for {norm}"
        );
    }
}

#[test]
fn taylor_tables_keep_truncation_under_half_an_ulp() {
    fn check<T: Real>(unit_roundoff: f64) {
        let mut last = (0, 0.0);
        for &(degree, theta) in T::TAYLOR_TABLE {
            assert_eq!(degree % 4, 0, "degree {degree} must be a multiple of 4");
            assert!(degree > last.0 && theta > last.1, "table must ascend");
            // Σ_{j>D} θʲ/j!, summed until the terms vanish.
            let (mut term, mut tail) = ((1..=degree).fold(1.0, |t, j| t * theta / j as f64), 0.0);
            for j in degree + 1..degree + 60 {
                term *= theta / j as f64;
                tail += term;
            }
            assert!(
                tail <= unit_roundoff / 2.0,
                "D={degree} θ={theta}: tail {tail:e}"
            );
            last = (degree, theta);
        }
    }
    check::<f32>(f64::from(f32::EPSILON) / 2.0);
    check::<f64>(f64::EPSILON / 2.0);
}

#[test]
fn plan_uses_low_degrees_for_small_norms_and_squares_large_ones() {
    assert_eq!(
        plan::<f32>(0.0),
        ExpmPlan {
            degree: 4,
            squarings: 0
        }
    );
    assert_eq!(
        plan::<f32>(0.5),
        ExpmPlan {
            degree: 8,
            squarings: 0
        }
    );
    assert_eq!(
        plan::<f32>(0.9),
        ExpmPlan {
            degree: 12,
            squarings: 0
        }
    );
    // ‖A‖₁ = 3: degree 12 with two squarings ties degree 8 with three; fewer squarings win.
    assert_eq!(
        plan::<f32>(3.0),
        ExpmPlan {
            degree: 12,
            squarings: 2
        }
    );
    assert_eq!(plan::<f32>(3.0).matrix_products(), 7);
    for norm in [1e-9, 0.01, 0.3, 1.0, 2.5, 7.0, 50.0, 1e4] {
        let p = plan::<f32>(norm);
        let theta = f32::TAYLOR_TABLE
            .iter()
            .find(|(d, _)| *d == p.degree)
            .unwrap()
            .1;
        assert!(
            norm / 2f64.powi(p.squarings as i32) <= theta,
            "norm {norm}: {p:?}"
        );
    }
}

#[test]
fn decaying_matrices_keep_relative_accuracy() {
    // Mostly negative spectra (A = −νI/2 + G): the result is tiny next to the intermediate terms,
    // which is where an f32 Taylor series loses digits without the trace shift.
    let mut rng = TestRng::new(7);
    for n in [8, 64] {
        for norm in [1.0, 5.0, 20.0, 40.0] {
            let mut a = random_with_norm(&mut rng, n, norm);
            for i in 0..n {
                a[i * n + i] -= norm / 2.0;
            }
            let a32 = to_f32(&a);
            let oracle = expm_pade13(&widen(&a32), n).unwrap();
            assert_close_f32(
                &format!("n={n} norm={norm}"),
                &expm(&a32, n).unwrap(),
                &oracle,
                1e-5,
            );
        }
    }
    let scalar = expm(&[-30.0f32], 1).unwrap()[0];
    assert!(
        (f64::from(scalar) / (-30f64).exp() - 1.0).abs() < 1e-6,
        "e^-30 = {scalar}"
    );
}

#[test]
fn malformed_input_is_rejected_with_a_reason() {
    let err = expm(&[1.0f32; 7], 2).unwrap_err().to_string();
    assert!(err.contains("7 values") && err.contains("2×2"), "{err}");
    assert!(expm::<f32>(&[], 0).is_err());
    let err = expm_batch(&[0.0, 1.0, f32::NAN, 0.0, 0.0, 0.0, 0.0, 0.0], 2)
        .unwrap_err()
        .to_string();
    assert!(err.contains("matrix 0") && err.contains("NaN"), "{err}");
    assert!(expm_pade13(&[f64::INFINITY], 1).is_err());
}

/// `torch.matrix_exp` outputs for 1-norms 1e-3 … 30 and a skew-symmetric rotation (README §d).
fn check_torch_fixture(file: &str) {
    let fx = Fixture::load(file);
    let shape = fx.shape("input.a_f64");
    let (count, n) = (shape[0], shape[1]);
    let a64 = fx.f64s("input.a_f64");
    let a32 = fx.f32s("input.a_f32");
    let norms = fx.f64s("input.norm1");
    let want64 = fx.f64s("output.expm_f64");
    let want32 = fx.f64s("output.expm_of_a_f32_in_f64");
    let nn = n * n;
    assert_eq!(norms.len(), count);
    for (i, &norm) in norms.iter().enumerate() {
        let r = i * nn..(i + 1) * nn;
        let what = format!("{file}[{i}] (norm {norm})");
        assert_close(
            &format!("{what} taylor f64"),
            &expm(&a64[r.clone()], n).unwrap(),
            &want64[r.clone()],
            1e-12,
        );
        assert_close(
            &format!("{what} pade13"),
            &expm_pade13(&a64[r.clone()], n).unwrap(),
            &want64[r.clone()],
            1e-12,
        );
        let tol = if norm <= 3.0 { 1e-5 } else { 1e-4 };
        assert_close_f32(
            &format!("{what} f32"),
            &expm(&a32[r.clone()], n).unwrap(),
            &want32[r],
            tol,
        );
    }
}

#[test]
fn matches_torch_matrix_exp_at_n8() {
    check_torch_fixture("expm_8.safetensors");
}

#[test]
fn matches_torch_matrix_exp_at_n64() {
    check_torch_fixture("expm_64.safetensors");
}

/// `expm(a)·v` in f64 from the Padé oracle, for the action tests.
fn oracle_action(a: &[f64], n: usize, v: &[f64]) -> Vec<f64> {
    let e = expm_pade13(a, n).unwrap();
    (0..n)
        .map(|i| (0..n).map(|j| e[i * n + j] * v[j]).sum())
        .collect()
}

#[test]
fn action_matches_the_oracle_applied_to_a_vector_across_norms() {
    // Random, decaying (mostly negative spectrum) and rotation-like matrices, from tiny norms to
    // well past the trained operators' (the semi-supervised augmentation's blocks reach ~10-30).
    let mut rng = TestRng::new(21);
    for n in [1, 2, 8, 64] {
        for norm in [0.0f64, 1e-6, 0.05, 0.9, 3.0, 12.0, 40.0] {
            for kind in ["random", "decaying", "skew"] {
                let mut a = random_with_norm(&mut rng, n, norm.max(1e-30));
                if norm == 0.0 {
                    a.fill(0.0);
                }
                match kind {
                    "decaying" => (0..n).for_each(|i| a[i * n + i] -= norm / 2.0),
                    "skew" => {
                        for i in 0..n {
                            for j in 0..i {
                                a[i * n + j] = -a[j * n + i];
                            }
                            a[i * n + i] = 0.0;
                        }
                    }
                    _ => {}
                }
                let a32 = to_f32(&a);
                let v32 = to_f32(&rng.normals(n));
                let want = oracle_action(&widen(&a32), n, &widen(&v32));
                let got = mclr_shared::expm::expm_action(&a32, n, &v32).unwrap();
                assert_close_f32(&format!("n={n} norm={norm} {kind}"), &got, &want, 2e-5);
                let got64 = mclr_shared::expm::expm_action(&widen(&a32), n, &widen(&v32)).unwrap();
                assert_close(
                    &format!("f64 n={n} norm={norm} {kind}"),
                    &got64,
                    &want,
                    1e-11,
                );
            }
        }
    }
}

#[test]
fn action_rejects_mismatched_sizes_and_non_finite_input() {
    use mclr_shared::expm::expm_action;
    let err = expm_action(&[1.0f32; 4], 2, &[1.0; 3])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("3 vector values") && err.contains("2×2"),
        "{err}"
    );
    assert!(expm_action::<f32>(&[], 0, &[]).is_err());
    let err = expm_action(&[0.0, f32::NAN, 0.0, 0.0], 2, &[1.0, 1.0])
        .unwrap_err()
        .to_string();
    assert!(err.contains("NaN"), "{err}");
    // Finite input whose exponential overflows f32 is an error too, not an infinite feature.
    let err = expm_action(&[200.0f32], 1, &[1.0]).unwrap_err().to_string();
    assert!(err.contains("inf"), "{err}");
}
