//! Test support: reading the reference fixtures recorded from the authors' PyTorch code
//! (`fixtures/reference/`, see its README) and the comparison rule they prescribe.
// Test support: a panic here is a test failure with a message, which is what we want.
#![allow(
    dead_code,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::path::PathBuf;

/// Path of a file under the repository's `fixtures/reference/`.
pub fn fixture_path(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/reference")
        .join(file)
}

/// One safetensors fixture file held in memory.
pub struct Fixture {
    name: String,
    bytes: Vec<u8>,
}

impl Fixture {
    pub fn load(file: &str) -> Self {
        let path = fixture_path(file);
        // Tests run natively, where reading the fixture files is fine.
        #[allow(clippy::disallowed_methods)]
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()));
        Self {
            name: file.to_owned(),
            bytes,
        }
    }

    fn view(&self, key: &str) -> safetensors::tensor::TensorView<'_> {
        let st = safetensors::SafeTensors::deserialize(&self.bytes)
            .unwrap_or_else(|e| panic!("{}: not safetensors: {e}", self.name));
        st.tensor(key)
            .unwrap_or_else(|e| panic!("{}: no tensor `{key}`: {e}", self.name))
    }

    pub fn shape(&self, key: &str) -> Vec<usize> {
        self.view(key).shape().to_vec()
    }

    /// Any float or integer tensor, widened to f64.
    pub fn f64s(&self, key: &str) -> Vec<f64> {
        use safetensors::Dtype;
        let v = self.view(key);
        let d = v.data();
        match v.dtype() {
            Dtype::F64 => d
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            Dtype::F32 => d
                .chunks_exact(4)
                .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
                .collect(),
            Dtype::I64 => d
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
                .collect(),
            Dtype::U8 => d.iter().map(|&b| f64::from(b)).collect(),
            other => panic!("{}: `{key}` has unsupported dtype {other:?}", self.name),
        }
    }

    /// An f32 tensor exactly as stored.
    pub fn f32s(&self, key: &str) -> Vec<f32> {
        let v = self.view(key);
        assert_eq!(
            v.dtype(),
            safetensors::Dtype::F32,
            "{}: `{key}` is not f32",
            self.name
        );
        v.data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    pub fn scalar(&self, key: &str) -> f64 {
        let v = self.f64s(key);
        assert_eq!(v.len(), 1, "{}: `{key}` is not a scalar", self.name);
        v[0]
    }
}

/// The fixtures' comparison rule: `max|x − ref| ≤ tol · max|ref|`.
#[track_caller]
pub fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let err = got
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (g, w)| m.max((g - w).abs()));
    assert!(
        err <= tol * scale,
        "{what}: max abs error {err:.3e} > {tol:.1e} × max|ref| {scale:.3e} (relative {:.3e})",
        err / scale
    );
}

/// [`assert_close`] for f32 results.
#[track_caller]
pub fn assert_close_f32(what: &str, got: &[f32], want: &[f64], tol: f64) {
    let got: Vec<f64> = got.iter().map(|&x| f64::from(x)).collect();
    assert_close(what, &got, want, tol);
}

/// Deterministic random numbers for tests (splitmix64), so test inputs need no extra crate.
pub struct TestRng(u64);

impl TestRng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
    pub fn normals(&mut self, len: usize) -> Vec<f64> {
        (0..len).map(|_| self.normal()).collect()
    }
}
