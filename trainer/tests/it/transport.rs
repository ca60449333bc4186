//! The transport operator `T(c) z` on candle tensors against the authors' `TransOp_expm` fixtures
//! (forward and gradients), the CPU reference `Operators`, and its own broadcasting rules.
// Tests may unwrap/panic: a panic here is a test failure with a message, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use crate::device::device;
use candle_core::{DType, Tensor, Var};
use candle_nn::VarMap;
use mclr_shared::operators::Operators;
use mclr_trainer::model::operators::{PSI_VAR_NAME, TransportOperator};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

fn fixture(name: &str) -> HashMap<String, Tensor> {
    let path = format!(
        "{}/../fixtures/reference/{name}.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    candle_core::safetensors::load(&path, &device()).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// The README's norm-wise relative error: max|x − ref| / max|ref|.
fn relative_error(x: &[f32], reference: &[f32]) -> f64 {
    assert_eq!(x.len(), reference.len());
    let diff = x
        .iter()
        .zip(reference)
        .map(|(a, b)| f64::from((a - b).abs()))
        .fold(0.0, f64::max);
    let scale = reference
        .iter()
        .map(|v| f64::from(v.abs()))
        .fold(0.0, f64::max);
    diff / scale
}

fn uniform(rng: &mut ChaCha8Rng) -> f32 {
    (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32
}

/// `count` values uniform in [−scale, scale).
fn symmetric(rng: &mut ChaCha8Rng, count: usize, scale: f32) -> Vec<f32> {
    (0..count)
        .map(|_| (uniform(rng) * 2.0 - 1.0) * scale)
        .collect()
}

#[test]
fn forward_and_gradients_match_reference_transop_fixtures() {
    for name in ["transop_small", "transop_small_dense", "transop_large"] {
        let fx = fixture(name);
        let op = TransportOperator::from_tensor(&fx["param.psi"]).unwrap();
        let c = Var::from_tensor(&fx["input.c"]).unwrap();
        let z = Var::from_tensor(&fx["input.z"]).unwrap();
        let out = op.transport(c.as_tensor(), z.as_tensor()).unwrap();
        assert_eq!(out.dims(), fx["output.out"].dims());

        let check = |what: &str, got: &Tensor, key: &str| {
            let err = relative_error(&values(got), &values(&fx[key]));
            eprintln!("{name}: {what} vs {key}: {err:.2e}");
            assert!(err <= 1e-4, "{name}: {what} vs {key}: {err:e}");
        };
        check("out", &out, "output.out");
        check("out", &out, "output.out_f64ref");

        let loss = (&out * &fx["upstream.out"]).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        check("grad psi", grads.get(op.psi()).unwrap(), "grad.psi");
        check("grad c", grads.get(c.as_tensor()).unwrap(), "grad.c");
        check("grad z", grads.get(z.as_tensor()).unwrap(), "grad.z");
    }
}

/// A small operator with dense (non-commuting) generators, on the device and as the CPU
/// reference, with coefficients (S, B, M) and features (B, d) as tensors and as host values.
struct DenseCase {
    op: TransportOperator,
    cpu: Operators,
    c: Tensor,
    z: Tensor,
    c_host: Vec<f32>,
    z_host: Vec<f32>,
}

fn dense_case(seed: u64) -> DenseCase {
    let (m, k, n, s, b) = (3, 2, 8, 3, 4);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let init = Operators::stable_init(m, k, n, || uniform(&mut rng)).unwrap();
    let psi: Vec<f32> = init
        .as_slice()
        .iter()
        .zip(symmetric(&mut rng, m * k * n * n, 0.3))
        .map(|(p, noise)| p + noise)
        .collect();
    let cpu = Operators::new(m, k, n, psi).unwrap();
    let op = TransportOperator::from_operators(&cpu, &device()).unwrap();
    let c = symmetric(&mut rng, s * b * m, 0.8);
    let z = symmetric(&mut rng, b * k * n, 1.0);
    let c_t = Tensor::from_slice(&c, (s, b, m), &device()).unwrap();
    let z_t = Tensor::from_slice(&z, (b, k * n), &device()).unwrap();
    DenseCase {
        op,
        cpu,
        c: c_t,
        z: z_t,
        c_host: c,
        z_host: z,
    }
}

#[test]
fn sample_axis_of_coefficients_broadcasts_over_features_like_a_loop() {
    let DenseCase { op, c, z, .. } = dense_case(3);
    let c = Var::from_tensor(&c).unwrap();
    let z = Var::from_tensor(&z).unwrap();
    let s = c.dims()[0];

    let all = op.transport(c.as_tensor(), z.as_tensor()).unwrap();
    assert_eq!(all.dims(), &[s, z.dims()[0], op.dim()]);
    let all_grads = all.sum_all().unwrap().backward().unwrap();

    let mut grad_z_loop = vec![0.0f32; z.elem_count()];
    for i in 0..s {
        let c_i = c.as_tensor().get(i).unwrap().detach();
        let one = op.transport(&c_i, z.as_tensor()).unwrap();
        let err = relative_error(&values(&all.get(i).unwrap()), &values(&one));
        assert!(err <= 1e-6, "sample {i}: {err:e}");
        let g = one.sum_all().unwrap().backward().unwrap();
        for (acc, x) in grad_z_loop
            .iter_mut()
            .zip(values(g.get(z.as_tensor()).unwrap()))
        {
            *acc += x;
        }
    }
    // Broadcasting z over S sums its gradient over the samples.
    let err = relative_error(&values(all_grads.get(z.as_tensor()).unwrap()), &grad_z_loop);
    eprintln!("broadcast vs loop: grad z {err:.2e}");
    assert!(err <= 1e-5, "grad z: {err:e}");
}

#[test]
fn transport_matches_cpu_reference_operators() {
    // The CPU reference moves feature row r mod B with coefficient row r: the (S, B) broadcast.
    let DenseCase {
        op,
        cpu,
        c,
        z,
        c_host,
        z_host,
    } = dense_case(5);
    let got = values(&op.transport(&c, &z).unwrap());
    let want = cpu.apply(&c_host, &z_host).unwrap();
    let err = relative_error(&got, &want);
    eprintln!("transport vs Operators::apply: {err:.2e}");
    assert!(err <= 1e-5, "{err:e}");

    let generators = values(&op.generators(&c).unwrap());
    let err = relative_error(&generators, &cpu.generators(&c_host).unwrap());
    assert!(err <= 1e-6, "generators: {err:e}");
    let norms = values(&op.frobenius_norms().unwrap());
    assert!(relative_error(&norms, &cpu.frobenius_norms()) <= 1e-6);
    assert_eq!(op.to_operators().unwrap(), cpu);
}

#[test]
fn path_coefficients_with_a_unit_batch_axis_move_every_feature() {
    // c (T, 1, M) against z (B, d): T path steps, each applied to all B features.
    let DenseCase { op, c, z, .. } = dense_case(9);
    let steps = c.get(0).unwrap().unsqueeze(1).unwrap(); // (B=4 used as T, 1, M)
    let out = op.transport(&steps, &z).unwrap();
    let (t, b) = (steps.dims()[0], z.dims()[0]);
    assert_eq!(out.dims(), &[t, b, op.dim()]);
    for i in 0..t {
        let row = steps
            .get(i)
            .unwrap()
            .broadcast_as((b, op.num_operators()))
            .unwrap();
        let one = op.transport(&row.contiguous().unwrap(), &z).unwrap();
        let err = relative_error(&values(&out.get(i).unwrap()), &values(&one));
        assert!(err <= 1e-6, "step {i}: {err:e}");
    }
}

#[test]
fn stable_init_registers_psi_in_the_varmap_with_the_shared_init() {
    let (m, k, n) = (5, 3, 8);
    let varmap = VarMap::new();
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let op = TransportOperator::stable_init(
        &varmap,
        PSI_VAR_NAME,
        m,
        k,
        n,
        || uniform(&mut rng),
        &device(),
    )
    .unwrap();
    assert_eq!(op.psi().dims(), &[m, k, n, n]);
    assert_eq!(op.psi().dtype(), DType::F32);
    assert_eq!(
        (op.num_operators(), op.blocks(), op.block_size(), op.dim()),
        (m, k, n, k * n)
    );

    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let want = Operators::stable_init(m, k, n, || uniform(&mut rng)).unwrap();
    assert_eq!(values(op.psi()), want.as_slice());

    // Registered once under its name, as the very variable the operator trains.
    let vars = varmap.data().lock().unwrap();
    assert_eq!(vars.len(), 1);
    assert_eq!(vars[PSI_VAR_NAME].as_tensor().id(), op.psi().id());
    assert_eq!(op.var().as_tensor().id(), op.psi().id());
    drop(vars);

    // Asking again for the same name reuses the variable; another shape is an error naming it.
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let again = TransportOperator::stable_init(
        &varmap,
        PSI_VAR_NAME,
        m,
        k,
        n,
        || uniform(&mut rng),
        &device(),
    )
    .unwrap();
    assert_eq!(again.psi().id(), op.psi().id());
    let err = TransportOperator::stable_init(&varmap, PSI_VAR_NAME, m, k, 4, || 0.5, &device())
        .unwrap_err()
        .to_string();
    assert!(err.contains(PSI_VAR_NAME), "{err}");
}

#[test]
fn shape_errors_name_the_argument() {
    let DenseCase { op, c, z, .. } = dense_case(1);
    let dev = device();
    let err = |r: candle_core::Result<Tensor>| r.unwrap_err().to_string();

    let wrong_m = Tensor::zeros((4, 5), DType::F32, &dev).unwrap();
    assert!(err(op.transport(&wrong_m, &z)).contains("`c`"));
    assert!(err(op.generators(&wrong_m)).contains("`c`"));
    let f64_c = c.to_dtype(DType::F64).unwrap();
    assert!(err(op.transport(&f64_c, &z)).contains("`c`"));

    let wrong_d = Tensor::zeros((4, 15), DType::F32, &dev).unwrap();
    assert!(err(op.transport(&c, &wrong_d)).contains("`z`"));
    let f16_z = z.to_dtype(DType::F16).unwrap();
    assert!(err(op.transport(&c, &f16_z)).contains("`z`"));

    // (S, B) = (3, 4) coefficients against 5 feature rows: the leading axes do not broadcast.
    let five = Tensor::zeros((5, op.dim()), DType::F32, &dev).unwrap();
    let msg = err(op.transport(&c, &five));
    assert!(msg.contains("`c`") && msg.contains("`z`"), "{msg}");

    for psi in [
        Tensor::zeros((2, 3, 4), DType::F32, &dev).unwrap(),
        Tensor::zeros((2, 3, 4, 5), DType::F32, &dev).unwrap(),
        Tensor::zeros((0, 3, 4, 4), DType::F32, &dev).unwrap(),
        Tensor::zeros((2, 3, 4, 4), DType::F64, &dev).unwrap(),
    ] {
        let msg = TransportOperator::from_tensor(&psi)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("`psi`"), "{msg}");
    }
}
