//! Moving results off the device, and laying out dispatches.

use super::{GpuEngine, GpuError, GpuResult};

/// Most workgroups per dispatch dimension that every WebGPU device accepts.
pub(super) const MAX_GROUPS_PER_DIMENSION: u32 = 65_535;

/// A 2-D dispatch grid covering `groups` workgroups: shaders linearise the id as
/// `x + y · MAX_GROUPS_PER_DIMENSION` and skip ids past the end.
pub(super) fn grid(groups: usize) -> GpuResult<(u32, u32)> {
    let per_row = MAX_GROUPS_PER_DIMENSION as usize;
    let rows = groups.div_ceil(per_row);
    let too_many = || GpuError::TooLarge {
        what: "dispatch",
        bytes: groups as u64,
        limit: u64::from(MAX_GROUPS_PER_DIMENSION) * u64::from(MAX_GROUPS_PER_DIMENSION),
    };
    let y = u32::try_from(rows.max(1)).map_err(|_| too_many())?;
    if y > MAX_GROUPS_PER_DIMENSION {
        return Err(too_many());
    }
    let x = u32::try_from(groups.min(per_row).max(1)).map_err(|_| too_many())?;
    Ok((x, y))
}

/// `values` as u32 (counts and sizes passed to shaders), or [`GpuError::TooLarge`].
pub(super) fn to_u32(what: &'static str, value: usize) -> GpuResult<u32> {
    u32::try_from(value).map_err(|_| GpuError::TooLarge {
        what,
        bytes: value as u64,
        limit: u64::from(u32::MAX),
    })
}

/// Byte size of `count` 4-byte words.
pub(super) fn words_bytes(count: usize) -> u64 {
    (count as u64).saturating_mul(4)
}

impl GpuEngine {
    /// A buffer the CPU can map for reading, `bytes` long (at least 4).
    pub(super) fn readback_buffer(&self, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("mclr readback"),
            size: bytes.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Submits `encoder`, closes `scope` (opened before the operation created its buffers and
    /// recorded its passes), then maps `readback` and returns its first `words` 4-byte words.
    ///
    /// In the browser the mapping resolves from the event loop while this future waits; natively
    /// the device is polled until the submission is done.
    pub(super) async fn submit_and_read(
        &self,
        operation: &'static str,
        scope: super::ErrorScope,
        encoder: wgpu::CommandEncoder,
        readback: &wgpu::Buffer,
        words: usize,
    ) -> GpuResult<Vec<u32>> {
        self.queue.submit([encoder.finish()]);
        scope.pop(operation).await?;
        let fail = |source: Box<dyn std::error::Error + Send + Sync>| GpuError::Readback {
            operation,
            source,
        };
        if words == 0 {
            return Ok(Vec::new());
        }

        let (sender, receiver) = futures_channel::oneshot::channel();
        let slice = readback.slice(..words_bytes(words));
        slice.map_async(wgpu::MapMode::Read, move |result| {
            // The receiver only disappears if the caller dropped this future; nothing to tell then.
            let _ = sender.send(result);
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| fail(Box::new(e)))?;
        receiver
            .await
            .map_err(|e| fail(Box::new(e)))?
            .map_err(|e| fail(Box::new(e)))?;
        let words = {
            let view = slice.get_mapped_range().map_err(|e| fail(Box::new(e)))?;
            bytemuck::pod_collect_to_vec::<u8, u32>(&view)
        };
        readback.unmap();
        Ok(words)
    }
}

/// Reinterprets u32 words holding f32 bits.
pub(super) fn words_to_f32(words: &[u32]) -> Vec<f32> {
    words.iter().map(|&w| f32::from_bits(w)).collect()
}

/// A bind group entry for a whole buffer.
pub(super) fn entry(binding: u32, buffer: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: buffer.as_entire_binding(),
    }
}
