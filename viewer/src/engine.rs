//! The compute engine behind the views: WebGPU compute shaders where the browser has them, the
//! `mclr-shared` CPU code otherwise. Both answer the same questions (group elements T(c), their
//! action on features, nearest gallery neighbours) through the same async methods, so the views
//! never ask which one they run on. [`Engine::select`] is the one place that decides.

use mclr_shared::geometry::{KnnIndex, Metric, Neighbor};
use mclr_shared::operators::{BlockDiagonal, Operators};

#[cfg(target_arch = "wasm32")]
use mclr_shared::gpu::{GalleryData, GpuEngine, GpuGallery, GpuPath};

use crate::error::Result;
#[cfg(target_arch = "wasm32")]
use crate::error::ViewerError;

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
    /// Badge text: `WebGPU (<adapter>)` (just `WebGPU` when the browser hides the adapter's
    /// name) or `CPU fallback`.
    pub fn label(&self) -> String {
        match self {
            Self::WebGpu { adapter } if adapter.trim().is_empty() => "WebGPU".to_owned(),
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
            Self::WebGpu { adapter } if adapter.trim().is_empty() => {
                "Compute runs in WebGPU shaders (the browser does not name the adapter).".to_owned()
            }
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
#[derive(Debug)]
pub enum Engine {
    /// `mclr-shared`'s WGSL compute shaders through WebGPU (browser builds only).
    #[cfg(target_arch = "wasm32")]
    Gpu(GpuEngine),
    /// `mclr-shared` on the CPU.
    Cpu(CpuEngine),
}

/// Group elements T(c) for one or more coefficient rows, in the engine's own form.
#[derive(Debug, Clone)]
pub enum Transport {
    /// Blocks held in memory for the CPU engine.
    Cpu(BlockDiagonal),
    /// (R, K, n, n) blocks computed by the GPU's expm.
    #[cfg(target_arch = "wasm32")]
    Gpu {
        /// The blocks, row-major.
        blocks: Vec<f32>,
        /// K.
        k: usize,
        /// n.
        n: usize,
    },
}

/// A gallery prepared for nearest-neighbour queries (cosine similarity), in the engine's own form.
#[derive(Debug)]
pub enum GalleryIndex {
    /// The CPU's exact index.
    Cpu(KnnIndex),
    /// The gallery uploaded to the GPU once.
    #[cfg(target_arch = "wasm32")]
    Gpu(GpuGallery),
}

/// A path being walked frame by frame, z ← E z: the step E and (on the GPU) the position live
/// where the engine computes.
#[derive(Debug)]
pub enum Walker {
    /// The step on the CPU; the position is the caller's.
    Cpu(BlockDiagonal),
    /// Step and position on the GPU: one submission per frame.
    #[cfg(target_arch = "wasm32")]
    Gpu(GpuPath),
}

/// One frame of a walk: the new position and its nearest gallery rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// z after the step.
    pub z: Vec<f32>,
    /// Nearest gallery rows of z, best first.
    pub neighbours: Vec<Neighbor>,
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
        Self::webgpu().await
    }

    #[cfg(target_arch = "wasm32")]
    async fn webgpu() -> Self {
        match GpuEngine::new().await {
            Ok(gpu) => Self::Gpu(gpu),
            Err(error) => Self::cpu(format!("WebGPU is present but unusable ({error})")),
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    async fn webgpu() -> Self {
        Self::cpu("native builds have no WebGPU")
    }

    /// What the badge shows.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Cpu(cpu) => Backend::Cpu {
                reason: cpu.reason.clone(),
            },
            #[cfg(target_arch = "wasm32")]
            Self::Gpu(gpu) => Backend::WebGpu {
                adapter: gpu.adapter().name.clone(),
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
            #[cfg(target_arch = "wasm32")]
            Self::Gpu(gpu) => {
                let (k, n) = (operators.blocks(), operators.block_size());
                let generators = operators.generators(coefficients)?;
                let blocks = gpu.expm(&generators, n).await.map_err(gpu_error)?;
                Ok(Transport::Gpu { blocks, k, n })
            }
        }
    }

    /// Applies row r of `transport` to feature row `r mod B` of `z` (B × d); R × d values.
    pub async fn apply(&self, transport: &Transport, z: &[f32]) -> Result<Vec<f32>> {
        match (self, transport) {
            (_, Transport::Cpu(blocks)) => Ok(blocks.apply(z)?),
            #[cfg(target_arch = "wasm32")]
            (Self::Gpu(gpu), Transport::Gpu { blocks, k, n }) => {
                gpu.apply_blocks(blocks, *k, *n, z).await.map_err(gpu_error)
            }
            #[cfg(target_arch = "wasm32")]
            (Self::Cpu(_), Transport::Gpu { .. }) => Err(mismatch()),
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
            #[cfg(target_arch = "wasm32")]
            Self::Gpu(gpu) => gpu
                .upload_gallery(GalleryData::F32(features), dim, Metric::Cosine)
                .map(GalleryIndex::Gpu)
                .map_err(gpu_error),
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
            (_, GalleryIndex::Cpu(index)) => Ok(index.search_batch(queries, k)?),
            #[cfg(target_arch = "wasm32")]
            (Self::Gpu(gpu), GalleryIndex::Gpu(index)) => {
                gpu.knn(index, queries, k).await.map_err(gpu_error)
            }
            #[cfg(target_arch = "wasm32")]
            (Self::Cpu(_), GalleryIndex::Gpu(_)) => Err(mismatch()),
        }
    }

    /// Starts a walk from `z0` with step E = T(`coefficients`) (one row of M values).
    pub async fn walker(
        &self,
        operators: &Operators,
        coefficients: &[f32],
        z0: &[f32],
    ) -> Result<Walker> {
        match self {
            Self::Cpu(_) => {
                check_position(z0, operators.dim())?;
                Ok(Walker::Cpu(operators.transport(coefficients)?))
            }
            #[cfg(target_arch = "wasm32")]
            Self::Gpu(gpu) => {
                let (k, n) = (operators.blocks(), operators.block_size());
                let generators = operators.generators(coefficients)?;
                gpu.path_from_generators(&generators, k, n, z0)
                    .await
                    .map(Walker::Gpu)
                    .map_err(gpu_error)
            }
        }
    }

    /// Moves a walk to `z` (after a seek), keeping its step.
    pub fn reposition(&self, walker: &mut Walker, z: &[f32]) -> Result<()> {
        match (self, walker) {
            (_, Walker::Cpu(step)) => check_position(z, step.dim()),
            #[cfg(target_arch = "wasm32")]
            (Self::Gpu(gpu), Walker::Gpu(path)) => {
                gpu.set_path_position(path, z).map_err(gpu_error)
            }
            #[cfg(target_arch = "wasm32")]
            (Self::Cpu(_), Walker::Gpu(_)) => Err(mismatch()),
        }
    }

    /// One animation frame: z ← E z from `z` (the walk's current position), then the `k` nearest
    /// gallery rows of the new z. On the GPU this is one submission and one small readback.
    pub async fn walk(
        &self,
        walker: &mut Walker,
        z: &[f32],
        gallery: &GalleryIndex,
        k: usize,
    ) -> Result<Frame> {
        match (self, walker, gallery) {
            (_, Walker::Cpu(step), _) => {
                let z = step.apply(z)?;
                let neighbours = self.knn(gallery, &z, k).await?.into_iter().next();
                Ok(Frame {
                    z,
                    neighbours: neighbours.unwrap_or_default(),
                })
            }
            #[cfg(target_arch = "wasm32")]
            (Self::Gpu(gpu), Walker::Gpu(path), GalleryIndex::Gpu(index)) => {
                let frame = gpu.path_step_knn(path, index, k).await.map_err(gpu_error)?;
                Ok(Frame {
                    z: frame.z,
                    neighbours: frame.neighbors,
                })
            }
            #[cfg(target_arch = "wasm32")]
            _ => Err(mismatch()),
        }
    }
}

