//! The compute engine behind the views: WebGPU compute shaders where the browser has them, the
//! `mclr-shared` CPU code otherwise. Both answer the same questions (group elements T(c), their
//! action on features, nearest gallery neighbours) through the same async methods, so the views
//! never ask which one they run on. [`Engine::select`] is the one place that decides, by
//! [`choose`]: `cpu=1` means the CPU; without WebGPU, the CPU; with only a software adapter
//! (SwiftShader, llvmpipe: device type `Cpu`), the CPU too, because it runs the shaders on the CPU
//! an order of magnitude slower than the shared Rust code, unless `gpu=1` forces WebGPU (the
//! end-to-end tests do, to keep the WGSL path covered); any other adapter, WebGPU.

use mclr_shared::geometry::{KnnIndex, Metric, Neighbour};
use mclr_shared::operators::{BlockDiagonal, Operators};

#[cfg(target_arch = "wasm32")]
use mclr_shared::gpu::{GalleryData, GpuEngine, GpuGallery, GpuPath};

use crate::error::Result;
#[cfg(target_arch = "wasm32")]
use crate::error::ViewerError;

/// Why the CPU engine computes, as the badge explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuReason {
    /// The link says `cpu=1`.
    Forced,
    /// The browser has no `navigator.gpu`.
    NoWebGpu,
    /// The browser has `navigator.gpu` but no adapter (WebGPU turned off, a blocklisted GPU).
    NoAdapter,
    /// WebGPU's only adapter is a software one (device type `Cpu`, or a known software
    /// rasteriser such as SwiftShader): it runs the WGSL shaders on the CPU, an order of
    /// magnitude slower than the viewer's own CPU code (BENCHMARKS.md). `gpu=1` overrides this.
    SoftwareAdapter {
        /// The adapter's name, e.g. "google swiftshader"; empty when the browser hides it.
        adapter: String,
    },
    /// WebGPU is there but could not be started.
    Unusable {
        /// What failed, in wgpu's words.
        error: String,
    },
    /// Any other reason, in plain words (tests, native builds).
    Other(String),
}

impl CpuReason {
    /// The reason in a few words, for the badge's text.
    fn short(&self) -> String {
        match self {
            Self::Forced => "forced by cpu=1".to_owned(),
            Self::NoWebGpu => "no WebGPU in this browser".to_owned(),
            Self::NoAdapter => "WebGPU offers no adapter".to_owned(),
            Self::SoftwareAdapter { adapter } => {
                let adapter = adapter.trim();
                if adapter.is_empty() {
                    "WebGPU offers only a software adapter".to_owned()
                } else {
                    format!("WebGPU offers only a software adapter ({adapter})")
                }
            }
            Self::Unusable { .. } => "WebGPU failed to start".to_owned(),
            Self::Other(reason) => reason.clone(),
        }
    }

    /// The reason in a sentence's worth of words, for the badge's tooltip.
    fn long(&self) -> String {
        match self {
            Self::Forced => "forced by the cpu=1 link parameter".to_owned(),
            Self::NoWebGpu => "this browser does not expose WebGPU".to_owned(),
            Self::NoAdapter => "this browser exposes WebGPU but offers no adapter (WebGPU may be \
                                turned off, or the GPU blocklisted)"
                .to_owned(),
            Self::SoftwareAdapter { .. } => format!(
                "{}, which runs the shaders on the CPU, more slowly than the viewer's own CPU \
                 code; add gpu=1 to the link to use it anyway",
                self.short()
            ),
            Self::Unusable { error } => format!("WebGPU is present but unusable ({error})"),
            Self::Other(reason) => reason.clone(),
        }
    }

    /// The badge's `data-why`.
    fn key(&self) -> &'static str {
        match self {
            Self::Forced => "cpu-forced",
            Self::NoWebGpu => "no-webgpu",
            Self::NoAdapter => "no-adapter",
            Self::SoftwareAdapter { .. } => "software-adapter",
            Self::Unusable { .. } => "webgpu-failed",
            Self::Other(_) => "other",
        }
    }
}

/// Which engine runs, as the backend badge shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// WebGPU compute on the named adapter.
    WebGpu {
        /// The adapter's name, e.g. "SwiftShader Device"; empty when the browser hides it.
        adapter: String,
        /// The adapter's device type as wgpu names it ("Cpu", "DiscreteGpu", "IntegratedGpu",
        /// "VirtualGpu" or "Other"); browsers report "Cpu" for a software (fallback) adapter and
        /// "Other" for the rest.
        device_type: String,
        /// Whether `gpu=1` chose WebGPU over a faster CPU path (the adapter is a software one).
        forced: bool,
    },
    /// The CPU code of `mclr-shared`.
    Cpu {
        /// Why WebGPU is not used.
        reason: CpuReason,
    },
}

