//! The WGSL compute engine: the operator math of this crate on a GPU, through wgpu.
//!
//! Every frame of the viewer exponentiates S×K blocks, transports features with them and searches a
//! gallery of tens of thousands of rows. [`GpuEngine`] runs that work in compute shaders — WebGPU in
//! the browser, Vulkan natively (where Mesa's lavapipe software driver lets the same shaders be
//! tested without a GPU) — and gives the same answers as the CPU reference:
//! * [`GpuEngine::expm`] follows [`crate::expm::expm_batch`]: trace shift, the plan of
//!   [`crate::expm::plan`] (computed on the CPU from each matrix's 1-norm, so the degree/squaring
//!   table has one home), Paterson–Stockmeyer Taylor polynomial, squarings;
//! * [`GpuEngine::apply_blocks`] follows [`crate::operators::BlockDiagonal::apply`];
//! * [`GpuEngine::knn`] follows [`crate::geometry::KnnIndex::search_batch`]: the same scores
//!   (accumulated in the same eight-lane order), the same ranking and tie rule;
//! * [`GpuEngine::path_step_knn`] is one animation frame `z ← E z` then the kNN of the new `z`, in
//!   one submission with one small readback.
//!
//! Each shader sits beside the Rust that dispatches it (`expm.wgsl` / `expm.rs`, …). Readback maps a
//! buffer and awaits the mapping: the browser resolves it from its event loop, natively the device
//! is polled, so the same `async` API works on both targets.
//!
//! The viewer's animation, one submission per frame:
//! ```no_run
//! # async fn animate() -> Result<(), mclr_shared::gpu::GpuError> {
//! use mclr_shared::geometry::Metric;
//! use mclr_shared::gpu::{GalleryData, GpuEngine};
//!
//! let engine = GpuEngine::new().await?;
//! let (k, n) = (32, 16);
//! let features_f16: Vec<u16> = vec![0x3c00; 1000 * k * n]; // a bundle's gallery, f16 bits
//! let gallery = engine.upload_gallery(GalleryData::F16(&features_f16), k * n, Metric::Cosine)?;
//! // The step E = T(Δt·c) from its K generators Δt·Σ_m c_m Ψ[m, k]: exponentiated on the GPU and
//! // kept there.
//! let generators = vec![0.0f32; k * n * n];
//! let z0 = vec![1.0f32; k * n];
//! let mut path = engine.path_from_generators(&generators, k, n, &z0).await?;
//! for _ in 0..3 {
//!     let frame = engine.path_step_knn(&mut path, &gallery, 8).await?;
//!     // frame.z: the new position; frame.neighbours: its 8 nearest gallery rows, best first.
//!     assert_eq!(frame.z.len(), k * n);
//! }
//! # Ok(())
//! # }
//! ```

mod apply;
mod buffers;
mod expm;
mod knn;
mod path;

use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

pub use knn::{GalleryData, GpuGallery, MAX_K};
pub use path::{GpuPath, PathFrame};

