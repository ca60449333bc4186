//! Test support: the reference fixtures recorded from the authors' PyTorch code
//! (`fixtures/reference/`, see its README) as candle tensors, and the comparison rule the README
//! prescribes (`max|x − ref| ≤ tol · max|ref|`).
// Test support: a panic here is a test failure with a message, which is what we want.
#![allow(
    dead_code,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Tensor};

/// One fixture file, loaded on the CPU.
pub struct Fixture {
    name: String,
    tensors: HashMap<String, Tensor>,
}

impl Fixture {
    pub fn load(file: &str) -> Self {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/reference")
            .join(file);
        let tensors = candle_core::safetensors::load(&path, &crate::device::device())
            .unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()));
        Self {
            name: file.to_owned(),
            tensors,
        }
    }

    pub fn get(&self, key: &str) -> Tensor {
        self.tensors
            .get(key)
            .unwrap_or_else(|| panic!("{}: no tensor `{key}`", self.name))
            .clone()
    }

    /// A tensor as a flat f64 vector (any dtype).
    pub fn f64s(&self, key: &str) -> Vec<f64> {
        flat_f64(&self.get(key))
    }

    /// A 0-d tensor as f64.
    pub fn scalar(&self, key: &str) -> f64 {
        let v = self.f64s(key);
        assert_eq!(v.len(), 1, "{}: `{key}` is not a scalar", self.name);
        v[0]
    }
}

pub fn flat_f64(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

/// The README's norm-wise relative error `max|x − ref| / max|ref|`.
pub fn rel_err(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let diff = got
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    if scale == 0.0 { diff } else { diff / scale }
}

/// Asserts the README's comparison rule and prints the measured error (run with
/// `--nocapture` to see it).
pub fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: f64) {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let err = rel_err(&flat_f64(got), &flat_f64(want));
    println!("{what}: rel err {err:.3e} (tol {tol:.0e})");
    assert!(err <= tol, "{what}: rel err {err:.3e} > {tol:.0e}");
}

/// Asserts bit-for-bit equality of two tensors' values.
pub fn assert_exact(what: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let (g, w) = (flat_f64(got), flat_f64(want));
    let mismatches = g.iter().zip(&w).filter(|(a, b)| a != b).count();
    println!("{what}: {mismatches} mismatches of {} (exact)", g.len());
    assert_eq!(mismatches, 0, "{what}: not exact");
}

/// Small deterministic pseudo-random numbers for the naive-oracle tests.
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Self(
            seed.wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407),
        )
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Approximately standard normal (sum of 12 uniforms − 6).
    pub fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.uniform()).sum::<f64>() - 6.0
    }
    pub fn normals(&mut self, n: usize, scale: f64) -> Vec<f32> {
        (0..n).map(|_| (self.normal() * scale) as f32).collect()
    }
}
