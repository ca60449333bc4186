//! The compute engine behind the views: WebGPU compute shaders where the browser has them, the
//! `mclr-shared` CPU code otherwise. Both answer the same questions (group elements T(c), their
//! action on features, nearest gallery neighbours) through the same async methods, so the views
//! never ask which one they run on. [`Engine::select`] is the one place that decides.

use mclr_shared::geometry::{KnnIndex, Metric, Neighbor};
use mclr_shared::operators::{BlockDiagonal, Operators};

use crate::error::Result;

/// Which engine runs, as the backend badge shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// WebGPU compute on the named adapter.
    WebGpu {
        /// The adapter's name, e.g. "SwiftShader Device".
        adapter: String,
    },
    /// The CPU code of `mclr-shared`.
    Cpu {
        /// Why WebGPU is not used, in plain words.
        reason: String,
    },
}

impl Backend {
    /// Badge text: `WebGPU (<adapter>)` or `CPU fallback`.
    pub fn label(&self) -> String {
        match self {
            Self::WebGpu { adapter } => format!("WebGPU ({adapter})"),
            Self::Cpu { .. } => "CPU fallback".to_owned(),
        }
    }

    /// Value of the badge's `data-backend` attribute: `webgpu` or `cpu`.
    pub fn key(&self) -> &'static str {
        match self {
            Self::WebGpu { .. } => "webgpu",
            Self::Cpu { .. } => "cpu",
        }
    }

    /// A longer explanation for the badge's tooltip.
    pub fn detail(&self) -> String {
        match self {
            Self::WebGpu { adapter } => format!("Compute runs in WebGPU shaders on {adapter}."),
            Self::Cpu { reason } => format!("Compute runs on the CPU: {reason}."),
        }
    }
}

/// The CPU engine: `mclr-shared`'s reference code, single-threaded in the browser.
#[derive(Debug, Clone)]
pub struct CpuEngine {
    reason: String,
}

/// The engine the views compute with.
#[derive(Debug, Clone)]
pub enum Engine {
    /// `mclr-shared` on the CPU.
    Cpu(CpuEngine),
}

/// Group elements T(c) for one or more coefficient rows, in the engine's own form.
#[derive(Debug, Clone)]
pub enum Transport {
    /// Blocks held in memory for the CPU engine.
    Cpu(BlockDiagonal),
}

/// A gallery prepared for nearest-neighbour queries (cosine similarity), in the engine's own form.
#[derive(Debug, Clone)]
pub enum GalleryIndex {
    /// The CPU's exact index.
    Cpu(KnnIndex),
}

impl Engine {
    /// The CPU engine, with the reason WebGPU is not used.
    pub fn cpu(reason: impl Into<String>) -> Self {
        Self::Cpu(CpuEngine {
            reason: reason.into(),
        })
    }

    /// Picks the engine: WebGPU when the browser exposes `navigator.gpu` and an adapter is
    /// obtained, the CPU otherwise or when `force_cpu` is set (the `cpu=1` link parameter).
    pub async fn select(force_cpu: bool) -> Self {
        if force_cpu {
            return Self::cpu("forced by the cpu=1 link parameter");
        }
        if !browser_has_webgpu() {
            return Self::cpu("this browser does not expose WebGPU");
        }
        Self::cpu("the WebGPU engine is not part of this build yet")
    }