/// Everything that can go wrong in the GPU engine.
///
/// Kept apart from the crate's [`crate::Error`] (which is `Clone + PartialEq` and knows nothing of
/// devices); malformed *inputs* are still reported as that error, wrapped in [`GpuError::Input`].
///
/// What wgpu reported is the `source()` of a variant, not part of its message. wgpu's errors are
/// `Send + Sync` natively but not in the browser, and so is this type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GpuError {
    /// No adapter was found: there is no WebGPU in this browser, or no Vulkan driver natively.
    #[error(
        "no GPU adapter found; in a browser enable WebGPU, natively install a Vulkan driver \
         (for a software one: apt-get install mesa-vulkan-drivers)"
    )]
    NoAdapter {
        /// What wgpu said.
        #[source]
        source: wgpu::RequestAdapterError,
    },
    /// The adapter refused to create a device with the limits the engine needs.
    #[error("the GPU adapter `{adapter}` could not create a device")]
    RequestDevice {
        /// Adapter name.
        adapter: String,
        /// What wgpu said.
        #[source]
        source: Box<wgpu::RequestDeviceError>,
    },
    /// An input has the wrong shape or holds non-finite values (the CPU reference's error).
    #[error(transparent)]
    Input(#[from] crate::Error),
    /// A buffer would exceed what the device can bind.
    #[error("{what} needs {bytes} bytes, over the device's limit of {limit} bytes")]
    TooLarge {
        /// What the buffer holds.
        what: &'static str,
        /// Bytes it needs.
        bytes: u64,
        /// The device limit.
        limit: u64,
    },
    /// A gallery or path was made with different sizes than the call expects.
    #[error("{what}: {reason}")]
    Mismatch {
        /// What disagrees.
        what: &'static str,
        /// How, in the engine's words.
        reason: String,
    },
    /// wgpu reported a validation or out-of-memory error for the named operation.
    #[error("GPU {operation} failed")]
    Device {
        /// The engine operation ("expm", "knn", ...).
        operation: &'static str,
        /// What wgpu said.
        #[source]
        source: Box<wgpu::Error>,
    },
    /// An earlier call that creates or writes buffers outside any error scope (an upload) failed on
    /// the device; the next operation, the one named, reports it.
    #[error("GPU {operation} failed: an earlier upload failed on the device")]
    EarlierUpload {
        /// The engine operation that reports it.
        operation: &'static str,
        /// What wgpu said about the upload, and its causes.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Mapping a result buffer for reading failed (device lost, or the mapping was cancelled).
    #[error("reading back the result of {operation} failed")]
    Readback {
        /// The engine operation.
        operation: &'static str,
        /// What wgpu (or the mapping's callback channel) said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Result with [`GpuError`].
pub type GpuResult<T> = Result<T, GpuError>;

/// Which adapter the engine runs on, for the viewer's badge and for test logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSummary {
    /// Adapter name, e.g. "llvmpipe (LLVM 19.1.7, 256 bits)".
    pub name: String,
    /// Backend, e.g. "vulkan" or "webgpu".
    pub backend: String,
    /// Device type, e.g. "DiscreteGpu" or "Cpu" (a software rasteriser).
    pub device_type: String,
}

/// A wgpu device with the engine's compute pipelines compiled once.
#[derive(Debug)]
pub struct GpuEngine {
    device: wgpu::Device,
    queue: wgpu::Queue,
    adapter: AdapterSummary,
    expm: expm::ExpmPipeline,
    apply: apply::ApplyPipeline,
    knn: knn::KnnPipelines,
    uncaptured: Uncaptured,
}

/// The first wgpu error raised outside every [`ErrorScope`]. The synchronous calls
/// ([`GpuEngine::upload_gallery`], [`GpuEngine::upload_path`], [`GpuEngine::set_path_position`])
/// create and write buffers unscoped; wgpu's default handler would panic on their errors (an
/// out-of-memory gallery, say), in the browser across the wasm boundary. The engine records the
/// error instead, and its next operation fails with it as a [`GpuError::EarlierUpload`].
type Uncaptured = Arc<Mutex<Option<Recorded>>>;

/// An error kept as its message and its causes' messages, one level each, so that it can cross the
/// `Send + Sync` bound of wgpu's uncaptured-error handler, which wgpu's own error does not meet in
/// the browser. Its chain prints as the original's did.
#[derive(Debug)]
struct Recorded {
    message: String,
    source: Option<Box<Recorded>>,
}

impl Recorded {
    fn of(error: &(dyn std::error::Error + 'static)) -> Self {
        Self {
            message: error.to_string(),
            source: error.source().map(|cause| Box::new(Self::of(cause))),
        }
    }
}

impl std::fmt::Display for Recorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Recorded {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|cause| cause as &(dyn std::error::Error + 'static))
    }
}

/// Limits the engine asks for: WebGPU's defaults, with the buffer sizes raised to what the adapter
/// allows so that a 50k × 512 f32 gallery (≈ 98 MiB) and large expm batches fit.
fn required_limits(adapter: &wgpu::Limits) -> wgpu::Limits {
    wgpu::Limits {
        max_storage_buffer_binding_size: adapter.max_storage_buffer_binding_size,
        max_buffer_size: adapter.max_buffer_size,
        ..wgpu::Limits::default()
    }
}

impl GpuEngine {
    /// Requests an adapter (high performance, no surface) and a device with limits sufficient for
    /// blocks of n ≤ 64 and galleries up to 50k × 512 f32, then compiles the pipelines.
    ///
    /// # Errors
    /// [`GpuError::NoAdapter`] when there is no adapter, [`GpuError::RequestDevice`] when it cannot
    /// give the limits, [`GpuError::Device`] if a shader fails to compile on it.
    pub async fn new() -> GpuResult<Self> {
        let instance = wgpu::Instance::default();
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|source| GpuError::NoAdapter { source })?;
        let info = adapter.get_info();
        let summary = AdapterSummary {
            name: info.name.clone(),
            backend: info.backend.to_string(),
            device_type: format!("{:?}", info.device_type),
        };
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("mclr gpu engine"),
                required_limits: required_limits(&adapter.limits()),
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::RequestDevice {
                adapter: info.name.clone(),
                source: Box::new(e),
            })?;

        let uncaptured = Uncaptured::default();
        let slot = Arc::clone(&uncaptured);
        // `try_lock`, never a blocking wait: the browser has one thread, so it cannot be contended
        // there; natively only an error raised while a scope is being popped could be lost.
        device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
            if let Ok(mut first) = slot.try_lock() {
                first.get_or_insert_with(|| Recorded::of(&error));
            }
        }));
        let scope = ErrorScope::push(&device, &uncaptured);
        let expm = expm::ExpmPipeline::new(&device);
        let apply = apply::ApplyPipeline::new(&device);
        let knn = knn::KnnPipelines::new(&device);
        scope.pop("shader compilation").await?;
        Ok(Self {
            device,
            queue,
            adapter: summary,
            expm,
            apply,
            knn,
            uncaptured,
        })
    }

    /// Error scopes around one operation (see [`ErrorScope`]).
    fn error_scope(&self) -> ErrorScope {
        ErrorScope::push(&self.device, &self.uncaptured)
    }

    /// The adapter the engine runs on.
    pub fn adapter(&self) -> &AdapterSummary {
        &self.adapter
    }

    /// Largest storage buffer binding of this device, in bytes.
    fn binding_limit(&self) -> u64 {
        self.device.limits().max_storage_buffer_binding_size
    }

    /// Fails with [`GpuError::TooLarge`] when `bytes` exceed what one binding may hold.
    fn check_binding(&self, what: &'static str, bytes: u64) -> GpuResult<()> {
        let limit = self.binding_limit();
        if bytes > limit {
            return Err(GpuError::TooLarge { what, bytes, limit });
        }
        Ok(())
    }

    /// A storage buffer holding `data` (at least 4 bytes, so that empty inputs still bind), which
    /// may be rewritten later (a path's position).
    fn storage_init(&self, label: &'static str, data: &[u8]) -> wgpu::Buffer {
        let padded;
        let contents = if data.len() < 4 {
            padded = [0u8; 4];
            &padded[..]
        } else {
            data
        };
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            })
    }

    /// An uninitialised storage buffer of `bytes` (at least 4) that results can be copied out of.
    fn storage_output(&self, label: &'static str, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(4),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// A uniform buffer holding `words`.
    fn uniform(&self, label: &'static str, words: &[u32]) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(words),
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }
}

