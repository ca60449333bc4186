//! The differentiable candle expm against the CPU reference, the authors' `torch.matrix_exp`
//! fixtures, closed forms, central finite differences and the block-matrix Fréchet identity.
// Tests may unwrap/panic: a panic here is a test failure with a message, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::device::device;
use candle_core::{DType, Tensor, Var};
use mclr_shared::expm::{expm_batch, expm_pade13, norm1};
use mclr_trainer::expm::{expm, expm_composite};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// Standard normal draws (Box–Muller) from a seeded generator.
fn normals(rng: &mut ChaCha8Rng, count: usize) -> Vec<f64> {
    let mut uniform = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    (0..count)
        .map(|_| {
            let (u, v) = (1.0 - uniform(), uniform());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        })
        .collect()
}

/// A random n×n Gaussian matrix rescaled to 1-norm exactly `norm`.
fn random_with_norm(rng: &mut ChaCha8Rng, n: usize, norm: f64) -> Vec<f64> {
    let a = normals(rng, n * n);
    let s = norm / norm1(&a, n);
    a.iter().map(|x| x * s).collect()
}

/// Largest norm-wise relative error over the n×n matrices of a batch:
/// max over matrices of max|x − ref| / max|ref|.
fn max_matrix_error(x: &[f64], reference: &[f64], nn: usize) -> f64 {
    assert_eq!(x.len(), reference.len());
    x.chunks_exact(nn)
        .zip(reference.chunks_exact(nn))
        .map(|(x, r)| {
            let diff = x
                .iter()
                .zip(r)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            let scale = r.iter().map(|v| v.abs()).fold(0.0, f64::max);
            diff / scale
        })
        .fold(0.0, f64::max)
}

fn widen(a: &[f32]) -> Vec<f64> {
    a.iter().map(|&x| f64::from(x)).collect()
}