/// A wgpu device type in plain words, or `None` when it says nothing ("Other", unknown).
fn device_kind(device_type: &str) -> Option<&'static str> {
    match device_type {
        "Cpu" => Some("cpu"),
        "DiscreteGpu" => Some("discrete GPU"),
        "IntegratedGpu" => Some("integrated GPU"),
        "VirtualGpu" => Some("virtual GPU"),
        _ => None,
    }
}

/// Names of software WebGPU/Vulkan implementations, lower case: an adapter whose name contains
/// one runs on the CPU even when the browser does not report device type `Cpu`.
const SOFTWARE_ADAPTERS: [&str; 5] = [
    "swiftshader",
    "llvmpipe",
    "lavapipe",
    "softpipe",
    "microsoft basic render",
];

/// Whether an adapter runs its shaders on the CPU: wgpu's device type `Cpu` (a browser's
/// fallback adapter), or a name of a known software implementation.
pub fn is_software_adapter(name: &str, device_type: &str) -> bool {
    let name = name.to_lowercase();
    device_type == "Cpu" || SOFTWARE_ADAPTERS.iter().any(|s| name.contains(s))
}

/// The engine [`Engine::select`] settles on, before or after it has seen an adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// Compute on the CPU.
    Cpu(CpuReason),
    /// Compute with WebGPU (`forced`: by `gpu=1`, on a software adapter).
    WebGpu {
        /// Whether `gpu=1` overrode the CPU path.
        forced: bool,
    },
}

/// What the browser offers for WebGPU, as far as it is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer<'a> {
    /// No `navigator.gpu`.
    Nothing,
    /// `navigator.gpu` exists but `requestAdapter()` gave no adapter.
    NoAdapter,
    /// `navigator.gpu` exists; the adapter is not known yet.
    Unknown,
    /// An adapter: its name and its wgpu device type (`Cpu` for a browser's fallback adapter).
    Adapter {
        /// The adapter's name, e.g. "google swiftshader".
        name: &'a str,
        /// wgpu's device type, e.g. "Cpu", "DiscreteGpu", "Other".
        device_type: &'a str,
    },
}

/// The choice of engine, the one policy: `cpu=1` always means the CPU (the parser drops a
/// `gpu=1` beside it, with a warning); no WebGPU or no adapter means the CPU; a software adapter
/// means the CPU unless `gpu=1` forces WebGPU — which keeps the WGSL path testable on
/// SwiftShader; any other adapter (or one not known yet) means WebGPU.
pub fn choose(force_cpu: bool, force_gpu: bool, offer: Offer<'_>) -> Choice {
    if force_cpu {
        return Choice::Cpu(CpuReason::Forced);
    }
    match offer {
        Offer::Nothing => Choice::Cpu(CpuReason::NoWebGpu),
        Offer::NoAdapter => Choice::Cpu(CpuReason::NoAdapter),
        Offer::Adapter { name, device_type } if is_software_adapter(name, device_type) => {
            if force_gpu {
                Choice::WebGpu { forced: true }
            } else {
                Choice::Cpu(CpuReason::SoftwareAdapter {
                    adapter: name.trim().to_owned(),
                })
            }
        }
        Offer::Unknown | Offer::Adapter { .. } => Choice::WebGpu { forced: false },
    }
}

impl Backend {
    /// Badge text: `WebGPU · <adapter> (<device type>)`, e.g. `WebGPU · SwiftShader (cpu)`, the
    /// parts the browser does not tell left out (just `WebGPU` when it tells neither), or
    /// `CPU — <why>`, e.g. `CPU — forced by cpu=1`.
    pub fn label(&self) -> String {
        match self {
            Self::WebGpu {
                adapter,
                device_type,
                ..
            } => {
                let adapter = adapter.trim();
                match (adapter.is_empty(), device_kind(device_type)) {
                    (true, None) => "WebGPU".to_owned(),
                    (true, Some(kind)) => format!("WebGPU · unnamed adapter ({kind})"),
                    (false, None) => format!("WebGPU · {adapter}"),
                    (false, Some(kind)) => format!("WebGPU · {adapter} ({kind})"),
                }
            }
            Self::Cpu { reason } => format!("CPU — {}", reason.short()),
        }
    }

