//! The CPU kernels of the backbone against independent oracles: the GEMM convolution against
//! candle's own `conv2d` (values and both gradients) and central finite differences in f64; the
//! fused batch norm (+ ReLU) against candle's composite batch norm (values, running statistics,
//! gradients); and one whole training step, fast kernels against reference kernels.

// A panic in a test is a failure with a message, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use mclr_trainer::config::Config;
use mclr_trainer::model::Kernels;
use mclr_trainer::model::batch_norm::BatchNorm;
use mclr_trainer::model::conv::conv2d;
use mclr_trainer::model::ssl::SslModel;
use mclr_trainer::train::step::Objective;

/// Deterministic values in [−1, 1) (a 64-bit LCG), independent of the library's generators.
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        })
        .collect()
}

fn tensor(shape: &[usize], seed: u64, dtype: DType) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(values(n, seed), shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn flat(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// max |a − b| / max |b|.
fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    let (a, b) = (flat(a), flat(b));
    let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-30);
    a.iter()
        .zip(&b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// Value and gradients of Σ r ⊙ conv(x, w), through `f`.
fn conv_with_grads(
    f: impl Fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>,
    x: &Tensor,
    w: &Tensor,
    r_seed: u64,
) -> (Tensor, Tensor, Tensor) {
    let (xv, wv) = (Var::from_tensor(x).unwrap(), Var::from_tensor(w).unwrap());
    let y = f(xv.as_tensor(), wv.as_tensor()).unwrap();
    let r = tensor(y.dims(), r_seed, y.dtype());
    let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    (
        y,
        grads.get(&xv).unwrap().clone(),
        grads.get(&wv).unwrap().clone(),
    )
}

#[test]
fn gemm_convolution_matches_candle_values_and_both_gradients() {
    // (batch, channels, height, width, out channels, kernel, stride, padding): ResNet-18's
    // shapes (3×3 stride 1 and 2 with padding 1, 1×1 stride-2 shortcut, the stem) at batch 1 and
    // odd sizes, plus a 7×7 kernel and non-square inputs.
    let cases = [
        (2, 3, 8, 8, 4, 3, 1, 1),
        (1, 4, 7, 5, 6, 3, 1, 1),
        (3, 5, 9, 9, 7, 3, 2, 1),
        (5, 6, 8, 6, 3, 1, 2, 0),
        (1, 3, 11, 13, 2, 7, 2, 3),
        (4, 8, 4, 4, 16, 3, 1, 1),
        (2, 2, 5, 5, 3, 3, 1, 0),
        (33, 16, 6, 6, 8, 3, 1, 1),
    ];
    for (i, &(b, c, h, w, o, k, s, p)) in cases.iter().enumerate() {
        let seed = i as u64 * 10;
        let x = tensor(&[b, c, h, w], seed + 1, DType::F32);
        let wt = tensor(&[o, c, k, k], seed + 2, DType::F32);
        let (y, dx, dw) = conv_with_grads(|x, w| conv2d(x, w, s, p), &x, &wt, seed + 3);
        let (y_ref, dx_ref, dw_ref) =
            conv_with_grads(|x, w| x.conv2d(w, p, s, 1, 1), &x, &wt, seed + 3);
        let case = format!(
            "case {i}: x {:?} w {:?} stride {s} pad {p}",
            x.dims(),
            wt.dims()
        );
        assert!(rel_err(&y, &y_ref) < 1e-5, "values differ, {case}");
        assert!(
            rel_err(&dx, &dx_ref) < 1e-5,
            "input gradients differ, {case}"
        );
        assert!(
            rel_err(&dw, &dw_ref) < 1e-5,
            "weight gradients differ, {case}"
        );
    }
}

#[test]
fn gemm_convolution_gradients_match_central_differences_in_f64() {
    let (b, c, h, w, o, k, s, p) = (2, 3, 5, 6, 4, 3, 2, 1);
    let x = tensor(&[b, c, h, w], 71, DType::F64);
    let wt = tensor(&[o, c, k, k], 72, DType::F64);
    let (y, dx, dw) = conv_with_grads(|x, w| conv2d(x, w, s, p), &x, &wt, 73);
    let r = tensor(y.dims(), 73, DType::F64);
    let objective = |x: &Tensor, w: &Tensor| -> f64 {
        (conv2d(x, w, s, p).unwrap() * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let h_step = 1e-6;
    for (which, base, grad) in [("x", &x, &dx), ("w", &wt, &dw)] {
        let values = flat(base);
        let grad = flat(grad);
        for idx in (0..values.len()).step_by(7) {
            let shifted = |delta: f64| {
                let mut v = values.clone();
                v[idx] += delta;
                Tensor::from_vec(v, base.dims(), &Device::Cpu).unwrap()
            };
            let (plus, minus) = (shifted(h_step), shifted(-h_step));
            let fd = if which == "x" {
                (objective(&plus, &wt) - objective(&minus, &wt)) / (2.0 * h_step)
            } else {
                (objective(&x, &plus) - objective(&x, &minus)) / (2.0 * h_step)
            };
            assert!(
                (fd - grad[idx]).abs() < 1e-7 * (1.0 + fd.abs()),
                "d/d{which}[{idx}]: finite difference {fd}, gradient {}",
                grad[idx]
            );
        }
    }
}

#[test]
fn conv2d_rejects_mismatched_channels_with_a_message() {
    let x = tensor(&[1, 3, 4, 4], 1, DType::F32);
    let w = tensor(&[2, 4, 3, 3], 2, DType::F32);
    let err = conv2d(&x, &w, 1, 1).unwrap_err().to_string();
    assert!(err.contains("3 channels"), "{err}");
}

/// A batch-norm layer over `c` channels with non-trivial γ and β, and the map holding its state.
fn batch_norm(c: usize, kernels: Kernels, seed: u64) -> (BatchNorm, VarMap) {
    let mut varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let mut bn = BatchNorm::new(c, vb).unwrap();
    bn.set_kernels(kernels);
    for (name, shift) in [("weight", 1.0), ("bias", 0.0)] {
        let v = (tensor(&[c], seed + shift as u64, DType::F32) + shift).unwrap();
        varmap.set_one(name, &v).unwrap();
    }
    (bn, varmap)
}

#[test]
fn fused_batch_norm_matches_candle_in_values_statistics_and_gradients() {
    for (shape, relu) in [
        (vec![4, 3, 5, 5], true),
        (vec![4, 3, 5, 5], false),
        (vec![6, 10], true),
        (vec![2, 7, 1, 3], false),
    ] {
        let c = shape[1];
        let x = tensor(&shape, 5, DType::F32);
        let r = tensor(&shape, 6, DType::F32);
        let mut outputs = Vec::new();
        for kernels in [Kernels::Fast, Kernels::Reference] {
            let (bn, varmap) = batch_norm(c, kernels, 9);
            let xv = Var::from_tensor(&x).unwrap();
            let y = bn.forward_act(xv.as_tensor(), true, relu).unwrap();
            let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let data = varmap.data().lock().unwrap();
            let grad_of = |name: &str| grads.get(data[name].as_tensor()).unwrap().clone();
            outputs.push((
                y.clone(),
                grads.get(&xv).unwrap().clone(),
                grad_of("weight"),
                grad_of("bias"),
                bn.running_mean().clone(),
                bn.running_var().clone(),
            ));
        }
        let (fast, reference) = (&outputs[0], &outputs[1]);
        let what = format!("shape {shape:?} relu {relu}");
        assert!(rel_err(&fast.0, &reference.0) < 1e-5, "values, {what}");
        assert!(rel_err(&fast.1, &reference.1) < 1e-4, "dx, {what}");
        assert!(rel_err(&fast.2, &reference.2) < 1e-5, "dγ, {what}");
        assert!(rel_err(&fast.3, &reference.3) < 1e-5, "dβ, {what}");
        assert!(
            rel_err(&fast.4, &reference.4) < 1e-6,
            "running mean, {what}"
        );
        assert!(rel_err(&fast.5, &reference.5) < 1e-6, "running var, {what}");
    }
}

#[test]
fn fused_batch_norm_gradient_matches_central_differences_in_f64() {
    let shape = [3, 2, 2, 3];
    let x = tensor(&shape, 11, DType::F64);
    let r = tensor(&shape, 12, DType::F64);
    let mut varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
    let bn = BatchNorm::new(2, vb).unwrap();
    varmap
        .set_one(
            "weight",
            Tensor::new(&[1.5f64, -0.7], &Device::Cpu).unwrap(),
        )
        .unwrap();
    let objective = |x: &Tensor| -> f64 {
        (bn.forward_act(x, true, true).unwrap() * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let xv = Var::from_tensor(&x).unwrap();
    let grads = (bn.forward_act(xv.as_tensor(), true, true).unwrap() * &r)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let grad = flat(grads.get(&xv).unwrap());
    let base = flat(&x);
    for idx in 0..base.len() {
        let at = |delta: f64| {
            let mut v = base.clone();
            v[idx] += delta;
            objective(&Tensor::from_vec(v, &shape[..], &Device::Cpu).unwrap())
        };
        let fd = (at(1e-6) - at(-1e-6)) / 2e-6;
        assert!(
            (fd - grad[idx]).abs() < 1e-6 * (1.0 + fd.abs()),
            "dx[{idx}]: finite difference {fd}, gradient {}",
            grad[idx]
        );
    }
}

/// Loss and every gradient of one training step of `config` with `kernels` on `device`.
fn one_step(config: &Config, kernels: Kernels, device: &Device) -> (f64, Vec<(String, Vec<f64>)>) {
    let mut model = SslModel::new(config, 32, device).unwrap();
    model.set_kernels(kernels);
    let mut objective = Objective::new(config);
    let x0 = tensor(&[8, 3, 32, 32], 21, DType::F32)
        .to_device(device)
        .unwrap();
    let x1 = tensor(&[8, 3, 32, 32], 22, DType::F32)
        .to_device(device)
        .unwrap();
    let out = objective.step(&model, &x0, &x1, 3).unwrap();
    let grads = out.loss.backward().unwrap();
    let data = model.varmap.data().lock().unwrap();
    let mut named: Vec<(String, Vec<f64>)> = data
        .iter()
        .filter_map(|(name, var)| grads.get(var.as_tensor()).map(|g| (name.clone(), flat(g))))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    (out.read_terms().unwrap().total, named)
}

#[test]
fn a_training_step_gives_the_same_loss_and_gradients_with_fast_and_reference_kernels() {
    for method in ["demo", "cifar10-simclr"] {
        let config = Config::resolve(
            method,
            &[
                "model.base_width=4".to_owned(),
                "method.block_size=8".to_owned(),
                "method.operators=4".to_owned(),
                "model.projection_hidden=16".to_owned(),
                "model.projection_dim=8".to_owned(),
            ],
        )
        .unwrap();
        // The production path on the test device (a GPU under `cargo xtask gpu-check`) against
        // the CPU's composite reference.
        let (loss_fast, fast) = one_step(&config, Kernels::Fast, &crate::device::device());
        let (loss_ref, reference) = one_step(&config, Kernels::Reference, &Device::Cpu);
        assert!(
            (loss_fast - loss_ref).abs() < 1e-5 * loss_ref.abs().max(1.0),
            "{method}: loss {loss_fast} vs {loss_ref}"
        );
        assert_eq!(
            fast.len(),
            reference.len(),
            "{method}: gradient sets differ"
        );
        assert!(fast.iter().any(|(n, _)| n.starts_with("backbone.conv1")));
        // A gradient that is zero in exact arithmetic (a bias followed by batch norm) is rounding
        // noise in both: compare every gradient on at least a small share of the largest one.
        let largest = reference
            .iter()
            .flat_map(|(_, g)| g.iter())
            .fold(0.0f64, |m, x| m.max(x.abs()));
        for ((name, g), (name_ref, g_ref)) in fast.iter().zip(&reference) {
            assert_eq!(name, name_ref);
            let scale = g_ref
                .iter()
                .fold(0.0f64, |m, x| m.max(x.abs()))
                .max(1e-2 * largest);
            let err = g
                .iter()
                .zip(g_ref)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()))
                / scale;
            assert!(
                err < 2e-4,
                "{method}: gradient of {name} differs by {err:.2e} (relative)"
            );
        }
    }
}

#[test]
fn inference_features_equal_evaluation_mode_features_and_record_no_graph() {
    let config =
        Config::resolve("stl10-simclr-nohead", &["model.base_width=4".to_owned()]).unwrap();
    for kernels in [Kernels::Fast, Kernels::Reference] {
        let mut model = SslModel::new(&config, 64, &Device::Cpu).unwrap();
        model.set_kernels(kernels);
        // A training step first, so the running statistics are not the init's 0 and 1.
        let x = tensor(&[6, 3, 64, 64], 31, DType::F32);
        model.features(&x, true).unwrap();
        let eval = model.features(&x, false).unwrap();
        let inferred = model.infer_features(&x).unwrap();
        assert!(
            !inferred.track_op(),
            "{kernels:?}: inference recorded a graph"
        );
        assert!(
            rel_err(&inferred, &eval) < 1e-5,
            "{kernels:?}: inference differs from evaluation mode by {:.2e}",
            rel_err(&inferred, &eval)
        );
    }
}

#[test]
fn fused_residual_add_relu_matches_candle_in_values_and_gradients() {
    use mclr_trainer::model::residual::add_relu;
    let a = Var::from_tensor(&tensor(&[3, 4, 5, 7], 41, DType::F32)).unwrap();
    let b = Var::from_tensor(&tensor(&[3, 4, 5, 7], 42, DType::F32)).unwrap();
    let r = tensor(&[3, 4, 5, 7], 43, DType::F32);
    let run = |f: &dyn Fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>| {
        let y = f(a.as_tensor(), b.as_tensor()).unwrap();
        let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        (
            y,
            grads.get(&a).unwrap().clone(),
            grads.get(&b).unwrap().clone(),
        )
    };
    let fused = run(&|a, b| add_relu(a, b));
    let reference = run(&|a, b| (a + b)?.relu());
    assert_eq!(flat(&fused.0), flat(&reference.0));
    assert_eq!(flat(&fused.1), flat(&reference.1));
    assert_eq!(flat(&fused.2), flat(&reference.2));
    assert!(flat(&fused.0).contains(&0.0) && flat(&fused.0).iter().any(|v| *v > 0.0));
    let err = add_relu(a.as_tensor(), &tensor(&[3, 4, 5, 6], 1, DType::F32)).unwrap_err();
    assert!(err.to_string().contains("shapes differ"), "{err}");
}
