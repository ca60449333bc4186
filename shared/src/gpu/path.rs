//! Animation frames on the GPU: `z ← E z` with the step E = T(Δt·c) kept on the device, then the
//! nearest gallery rows of the new z — one submission and one small readback per frame.
//!
//! This is [`crate::operators::PathStepper`] plus a kNN search, with z never leaving the device
//! between frames (two position buffers take turns as source and destination).

use super::apply::TransportShape;
use super::buffers::{words_bytes, words_to_f32};
use super::knn::{GpuGallery, SearchTarget, neighbours_from_words};
use super::{GpuEngine, GpuError, GpuResult};
use crate::error::ensure_finite;
use crate::geometry::Neighbour;
use crate::{Error, Result};

/// A path being walked on the GPU: the step E (K blocks of n×n) and the current position z (d).
#[derive(Debug)]
pub struct GpuPath {
    step: wgpu::Buffer,
    positions: [wgpu::Buffer; 2],
    current: usize,
    blocks: usize,
    n: usize,
    steps: u64,
}

impl GpuPath {
    /// Feature dimension d = K·n.
    pub fn dim(&self) -> usize {
        self.blocks * self.n
    }

    /// Steps taken since the start (or the last [`GpuEngine::set_path_position`]).
    pub fn steps(&self) -> u64 {
        self.steps
    }
}

/// What one frame reads back: the new position and its nearest gallery rows.
#[derive(Debug, Clone, PartialEq)]
pub struct PathFrame {
    /// z after the step, d values.
    pub z: Vec<f32>,
    /// The k gallery rows nearest to `z`, best first (as [`GpuEngine::knn`]).
    pub neighbours: Vec<Neighbour>,
}

/// Checks that `z0` is one finite feature of d = K·n.
fn check_position(z0: &[f32], d: usize) -> Result<()> {
    if z0.len() != d {
        return Err(Error::shape("z0", &[d], &[z0.len()]));
    }
    ensure_finite("z0", z0.iter().copied())
}

impl GpuEngine {
    /// Starts a path at `z0` (d = K·n values) with the step `step` (K blocks of n×n, row-major:
    /// e.g. `T(Δt·c)` from [`GpuEngine::expm`] or the CPU), both uploaded once.
    ///
    /// # Errors
    /// [`GpuError::Input`] when the shapes disagree or a value is not finite.
    pub fn upload_path(&self, step: &[f32], k: usize, n: usize, z0: &[f32]) -> GpuResult<GpuPath> {
        let shape = TransportShape::of(step, k, n, z0)?;
        if shape.rows != 1 {
            return Err(Error::shape("path step", &[k, n, n], &[step.len()]).into());
        }
        ensure_finite("path step", step.iter().copied())?;
        check_position(z0, shape.dim())?;
        let step = self.storage_init("path step", bytemuck::cast_slice(step));
        Ok(self.path_with_step(step, k, n, z0))
    }

    /// Starts a path at `z0` whose step is `expm` of the K generators in `generators` (K × n × n,
    /// e.g. `Δt · Σ_m c_m Ψ[m, k]`), computed on the GPU and kept there: nothing is read back.
    ///
    /// # Errors
    /// As [`GpuEngine::upload_path`] and [`GpuEngine::expm`].
    pub async fn path_from_generators(
        &self,
        generators: &[f32],
        k: usize,
        n: usize,
        z0: &[f32],
    ) -> GpuResult<GpuPath> {
        let shape = TransportShape::of(generators, k, n, z0)?;
        if shape.rows != 1 {
            return Err(Error::shape("path generators", &[k, n, n], &[generators.len()]).into());
        }
        check_position(z0, shape.dim())?;
        let bytes = words_bytes(generators.len());
        self.check_binding("path generators", bytes)?;
        let scope = self.error_scope();
        let input = self.storage_init("path generators", bytemuck::cast_slice(generators));
        let step = self.storage_output("path step", bytes);
        let mut encoder = self.device.create_command_encoder(&Default::default());
        self.encode_expm(&mut encoder, &input, &step, generators, n)?;
        self.queue.submit([encoder.finish()]);
        scope.pop("path step expm").await?;
        Ok(self.path_with_step(step, k, n, z0))
    }