    /// Value of the badge's `data-backend` attribute: `webgpu` or `cpu`.
    pub fn key(&self) -> &'static str {
        match self {
            Self::WebGpu { .. } => "webgpu",
            Self::Cpu { .. } => "cpu",
        }
    }

    /// Value of the badge's `data-why` attribute: why this engine, as a key (`cpu-forced`,
    /// `no-webgpu`, `no-adapter`, `software-adapter`, `webgpu-failed`, `gpu-forced`, `adapter`,
    /// `other`).
    pub fn why(&self) -> &'static str {
        match self {
            Self::WebGpu { forced: true, .. } => "gpu-forced",
            Self::WebGpu { forced: false, .. } => "adapter",
            Self::Cpu { reason } => reason.key(),
        }
    }

    /// A longer explanation for the badge's tooltip: the engine and why.
    pub fn detail(&self) -> String {
        match self {
            Self::WebGpu {
                adapter,
                device_type,
                forced,
            } => {
                let adapter = adapter.trim();
                let on = if adapter.is_empty() {
                    "an adapter the browser does not name".to_owned()
                } else {
                    adapter.to_owned()
                };
                let kind = device_kind(device_type)
                    .map(|kind| format!(", a {kind} device"))
                    .unwrap_or_default();
                let why = if *forced {
                    " The gpu=1 link parameter forces WebGPU on this software adapter; without \
                     it the faster CPU path would run."
                } else {
                    ""
                };
                format!("Compute runs in WebGPU shaders on {on}{kind}.{why}")
            }
            Self::Cpu { reason } => format!("Compute runs on the CPU: {}.", reason.long()),
        }
    }
}

/// The CPU engine: `mclr-shared`'s reference code, single-threaded in the browser.
#[derive(Debug, Clone)]
pub struct CpuEngine {
    reason: CpuReason,
}

/// The engine the views compute with.
#[derive(Debug)]
pub enum Engine {
    /// `mclr-shared`'s WGSL compute shaders through WebGPU (browser builds only), with the
    /// adapter's name for the badge and whether `gpu=1` forced it onto a software adapter.
    #[cfg(target_arch = "wasm32")]
    Gpu(GpuEngine, String, bool),
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
    pub neighbours: Vec<Neighbour>,
}

impl Engine {
    /// The CPU engine, with the reason WebGPU is not used, in plain words.
    pub fn cpu(reason: impl Into<String>) -> Self {
        Self::cpu_because(CpuReason::Other(reason.into()))
    }

    fn cpu_because(reason: CpuReason) -> Self {
        Self::Cpu(CpuEngine { reason })
    }

    /// Picks the engine by [`choose`]: `force_cpu` is the `cpu=1` link parameter, `force_gpu`
    /// `gpu=1`. The adapter is looked at twice: as the browser describes it before any device
    /// is made (so a software adapter costs no device and no shader compilation), and as wgpu
    /// reports it once the engine is built.
    pub async fn select(force_cpu: bool, force_gpu: bool) -> Self {
        let offer = if browser_has_webgpu() {
            Offer::Unknown
        } else {
            Offer::Nothing
        };
        match choose(force_cpu, force_gpu, offer) {
            Choice::Cpu(reason) => return Self::cpu_because(reason),
            Choice::WebGpu { .. } => {}
        }
        let probed = browser_adapter().await;
        let offer = match &probed {
            Probe::NoAdapter => Offer::NoAdapter,
            Probe::Unknown => Offer::Unknown,
            Probe::Adapter(adapter) => Offer::Adapter {
                name: &adapter.name,
                device_type: if adapter.fallback { "Cpu" } else { "Other" },
            },
        };
        if let Choice::Cpu(reason) = choose(force_cpu, force_gpu, offer) {
            return Self::cpu_because(reason);
        }
        let name = match probed {
            Probe::Adapter(adapter) => Some(adapter.name),
            Probe::NoAdapter | Probe::Unknown => None,
        };
        Self::webgpu(force_cpu, force_gpu, name).await
    }