/// Fails unless `z` is one feature of dimension `dim`.
fn check_position(z: &[f32], dim: usize) -> Result<()> {
    if z.len() == dim {
        Ok(())
    } else {
        Err(mclr_shared::Error::shape("z", &[dim], &[z.len()]).into())
    }
}

/// A GPU failure, in the viewer's terms (by value, to fit `map_err`).
#[cfg(target_arch = "wasm32")]
#[allow(clippy::needless_pass_by_value)]
fn gpu_error(error: mclr_shared::gpu::GpuError) -> ViewerError {
    ViewerError::Gpu(error.to_string())
}

/// Objects of one engine handed to the other: a bug, reported rather than a panic.
#[cfg(target_arch = "wasm32")]
fn mismatch() -> ViewerError {
    ViewerError::Gpu("objects of the CPU and GPU engines were mixed".to_owned())
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
    fn the_badge_names_the_adapter_when_the_browser_does() {
        let named = Backend::WebGpu {
            adapter: "SwiftShader Device".to_owned(),
        };
        assert_eq!(named.label(), "WebGPU (SwiftShader Device)");
        assert_eq!(named.key(), "webgpu");
        let unnamed = Backend::WebGpu {
            adapter: String::new(),
        };
        assert_eq!(unnamed.label(), "WebGPU");
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