    fn path_with_step(&self, step: wgpu::Buffer, k: usize, n: usize, z0: &[f32]) -> GpuPath {
        let first = self.storage_init("path position", bytemuck::cast_slice(z0));
        let second = self.storage_output("path position", words_bytes(z0.len()));
        GpuPath {
            step,
            positions: [first, second],
            current: 0,
            blocks: k,
            n,
            steps: 0,
        }
    }

    /// Moves `path` to `z` (d values) and resets its step count, keeping the step E.
    ///
    /// # Errors
    /// [`GpuError::Input`] when `z` is not one finite feature of the path's dimension.
    pub fn set_path_position(&self, path: &mut GpuPath, z: &[f32]) -> GpuResult<()> {
        check_position(z, path.dim())?;
        let target = path.positions.get(path.current).ok_or(GpuError::Mismatch {
            what: "path",
            reason: "position buffer missing".into(),
        })?;
        self.queue.write_buffer(target, 0, bytemuck::cast_slice(z));
        path.steps = 0;
        Ok(())
    }

    /// One animation frame: `z ← E z`, then the `k` gallery rows nearest to the new z (as
    /// [`GpuEngine::knn`]). One submission; the readback is the d values of z and k pairs.
    ///
    /// # Errors
    /// [`GpuError::Mismatch`] when the gallery's dimension is not the path's,
    /// [`GpuError::Input`] when k is not in 1..=64 or when the new position is not finite (the
    /// step overflowed; the path then stays where it was), and device or readback failures.
    pub async fn path_step_knn(
        &self,
        path: &mut GpuPath,
        gallery: &GpuGallery,
        k: usize,
    ) -> GpuResult<PathFrame> {
        let d = path.dim();
        if gallery.dim() != d {
            return Err(GpuError::Mismatch {
                what: "path and gallery",
                reason: format!(
                    "the path moves {d}-d features, the gallery holds {}-d ones",
                    gallery.dim()
                ),
            });
        }
        if k == 0 || k > super::knn::MAX_K {
            return Err(Error::invalid(
                "k",
                format!(
                    "number of neighbours must be in 1..={} on the GPU, got {k}",
                    super::knn::MAX_K
                ),
            )
            .into());
        }
        let k = k.min(gallery.len());
        let (source, destination) = match &path.positions {
            [a, b] if path.current == 0 => (a, b),
            [a, b] => (b, a),
        };
        let shape = TransportShape {
            blocks: path.blocks,
            n: path.n,
            rows: 1,
            z_rows: 1,
        };
        let scope = self.error_scope();
        let mut encoder = self.device.create_command_encoder(&Default::default());
        self.encode_apply(&mut encoder, shape, &path.step, source, destination)?;

        let z_bytes = words_bytes(d);
        let result_words = k * 2;
        let result_bytes = words_bytes(result_words);
        let readback = self.readback_buffer(z_bytes + result_bytes);
        encoder.copy_buffer_to_buffer(destination, 0, &readback, 0, z_bytes);
        if k > 0 {
            let results = self.storage_output("path neighbours", result_bytes);
            self.encode_knn(
                &mut encoder,
                gallery,
                &SearchTarget {
                    queries: destination,
                    count: 1,
                    results: &results,
                    k,
                },
            )?;
            encoder.copy_buffer_to_buffer(&results, 0, &readback, z_bytes, result_bytes);
        }
        let words = self
            .submit_and_read("path step", scope, encoder, &readback, d + result_words)
            .await?;
        let (z, pairs) = words.split_at(d.min(words.len()));
        let z = words_to_f32(z);
        // The shader ranks whatever it is given: a position that overflowed to infinity or NaN
        // gives meaningless neighbours. Refuse it as the CPU path does, and stay on the last
        // finite position.
        ensure_finite("path position", z.iter().copied())?;
        path.current = 1 - path.current;
        path.steps += 1;
        Ok(PathFrame {
            z,
            neighbours: neighbours_from_words(pairs),
        })
    }
}