fn values_f64(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn fixture(name: &str) -> std::collections::HashMap<String, Tensor> {
    let path = format!(
        "{}/../fixtures/reference/{name}.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    candle_core::safetensors::load(&path, &device()).unwrap()
}

#[test]
fn f32_forward_matches_cpu_reference_on_batches_mixing_norms_from_1e_6_to_30() {
    let norms = [1e-6, 1e-4, 1e-2, 0.1, 0.5, 1.0, 3.0, 10.0, 30.0];
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for n in [8, 64] {
        // Two leading axes (S, B) = (2, 9), so every norm meets the batch's largest one.
        let a: Vec<f32> = (0..2)
            .flat_map(|_| {
                norms
                    .iter()
                    .map(|&v| random_with_norm(&mut rng, n, v))
                    .collect::<Vec<_>>()
            })
            .flatten()
            .map(|x| x as f32)
            .collect();
        let want = expm_batch(&a, n).unwrap();
        let tensor = Tensor::from_slice(&a, (2, norms.len(), n, n), &device()).unwrap();
        let got = expm(&tensor).unwrap();
        assert_eq!(got.dims(), &[2, norms.len(), n, n]);
        assert_eq!(got.dtype(), DType::F32);
        let err = max_matrix_error(&values_f64(&got), &widen(&want), n * n);
        eprintln!("n = {n}: largest relative error vs the CPU reference: {err:.2e}");
        assert!(err <= 1e-5, "n = {n}: {err:e}");
    }
}

#[test]
fn small_matrix_keeps_its_accuracy_in_a_batch_with_a_large_norm() {
    // Squarings are per matrix: a 1-norm-0.5 block next to a 1-norm-30 one is not squared five
    // times (which would cost it about 1e-5 in f32 at n = 64).
    let n = 64;
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let small: Vec<f32> = random_with_norm(&mut rng, n, 0.5)
        .iter()
        .map(|&x| x as f32)
        .collect();
    let large: Vec<f32> = random_with_norm(&mut rng, n, 30.0)
        .iter()
        .map(|&x| x as f32)
        .collect();
    let exact = expm_pade13(&widen(&small), n).unwrap();
    let batch = Tensor::from_slice(&[small, large].concat(), (2, n, n), &device()).unwrap();
    let got = values_f64(&expm(&batch).unwrap());
    let err = max_matrix_error(&got[..n * n], &exact, n * n);
    eprintln!("norm 0.5 next to norm 30: {err:.2e} vs exact");
    assert!(err <= 1e-6, "{err:e}");
}

#[test]
fn forward_matches_torch_matrix_exp_fixtures_in_f32_and_f64() {
    for n in [8, 64] {
        let fx = fixture(&format!("expm_{n}"));
        let nn = n * n;

        let a32 = &fx["input.a_f32"];
        let got32 = values_f64(&expm(a32).unwrap());
        let exact = values_f64(&fx["output.expm_of_a_f32_in_f64"]);
        // Matrices 0–2 have 1-norm ≤ 3 (tolerance 1e-5), 3–5 have 10–30 (1e-4), per the README.
        for (index, tol) in [
            (0, 1e-5),
            (1, 1e-5),
            (2, 1e-5),
            (3, 1e-4),
            (4, 1e-4),
            (5, 1e-4),
        ] {
            let range = index * nn..(index + 1) * nn;
            let err = max_matrix_error(&got32[range.clone()], &exact[range], nn);
            eprintln!("n = {n}, matrix {index}: f32 error vs exact {err:.2e}");
            assert!(err <= tol, "n = {n}, matrix {index}: {err:e} > {tol:e}");
        }
        // And the same inputs through the CPU reference, which runs the same algorithm.
        let reference =
            expm_batch(&a32.flatten_all().unwrap().to_vec1::<f32>().unwrap(), n).unwrap();
        let err = max_matrix_error(&got32, &widen(&reference), nn);
        eprintln!("n = {n}: f32 error vs the CPU reference {err:.2e}");
        assert!(err <= 1e-5, "n = {n}: {err:e}");

        let got64 = values_f64(&expm(&fx["input.a_f64"]).unwrap());
        let err = max_matrix_error(&got64, &values_f64(&fx["output.expm_f64"]), nn);
        eprintln!("n = {n}: f64 error vs torch f64 {err:.2e}");
        assert!(err <= 1e-12, "n = {n}: {err:e}");
    }
}

#[test]
fn scaled_rotation_generators_exponentiate_to_cos_sin() {
    // a·I + β·J (J a 2×2 rotation generator per pair) is what every block looks like at the stable
    // init: expm = e^a (cos β I + sin β J). Batch of three blocks with different a, β.
    let n = 8;
    let params = [(1e-4, 2.5), (-0.3, -7.0), (0.8, 0.01)];
    let mut a = Vec::new();
    let mut want = Vec::new();
    for &(re, im) in &params {
        let (mut blk, mut exact) = (vec![0.0f64; n * n], vec![0.0f64; n * n]);
        for p in 0..n / 2 {
            let (i, j) = (2 * p, 2 * p + 1);
            blk[i * n + i] = re;
            blk[j * n + j] = re;
            blk[i * n + j] = -im;
            blk[j * n + i] = im;
            let e = f64::exp(re);
            exact[i * n + i] = e * im.cos();
            exact[j * n + j] = e * im.cos();
            exact[i * n + j] = -e * im.sin();
            exact[j * n + i] = e * im.sin();
        }
        a.extend(blk);
        want.extend(exact);
    }
    let t = Tensor::from_slice(&a, (3, n, n), &device()).unwrap();
    let err64 = max_matrix_error(&values_f64(&expm(&t).unwrap()), &want, n * n);
    let err32 = max_matrix_error(
        &values_f64(&expm(&t.to_dtype(DType::F32).unwrap()).unwrap()),
        &want,
        n * n,
    );
    eprintln!("rotation closed form: f64 {err64:.2e}, f32 {err32:.2e}");
    assert!(err64 <= 1e-13, "{err64:e}");
    assert!(err32 <= 2e-6, "{err32:e}");
}

#[test]
fn single_matrix_and_empty_batch_keep_their_shape() {
    let a = Tensor::from_slice(&[0.0f32, 1.0, -1.0, 0.0], (2, 2), &device()).unwrap();
    let e = expm(&a).unwrap();
    assert_eq!(e.dims(), &[2, 2]);
    let v = e.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let (c, s) = (1f32.cos(), 1f32.sin());
    for (x, w) in v.iter().zip([c, s, -s, c]) {
        assert!((x - w).abs() < 1e-6, "{v:?}");
    }
    let empty = Tensor::zeros((0, 3, 4, 4), DType::F32, &device()).unwrap();
    assert_eq!(expm(&empty).unwrap().dims(), &[0, 3, 4, 4]);
}

#[test]
fn transposed_input_gives_transposed_exponential() {
    // A strided (non-contiguous) view goes through the same path: expm(Aᵀ) = expm(A)ᵀ.
    let n = 8;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let a: Vec<f64> = (0..3)
        .flat_map(|_| random_with_norm(&mut rng, n, 4.0))
        .collect();
    let a = Tensor::from_slice(&a, (3, n, n), &device()).unwrap();
    let of_transpose = expm(&a.t().unwrap()).unwrap();
    let transposed = expm(&a).unwrap().t().unwrap();
    let err = max_matrix_error(&values_f64(&of_transpose), &values_f64(&transposed), n * n);
    assert!(err <= 1e-14, "{err:e}");
}

/// Σ G ⊙ expm(A) for one f64 matrix, through the function under test.
fn objective(a: &[f64], g: &[f64], n: usize) -> f64 {
    let t = Tensor::from_slice(a, (n, n), &device()).unwrap();
    let e = expm(&t)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    e.iter().zip(g).map(|(x, y)| x * y).sum()
}

/// Gradient of Σ G ⊙ expm(A) with respect to each A in a (R, n, n) batch, by autograd.
fn autograd(a: &[f64], g: &[f64], rows: usize, n: usize) -> Vec<f64> {
    let var = Var::from_slice(a, (rows, n, n), &device()).unwrap();
    let upstream = Tensor::from_slice(g, (rows, n, n), &device()).unwrap();
    let loss = (expm(var.as_tensor()).unwrap() * upstream)
        .unwrap()
        .sum_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    values_f64(grads.get(var.as_tensor()).unwrap())
}

#[test]
fn f64_gradient_matches_central_finite_differences() {
    let n = 5;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let a = random_with_norm(&mut rng, n, 2.0);
    let g = normals(&mut rng, n * n);
    let grad = autograd(&a, &g, 1, n);

    // Fourth-order central difference: truncation O(h⁴) ≈ 1e-12, rounding ≈ 1e-16·|f|/h.
    let h = 1e-3;
    let fd: Vec<f64> = (0..n * n)
        .map(|idx| {
            let at = |step: f64| {
                let mut p = a.clone();
                p[idx] += step;
                objective(&p, &g, n)
            };
            (8.0 * (at(h) - at(-h)) - (at(2.0 * h) - at(-2.0 * h))) / (12.0 * h)
        })
        .collect();
    let err = max_matrix_error(&grad, &fd, n * n);
    eprintln!("gradient vs finite differences: {err:.2e}");
    assert!(err <= 1e-9, "{err:e}");
}

#[test]
fn f64_gradient_equals_upper_right_block_of_expm_of_block_matrix() {
    // docs/method.md §3: d/dA Σ G ⊙ expm(A) = [expm([[Aᵀ, G], [0, Aᵀ]])]₁₂. One batch mixes norms, so the
    // smaller matrices are differentiated through extra squarings.
    let n = 6;
    let norms = [0.05, 2.0, 8.0, 25.0];
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut a = Vec::new();
    let mut g = Vec::new();
    for &v in &norms {
        a.extend(random_with_norm(&mut rng, n, v));
        g.extend(normals(&mut rng, n * n));
    }
    let grad = autograd(&a, &g, norms.len(), n);

    let nn = n * n;
    let mut want = Vec::new();
    for (am, gm) in a.chunks_exact(nn).zip(g.chunks_exact(nn)) {
        let m = 2 * n;
        let mut block = vec![0.0; m * m];
        for i in 0..n {
            for j in 0..n {
                block[i * m + j] = am[j * n + i];
                block[(n + i) * m + n + j] = am[j * n + i];
                block[i * m + n + j] = gm[i * n + j];
            }
        }
        let e = expm_pade13(&block, m).unwrap();
        for i in 0..n {
            want.extend_from_slice(&e[i * m + n..i * m + 2 * n]);
        }
    }
    for (index, (got, want)) in grad.chunks_exact(nn).zip(want.chunks_exact(nn)).enumerate() {
        let err = max_matrix_error(got, want, nn);
        eprintln!(
            "norm {}: gradient vs block identity {err:.2e}",
            norms[index]
        );
        assert!(err <= 1e-9, "norm {}: {err:e}", norms[index]);
    }
}

/// Value and gradient of Σ G ⊙ f(A) for a (R, n, n) batch in `dtype`.
fn value_and_grad(
    f: fn(&Tensor) -> candle_core::Result<Tensor>,
    a: &[f64],
    g: &[f64],
    rows: usize,
    n: usize,
    dtype: DType,
) -> (Vec<f64>, Vec<f64>) {
    let a = Tensor::from_slice(a, (rows, n, n), &device())
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    let var = Var::from_tensor(&a).unwrap();
    let upstream = Tensor::from_slice(g, (rows, n, n), &device())
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    let e = f(var.as_tensor()).unwrap();
    let grads = (&e * upstream)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    (
        values_f64(&e),
        values_f64(grads.get(var.as_tensor()).unwrap()),
    )
}

#[test]
fn cpu_op_matches_the_autograd_composite_in_value_and_gradient() {
    // The custom op's hand-written adjoint against candle's autograd through the same
    // algorithm: batches mixing norms (so plans differ in degree and squarings), n = 7 and the
    // paper's n = 64, in f64 (to rounding) and f32.
    for (n, dtype, tol) in [
        (7, DType::F64, 1e-12),
        (64, DType::F64, 1e-12),
        (64, DType::F32, 1e-5),
    ] {
        let norms = [1e-4, 0.3, 1.0, 4.0, 30.0];
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let (mut a, mut g) = (Vec::new(), Vec::new());
        for &v in &norms {
            a.extend(random_with_norm(&mut rng, n, v));
            g.extend(normals(&mut rng, n * n));
        }
        let (e_op, g_op) = value_and_grad(expm, &a, &g, norms.len(), n, dtype);
        let (e_ref, g_ref) = value_and_grad(expm_composite, &a, &g, norms.len(), n, dtype);
        let nn = n * n;
        let e_err = max_matrix_error(&e_op, &e_ref, nn);
        let g_err = max_matrix_error(&g_op, &g_ref, nn);
        eprintln!("n {n} {dtype:?}: value {e_err:.1e}, gradient {g_err:.1e}");
        assert!(e_err <= tol, "n {n} {dtype:?}: values differ by {e_err:e}");
        assert!(
            g_err <= tol,
            "n {n} {dtype:?}: gradients differ by {g_err:e}"
        );
    }
}

#[test]
fn shape_and_dtype_errors_name_the_argument() {
    let dev = device();
    let cases = [
        Tensor::zeros(4, DType::F32, &dev).unwrap(),
        Tensor::zeros((3, 4, 5), DType::F32, &dev).unwrap(),
        Tensor::zeros((2, 0, 0), DType::F32, &dev).unwrap(),
        Tensor::zeros((2, 4, 4), DType::F16, &dev).unwrap(),
        Tensor::zeros((2, 4, 4), DType::U32, &dev).unwrap(),
    ];
    for a in &cases {
        let err = expm(a).unwrap_err().to_string();
        assert!(err.contains("`a`"), "{:?} {:?}: {err}", a.dims(), a.dtype());
    }
}

#[test]
fn non_finite_input_is_rejected_naming_the_argument() {
    // Index 21 is on a diagonal (it also poisons the trace shift), 22 is off it.
    for (bad, index) in [
        (f32::NAN, 21),
        (f32::NAN, 22),
        (f32::INFINITY, 21),
        (f32::INFINITY, 22),
    ] {
        let mut v = vec![0.5f32; 2 * 16];
        v[index] = bad;
        let a = Tensor::from_slice(&v, (2, 4, 4), &device()).unwrap();
        let err = expm(&a).unwrap_err().to_string();
        assert!(
            err.contains("`a`") && err.contains("NaN or infinite"),
            "{err}"
        );
    }
}