/// Validation and out-of-memory error scopes around one operation, so that a wgpu error becomes a
/// [`GpuError::Device`] instead of the default handler's panic.
///
/// Push and pop happen without an `await` in between (the scope stack is per thread). An operation
/// that fails before submitting just drops its scope: the fields drop in declaration order, the
/// reverse of how they were pushed, as wgpu requires.
///
/// Popping also reports an error recorded earlier outside any scope ([`Uncaptured`]), once.
struct ErrorScope {
    validation: wgpu::ErrorScopeGuard,
    memory: wgpu::ErrorScopeGuard,
    uncaptured: Uncaptured,
}

impl ErrorScope {
    fn push(device: &wgpu::Device, uncaptured: &Uncaptured) -> Self {
        let memory = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        Self {
            validation,
            memory,
            uncaptured: Arc::clone(uncaptured),
        }
    }

    /// Pops both scopes and waits for their verdicts.
    async fn pop(self, operation: &'static str) -> GpuResult<()> {
        let validation = self.validation.pop();
        let memory = self.memory.pop();
        let error = match validation.await {
            Some(e) => Some(e),
            None => memory.await,
        };
        if let Some(error) = error {
            return Err(GpuError::Device {
                operation,
                source: Box::new(error),
            });
        }
        let earlier = self
            .uncaptured
            .try_lock()
            .ok()
            .and_then(|mut slot| slot.take());
        match earlier {
            None => Ok(()),
            Some(error) => Err(GpuError::EarlierUpload {
                operation,
                source: Box::new(error),
            }),
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::GpuError;

    #[test]
    fn an_unscoped_device_error_is_reported_by_the_next_operation_not_panicked() {
        let engine = match pollster::block_on(super::GpuEngine::new()) {
            Ok(engine) => engine,
            Err(e) => panic!(
                "no GPU adapter: install Mesa's Vulkan drivers: \
                 apt-get install mesa-vulkan-drivers ({})",
                crate::error_chain(&e)
            ),
        };
        // Invalid outside any scope, as an out-of-memory upload would be: mappable for reading
        // and usable as storage at once is refused by WebGPU's validation.
        let _invalid = engine.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("invalid on purpose"),
            size: 16,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let identity = [1.0f32, 0.0, 0.0, 1.0];
        match pollster::block_on(engine.expm(&identity, 2)) {
            Err(error @ GpuError::EarlierUpload { operation, .. }) => {
                assert_eq!(operation, "expm");
                let message = error.to_string();
                assert!(message.contains("earlier upload"), "{message}");
                // What wgpu said is the source, once, not part of the message.
                let cause = std::error::Error::source(&error).map(ToString::to_string);
                let cause = cause.expect("the wgpu error is the source");
                assert!(!message.contains(&cause), "{message} / {cause}");
            }
            other => panic!("expected the earlier error, got {other:?}"),
        }
        // Reported once: the engine keeps working.
        let out = pollster::block_on(engine.expm(&identity, 2)).unwrap();
        let e = std::f32::consts::E;
        for (got, want) in out.iter().zip([e, 0.0, 0.0, e]) {
            assert!((got - want).abs() < 1e-5, "{out:?}");
        }
    }
}