    #[cfg(target_arch = "wasm32")]
    async fn webgpu(force_cpu: bool, force_gpu: bool, browser_name: Option<String>) -> Self {
        match GpuEngine::new().await {
            Ok(gpu) => {
                // wgpu names a browser adapter by `GPUAdapterInfo.description`, which browsers
                // often leave empty; vendor and architecture (e.g. "google swiftshader") then
                // name it instead.
                let mut name = gpu.adapter().name.trim().to_owned();
                if name.is_empty() {
                    name = browser_name.unwrap_or_default();
                }
                let device_type = gpu.adapter().device_type.clone();
                let offer = Offer::Adapter {
                    name: &name,
                    device_type: &device_type,
                };
                match choose(force_cpu, force_gpu, offer) {
                    // The device is dropped here: the CPU path is faster on this adapter.
                    Choice::Cpu(reason) => Self::cpu_because(reason),
                    Choice::WebGpu { forced } => Self::Gpu(gpu, name, forced),
                }
            }
            Err(error) => Self::cpu_because(CpuReason::Unusable {
                error: mclr_shared::error_chain(&error),
            }),
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    async fn webgpu(_force_cpu: bool, _force_gpu: bool, _browser_name: Option<String>) -> Self {
        Self::cpu("native builds have no WebGPU")
    }

    /// What the badge shows.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Cpu(cpu) => Backend::Cpu {
                reason: cpu.reason.clone(),
            },
            #[cfg(target_arch = "wasm32")]
            Self::Gpu(gpu, adapter, forced) => Backend::WebGpu {
                adapter: adapter.clone(),
                device_type: gpu.adapter().device_type.clone(),
                forced: *forced,
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
            Self::Gpu(gpu, _, _) => {
                let (k, n) = (operators.blocks(), operators.block_size());
                let generators = operators.generators(coefficients)?;
                let blocks = gpu.expm(&generators, n).await.map_err(ViewerError::Gpu)?;
                Ok(Transport::Gpu { blocks, k, n })
            }
        }
    }

    /// Applies row r of `transport` to feature row `r mod B` of `z` (B × d); R × d values.
    pub async fn apply(&self, transport: &Transport, z: &[f32]) -> Result<Vec<f32>> {
        match (self, transport) {
            (_, Transport::Cpu(blocks)) => Ok(blocks.apply(z)?),
            #[cfg(target_arch = "wasm32")]
            (Self::Gpu(gpu, _, _), Transport::Gpu { blocks, k, n }) => gpu
                .apply_blocks(blocks, *k, *n, z)
                .await
                .map_err(ViewerError::Gpu),
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
            Self::Gpu(gpu, _, _) => gpu
                .upload_gallery(GalleryData::F32(features), dim, Metric::Cosine)
                .map(GalleryIndex::Gpu)
                .map_err(ViewerError::Gpu),
        }
    }