    /// What the badge shows.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Cpu(cpu) => Backend::Cpu {
                reason: cpu.reason.clone(),
            },
        }
    }

    /// T(c) for every row of `coefficients` (R × M): K matrix exponentials per row.
    pub async fn transport(
        &self,
        operators: &Operators,
        coefficients: &[f32],
    ) -> Result<Transport> {
        match self {
            Self::Cpu(_) => Ok(Transport::Cpu(operators.transport(coefficients)?)),
        }
    }

    /// Applies row r of `transport` to feature row `r mod B` of `z` (B × d); R × d values.
    pub async fn apply(&self, transport: &Transport, z: &[f32]) -> Result<Vec<f32>> {
        match (self, transport) {
            (Self::Cpu(_), Transport::Cpu(blocks)) => Ok(blocks.apply(z)?),
        }
    }

    /// Prepares the gallery features (N × `dim`) for cosine nearest-neighbour queries.
    pub fn upload_gallery(&self, features: &[f32], dim: usize) -> Result<GalleryIndex> {
        match self {
            Self::Cpu(_) => Ok(GalleryIndex::Cpu(KnnIndex::new(
                features.to_vec(),
                dim,
                Metric::Cosine,
            )?)),
        }
    }

    /// The `k` nearest gallery rows of each query row, best first.
    pub async fn knn(
        &self,
        gallery: &GalleryIndex,
        queries: &[f32],
        k: usize,
    ) -> Result<Vec<Vec<Neighbor>>> {
        match (self, gallery) {
            (Self::Cpu(_), GalleryIndex::Cpu(index)) => Ok(index.search_batch(queries, k)?),
        }
    }
}

/// Whether `navigator.gpu` exists.
#[cfg(target_arch = "wasm32")]
fn browser_has_webgpu() -> bool {
    web_sys::window()
        .and_then(|window| {
            js_sys::Reflect::get(&window.navigator(), &wasm_bindgen::JsValue::from_str("gpu")).ok()
        })
        .is_some_and(|gpu| !gpu.is_undefined() && !gpu.is_null())
}

/// Native builds (the unit tests) have no browser.
#[cfg(not(target_arch = "wasm32"))]
fn browser_has_webgpu() -> bool {
    false
}

#[cfg(test)]
pub(crate) mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use mclr_shared::bundle::synthetic::{SyntheticSpec, synthetic_bundle};

    use super::*;
    use crate::session::Session;

    /// Drives a future that never waits on I/O (the CPU engine's) to completion.
    pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
        let mut future = pin!(future);
        let mut context = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(out) = future.as_mut().poll(&mut context) {
                return out;
            }
        }
    }

    pub(crate) fn synthetic_session() -> Session {
        let spec = SyntheticSpec {
            operators: 5,
            blocks: 4,
            block_size: 6,
            gallery: 64,
            classes: 5,
            ..SyntheticSpec::default()
        };
        Session::from_bundle(synthetic_bundle(&spec).unwrap(), "synthetic.mclr").unwrap()
    }

    #[test]
    fn forced_cpu_is_reported_on_the_badge() {
        let engine = block_on(Engine::select(true));
        assert_eq!(engine.backend().key(), "cpu");
        assert_eq!(engine.backend().label(), "CPU fallback");
        assert!(engine.backend().detail().contains("cpu=1"));
    }

    #[test]
    fn cpu_transport_and_apply_equal_the_shared_reference() {
        let session = synthetic_session();
        let engine = Engine::cpu("test");
        let c = [0.5, 0.0, -1.25, 0.0, 2.0];
        let z0 = session.feature(7).unwrap();
        let transport = block_on(engine.transport(&session.operators, &c)).unwrap();
        let moved = block_on(engine.apply(&transport, z0)).unwrap();
        assert_eq!(moved, session.operators.apply(&c, z0).unwrap());
    }

    #[test]
    fn cpu_knn_equals_brute_force_cosine() {
        let session = synthetic_session();
        let engine = Engine::cpu("test");
        let gallery = engine
            .upload_gallery(&session.features, session.dim())
            .unwrap();
        let query = session.feature(11).unwrap();
        let hits = block_on(engine.knn(&gallery, query, 8)).unwrap();
        let cosine = |g: &[f32]| {
            let dot: f64 = g
                .iter()
                .zip(query)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum();
            let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
            dot / (norm(g) * norm(query))
        };
        let mut expected: Vec<(usize, f64)> = (0..session.len())
            .map(|i| (i, cosine(session.feature(i).unwrap())))
            .collect();
        expected.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0][0].index, 11);
        for (hit, (_, score)) in hits[0].iter().zip(&expected) {
            assert!(
                (f64::from(hit.score) - score).abs() < 1e-5,
                "{hit:?} vs {score}"
            );
        }
    }
}
