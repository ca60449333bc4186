//! Dispatches `apply.wgsl`: block-diagonal transport, as [`crate::operators::BlockDiagonal::apply`].

use super::buffers::{entry, grid, to_u32, words_bytes, words_to_f32};
use super::{GpuEngine, GpuResult};
use crate::Error;
use crate::error::ensure_finite;

/// Invocations per workgroup of `apply.wgsl`.
const WORKGROUP: usize = 64;

/// The compiled transport pipeline.
#[derive(Debug)]
pub(super) struct ApplyPipeline {
    pipeline: wgpu::ComputePipeline,
}

impl ApplyPipeline {
    pub(super) fn new(device: &wgpu::Device) -> Self {
        let module = device.create_shader_module(wgpu::include_wgsl!("apply.wgsl"));
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("apply"),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        Self { pipeline }
    }
}

/// Shape of one transport: S rows of K blocks of n×n, applied to B feature rows of d = K·n.
#[derive(Debug, Clone, Copy)]
pub(super) struct TransportShape {
    pub(super) blocks: usize,
    pub(super) n: usize,
    pub(super) rows: usize,
    pub(super) z_rows: usize,
}

impl TransportShape {
    /// Checks `blocks` (S, K, n, n) against `z` (B, K·n) with B dividing S.
    pub(super) fn of(blocks: &[f32], k: usize, n: usize, z: &[f32]) -> GpuResult<Self> {
        let block_len = k.checked_mul(n).and_then(|kn| kn.checked_mul(n));
        let block_len = match block_len {
            Some(len) if len > 0 && blocks.len().is_multiple_of(len) && !blocks.is_empty() => len,
            _ => {
                return Err(Error::invalid(
                    "blocks",
                    format!(
                        "{} values are not S ≥ 1 rows of K = {k} blocks of {n}×{n}",
                        blocks.len()
                    ),
                )
                .into());
            }
        };
        let rows = blocks.len() / block_len;
        let d = k * n;
        crate::operators::check_broadcast_features(z.len(), d, rows, "rows of blocks")?;
        Ok(Self {
            blocks: k,
            n,
            rows,
            z_rows: z.len() / d,
        })
    }

    /// Feature dimension d = K·n.
    pub(super) fn dim(&self) -> usize {
        self.blocks * self.n
    }
}

impl GpuEngine {
    /// Block-diagonal transport: `blocks` is (S, K, n, n) (e.g. [`GpuEngine::expm`]'s output),
    /// `z` is (B, d) with d = K·n and B dividing S (B = 1 broadcasts one feature over S); returns
    /// (S, d) with `out[s, k·n..] = blocks[s, k] · z[s mod B, k·n..]`, as
    /// [`crate::operators::BlockDiagonal::apply`].
    ///
    /// # Errors
    /// [`GpuError::Input`](super::GpuError::Input) for mismatched shapes or non-finite values,
    /// [`GpuError::TooLarge`](super::GpuError::TooLarge) past a binding limit, and device or
    /// readback failures.
    pub async fn apply_blocks(
        &self,
        blocks: &[f32],
        k: usize,
        n: usize,
        z: &[f32],
    ) -> GpuResult<Vec<f32>> {
        let shape = TransportShape::of(blocks, k, n, z)?;
        ensure_finite("blocks", blocks.iter().copied())?;
        ensure_finite("features", z.iter().copied())?;
        self.check_binding("transport blocks", words_bytes(blocks.len()))?;
        let out_len = shape.rows * shape.dim();
        let out_bytes = words_bytes(out_len);
        self.check_binding("transport output", out_bytes)?;

        let scope = self.error_scope();
        let transport = self.storage_init("transport blocks", bytemuck::cast_slice(blocks));
        let features = self.storage_init("transport features", bytemuck::cast_slice(z));
        let output = self.storage_output("transport output", out_bytes);
        let mut encoder = self.device.create_command_encoder(&Default::default());
        self.encode_apply(&mut encoder, shape, &transport, &features, &output)?;
        let readback = self.readback_buffer(out_bytes);
        encoder.copy_buffer_to_buffer(&output, 0, &readback, 0, out_bytes);
        let words = self
            .submit_and_read("apply", scope, encoder, &readback, out_len)
            .await?;
        Ok(words_to_f32(&words))
    }

    /// Records `output = transport · features` (shapes as in `shape`) on `encoder`.
    pub(super) fn encode_apply(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        shape: TransportShape,
        transport: &wgpu::Buffer,
        features: &wgpu::Buffer,
        output: &wgpu::Buffer,
    ) -> GpuResult<()> {
        let params = self.uniform(
            "apply params",
            &[
                to_u32("transport blocks", shape.blocks)?,
                to_u32("transport block size", shape.n)?,
                to_u32("transport rows", shape.rows)?,
                to_u32("transport feature rows", shape.z_rows)?,
            ],
        );
        to_u32("transport output", shape.rows * shape.dim())?;
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("apply"),
            layout: &self.apply.pipeline.get_bind_group_layout(0),
            entries: &[
                entry(0, &params),
                entry(1, transport),
                entry(2, features),
                entry(3, output),
            ],
        });
        let (x, y) = grid((shape.rows * shape.dim()).div_ceil(WORKGROUP))?;
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&self.apply.pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(x, y, 1);
        Ok(())
    }
}