    /// The `k` nearest gallery rows of each query row, best first.
    pub async fn knn(
        &self,
        gallery: &GalleryIndex,
        queries: &[f32],
        k: usize,
    ) -> Result<Vec<Vec<Neighbour>>> {
        match (self, gallery) {
            (_, GalleryIndex::Cpu(index)) => Ok(index.search_batch(queries, k)?),
            #[cfg(target_arch = "wasm32")]
            (Self::Gpu(gpu, _, _), GalleryIndex::Gpu(index)) => {
                gpu.knn(index, queries, k).await.map_err(ViewerError::Gpu)
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
            Self::Gpu(gpu, _, _) => {
                let (k, n) = (operators.blocks(), operators.block_size());
                let generators = operators.generators(coefficients)?;
                gpu.path_from_generators(&generators, k, n, z0)
                    .await
                    .map(Walker::Gpu)
                    .map_err(ViewerError::Gpu)
            }
        }
    }

    /// Moves a walk to `z` (after a seek), keeping its step.
    pub fn reposition(&self, walker: &mut Walker, z: &[f32]) -> Result<()> {
        match (self, walker) {
            (_, Walker::Cpu(step)) => check_position(z, step.dim()),
            #[cfg(target_arch = "wasm32")]
            (Self::Gpu(gpu, _, _), Walker::Gpu(path)) => {
                gpu.set_path_position(path, z).map_err(ViewerError::Gpu)
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
            (Self::Gpu(gpu, _, _), Walker::Gpu(path), GalleryIndex::Gpu(index)) => {
                let frame = gpu
                    .path_step_knn(path, index, k)
                    .await
                    .map_err(ViewerError::Gpu)?;
                Ok(Frame {
                    z: frame.z,
                    neighbours: frame.neighbours,
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

/// Objects of one engine handed to the other: a bug, reported rather than a panic.
#[cfg(target_arch = "wasm32")]
fn mismatch() -> ViewerError {
    ViewerError::EngineMismatch
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

/// What the browser tells about its default WebGPU adapter before any device is made.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AdapterProbe {
    /// `GPUAdapterInfo.description`, else its vendor, architecture and device, e.g. "google
    /// swiftshader"; empty when it tells none.
    name: String,
    /// `GPUAdapterInfo.isFallbackAdapter` (or the older `GPUAdapter.isFallbackAdapter`): a
    /// software adapter, which wgpu reports as device type `Cpu`.
    fallback: bool,
}

/// What asking the browser for an adapter gave.
#[derive(Debug, Clone, PartialEq, Eq)]
// Native builds have no browser to ask, so only `Unknown` is ever made there.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
enum Probe {
    /// No answer (no `navigator.gpu`, or the request failed): wgpu will find out.
    Unknown,
    /// `requestAdapter()` resolved to no adapter.
    NoAdapter,
    /// An adapter, described.
    Adapter(AdapterProbe),
}

/// Asks `navigator.gpu` for its default adapter and reads its description.
#[cfg(target_arch = "wasm32")]
async fn browser_adapter() -> Probe {
    match browser_adapter_inner().await {
        Some(Some(adapter)) => Probe::Adapter(adapter),
        Some(None) => Probe::NoAdapter,
        None => Probe::Unknown,
    }
}

/// `None` when the browser could not be asked, `Some(None)` when it has no adapter.
#[cfg(target_arch = "wasm32")]
async fn browser_adapter_inner() -> Option<Option<AdapterProbe>> {
    use wasm_bindgen::{JsCast, JsValue};

    fn get(target: &JsValue, key: &str) -> Option<JsValue> {
        js_sys::Reflect::get(target, &JsValue::from_str(key))
            .ok()
            .filter(|v| !v.is_undefined() && !v.is_null())
    }
    let navigator = JsValue::from(web_sys::window()?.navigator());
    let gpu = get(&navigator, "gpu")?;
    let request: js_sys::Function = get(&gpu, "requestAdapter")?.dyn_into().ok()?;
    let promise: js_sys::Promise = request.call0(&gpu).ok()?.dyn_into().ok()?;
    let adapter = wasm_bindgen_futures::JsFuture::from(promise).await.ok()?;
    if adapter.is_undefined() || adapter.is_null() {
        return Some(None);
    }
    let info = get(&adapter, "info").unwrap_or(JsValue::UNDEFINED);
    let text = |key: &str| {
        get(&info, key)
            .and_then(|v| v.as_string())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let name = text("description")
        .or_else(|| {
            let parts: Vec<String> = ["vendor", "architecture", "device"]
                .into_iter()
                .filter_map(text)
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        })
        .unwrap_or_default();
    let flag = |target: &JsValue| {
        get(target, "isFallbackAdapter")
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    };
    Some(Some(AdapterProbe {
        name,
        fallback: flag(&info) || flag(&adapter),
    }))
}

/// Native builds have no browser to ask.
#[cfg(not(target_arch = "wasm32"))]
#[allow(clippy::unused_async)]
async fn browser_adapter() -> Probe {
    Probe::Unknown
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
        let engine = block_on(Engine::select(true, false));
        assert_eq!(engine.backend().key(), "cpu");
        assert_eq!(engine.backend().why(), "cpu-forced");
        assert_eq!(engine.backend().label(), "CPU — forced by cpu=1");
        assert!(engine.backend().detail().contains("cpu=1"));
        // The parser never sets both; if it did, the CPU would still win.
        let engine = block_on(Engine::select(true, true));
        assert_eq!(engine.backend().why(), "cpu-forced");
    }

    #[test]
    fn without_webgpu_the_cpu_runs_and_says_why() {
        let engine = block_on(Engine::select(false, true));
        let backend = engine.backend();
        assert_eq!(backend.key(), "cpu");
        assert_eq!(backend.why(), "no-webgpu");
        assert_eq!(backend.label(), "CPU — no WebGPU in this browser");
    }

    #[test]
    fn a_software_adapter_means_the_cpu_unless_gpu_1_forces_webgpu() {
        let swiftshader = Offer::Adapter {
            name: "google swiftshader",
            device_type: "Other",
        };
        let fallback = Offer::Adapter {
            name: "",
            device_type: "Cpu",
        };
        let hardware = Offer::Adapter {
            name: "NVIDIA GeForce RTX 4090",
            device_type: "DiscreteGpu",
        };
        assert_eq!(
            choose(false, false, swiftshader),
            Choice::Cpu(CpuReason::SoftwareAdapter {
                adapter: "google swiftshader".to_owned()
            })
        );
        assert!(matches!(
            choose(false, false, fallback),
            Choice::Cpu(CpuReason::SoftwareAdapter { .. })
        ));
        assert_eq!(
            choose(false, true, swiftshader),
            Choice::WebGpu { forced: true }
        );
        assert_eq!(
            choose(false, false, hardware),
            Choice::WebGpu { forced: false }
        );
        // gpu=1 on hardware changes nothing.
        assert_eq!(
            choose(false, true, hardware),
            Choice::WebGpu { forced: false }
        );
        // Before the adapter is known, WebGPU is still in the running.
        assert_eq!(
            choose(false, false, Offer::Unknown),
            Choice::WebGpu { forced: false }
        );
        assert_eq!(choose(true, true, hardware), Choice::Cpu(CpuReason::Forced));
        // gpu=1 cannot make an adapter appear.
        assert_eq!(
            choose(false, true, Offer::Nothing),
            Choice::Cpu(CpuReason::NoWebGpu)
        );
        assert_eq!(
            choose(false, true, Offer::NoAdapter),
            Choice::Cpu(CpuReason::NoAdapter)
        );
        assert!(is_software_adapter(
            "llvmpipe (LLVM 19.1.7, 256 bits)",
            "Cpu"
        ));
        assert!(is_software_adapter("SwiftShader Device (Subzero)", "Other"));
        assert!(!is_software_adapter("Apple M2", "IntegratedGpu"));
    }

    #[test]
    fn the_badge_says_which_engine_and_why() {
        let software = Backend::Cpu {
            reason: CpuReason::SoftwareAdapter {
                adapter: "google swiftshader".to_owned(),
            },
        };
        assert_eq!(
            software.label(),
            "CPU — WebGPU offers only a software adapter (google swiftshader)"
        );
        assert_eq!(software.why(), "software-adapter");
        let detail = software.detail();
        assert!(
            detail.starts_with("Compute runs on the CPU: WebGPU offers only"),
            "{detail}"
        );
        assert!(detail.contains("gpu=1"), "{detail}");
        let forced = Backend::WebGpu {
            adapter: "google swiftshader".to_owned(),
            device_type: "Cpu".to_owned(),
            forced: true,
        };
        assert_eq!(forced.key(), "webgpu");
        assert_eq!(forced.why(), "gpu-forced");
        assert_eq!(forced.label(), "WebGPU · google swiftshader (cpu)");
        assert!(forced.detail().contains("gpu=1"), "{}", forced.detail());
        let failed = Backend::Cpu {
            reason: CpuReason::Unusable {
                error: "no adapter".to_owned(),
            },
        };
        assert_eq!(failed.label(), "CPU — WebGPU failed to start");
        assert!(
            failed.detail().contains("(no adapter)"),
            "{}",
            failed.detail()
        );
        assert_eq!(failed.why(), "webgpu-failed");
        let none = Backend::Cpu {
            reason: CpuReason::NoAdapter,
        };
        assert_eq!(none.label(), "CPU — WebGPU offers no adapter");
        assert_eq!(none.why(), "no-adapter");
    }

    #[test]
    fn the_badge_names_the_adapter_and_its_device_type_when_the_browser_does() {
        let webgpu = |adapter: &str, device_type: &str| Backend::WebGpu {
            adapter: adapter.to_owned(),
            device_type: device_type.to_owned(),
            forced: false,
        };
        let software = webgpu("SwiftShader", "Cpu");
        assert_eq!(software.label(), "WebGPU · SwiftShader (cpu)");
        assert_eq!(software.key(), "webgpu");
        assert_eq!(
            software.detail(),
            "Compute runs in WebGPU shaders on SwiftShader, a cpu device."
        );
        assert_eq!(
            webgpu("NVIDIA GeForce RTX 4090", "DiscreteGpu").label(),
            "WebGPU · NVIDIA GeForce RTX 4090 (discrete GPU)"
        );
        assert_eq!(
            webgpu("google swiftshader", "Other").label(),
            "WebGPU · google swiftshader"
        );
        assert_eq!(webgpu(" ", "Cpu").label(), "WebGPU · unnamed adapter (cpu)");
        let unnamed = webgpu("", "Other");
        assert_eq!(unnamed.label(), "WebGPU");
        assert!(unnamed.detail().contains("does not name"));
        assert_eq!(unnamed.key(), "webgpu");
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
