//! Dispatches `expm.wgsl`: the batched matrix exponential of [`crate::expm::expm_batch`] on the GPU.

use super::buffers::{entry, grid, to_u32, words_bytes, words_to_f32};
use super::{GpuEngine, GpuResult};
use crate::Error;
use crate::expm::{Real, plan};

/// Scratch matrices per matrix in flight: A, A², A³, A⁴ and the pair P, T.
const SCRATCH_MATRICES: u64 = 6;

/// Most scratch memory one dispatch uses; larger batches run as several dispatches.
const SCRATCH_BUDGET: u64 = 64 << 20;

/// Largest block size whose six work matrices live in workgroup memory (6 · 16² f32 = 6 KiB, well
/// inside the 16 KiB every WebGPU device offers).
const WORKGROUP_MEMORY_MAX_N: usize = 16;

/// Declarations `expm.wgsl` expects when its work matrices live in workgroup memory.
const WORKGROUP_PRELUDE: &str = "
var<workgroup> work: array<f32, 1536>;
fn work_base(slot: u32, nn: u32) -> u32 { return 0u; }
fn sync() { workgroupBarrier(); }
";

/// Declarations `expm.wgsl` expects when its work matrices live in a storage scratch buffer.
const STORAGE_PRELUDE: &str = "
@group(0) @binding(5) var<storage, read_write> work: array<f32>;
fn work_base(slot: u32, nn: u32) -> u32 { return slot * 6u * nn; }
fn sync() { storageBarrier(); }
";

/// The two compiled variants of `expm.wgsl`.
#[derive(Debug)]
pub(super) struct ExpmPipeline {
    /// Blocks up to [`WORKGROUP_MEMORY_MAX_N`]: work matrices in workgroup memory.
    small: wgpu::ComputePipeline,
    /// Larger blocks: work matrices in a storage scratch buffer.
    large: wgpu::ComputePipeline,
}

impl ExpmPipeline {
    pub(super) fn new(device: &wgpu::Device) -> Self {
        let body = include_str!("expm.wgsl");
        let variant = |label: &'static str, prelude: &str| {
            let source = format!("{prelude}\n{body}");
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        Self {
            small: variant("expm (workgroup memory)", WORKGROUP_PRELUDE),
            large: variant("expm (storage scratch)", STORAGE_PRELUDE),
        }
    }
}

/// Per-matrix plan as the shader reads it (`struct Plan`, five 4-byte words).
fn plan_words(matrix: &[f32], n: usize, index: usize) -> GpuResult<[u32; 5]> {
    // The same arithmetic as the CPU's `expm_one`: μ in f64, the shifted diagonal rounded to f32,
    // the 1-norm accumulated in f32 column by column.
    let trace: f64 = matrix.iter().step_by(n + 1).map(|&x| f64::from(x)).sum();
    let mu = trace / n as f64;
    let mut columns = vec![0.0f32; n];
    for (row_index, row) in matrix.chunks_exact(n).enumerate() {
        for (col_index, (acc, &x)) in columns.iter_mut().zip(row).enumerate() {
            let value = if row_index == col_index {
                (f64::from(x) - mu) as f32
            } else {
                x
            };
            *acc += value.abs();
        }
    }
    let norm = columns
        .into_iter()
        .fold(0.0f32, |m, x| if x > m || x.is_nan() { x } else { m });
    let norm = f64::from(norm);
    if !norm.is_finite() || !mu.is_finite() {
        let value = if norm.is_finite() { mu } else { norm };
        return Err(Error::NonFinite {
            field: format!("expm input matrix {index}"),
            index: 0,
            value: value.to_string(),
        }
        .into());
    }
    let p = plan::<f32>(norm);
    let scale = f64::powi(0.5, p.squarings as i32) as f32;
    let factor = if mu == 0.0 { 1.0 } else { mu.exp() as f32 };
    Ok([
        (mu as f32).to_bits(),
        scale.to_bits(),
        factor.to_bits(),
        to_u32("expm degree", (p.degree / 4).max(1))?,
        p.squarings,
    ])
}

/// `1 / j!` for j = 0 ..= the largest f32 Taylor degree (the top coefficient of the polynomial).
fn taylor_coefficients() -> Vec<f32> {
    let max_degree = f32::TAYLOR_TABLE
        .iter()
        .map(|&(degree, _)| degree)
        .max()
        .unwrap_or(12);
    let mut factorial = 1.0f64;
    (0..=max_degree)
        .map(|j| {
            if j > 0 {
                factorial *= j as f64;
            }
            (1.0 / factorial) as f32
        })
        .collect()
}

/// Checks that `len` values are whole n×n matrices; returns the matrix count.
fn matrix_count(len: usize, n: usize) -> GpuResult<usize> {
    let nn = n.checked_mul(n).unwrap_or(0);
    if n == 0 || nn == 0 || !len.is_multiple_of(nn) {
        return Err(Error::invalid(
            "expm input",
            format!("{len} values are not a whole number of {n}×{n} matrices"),
        )
        .into());
    }
    Ok(len / nn)
}

impl GpuEngine {
    /// Batched matrix exponential of the row-major n×n f32 matrices stored back to back in
    /// `mats`, with the algorithm and plan of [`crate::expm::expm_batch`] (results agree with it
    /// to about 1e-5 relative). Any batch size; n ≤ 64 is what the engine is sized and tested for.
    ///
    /// # Errors
    /// [`GpuError::Input`](super::GpuError::Input) when `mats` is not whole matrices or holds a
    /// non-finite value (named as the CPU names it), [`GpuError::TooLarge`](super::GpuError::TooLarge)
    /// when the batch exceeds a device binding, and device/readback failures.
    pub async fn expm(&self, mats: &[f32], n: usize) -> GpuResult<Vec<f32>> {
        let count = matrix_count(mats.len(), n)?;
        if count == 0 {
            return Ok(Vec::new());
        }
        let bytes = words_bytes(mats.len());
        self.check_binding("expm batch", bytes)?;
        let scope = self.error_scope();
        let input = self.storage_init("expm input", bytemuck::cast_slice(mats));
        let output = self.storage_output("expm output", bytes);
        let mut encoder = self.device.create_command_encoder(&Default::default());
        self.encode_expm(&mut encoder, &input, &output, mats, n)?;
        let readback = self.readback_buffer(bytes);
        encoder.copy_buffer_to_buffer(&output, 0, &readback, 0, bytes);
        let words = self
            .submit_and_read("expm", scope, encoder, &readback, mats.len())
            .await?;
        Ok(words_to_f32(&words))
    }

    /// Records the exponentials of the matrices in `input` (whose CPU copy is `mats`, used for
    /// the plans) into `output`, as one or more dispatches on `encoder`.
    pub(super) fn encode_expm(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        input: &wgpu::Buffer,
        output: &wgpu::Buffer,
        mats: &[f32],
        n: usize,
    ) -> GpuResult<()> {
        let count = matrix_count(mats.len(), n)?;
        let nn = n * n;
        let plans = mats
            .chunks_exact(nn)
            .enumerate()
            .map(|(index, m)| plan_words(m, n, index))
            .collect::<GpuResult<Vec<[u32; 5]>>>()?;
        let plans = self.storage_init("expm plans", bytemuck::cast_slice(&plans));
        let coefs = self.storage_init(
            "expm coefficients",
            bytemuck::cast_slice(&taylor_coefficients()),
        );

        let n32 = to_u32("expm block size", n)?;
        let in_workgroup_memory = n <= WORKGROUP_MEMORY_MAX_N;
        let (pipeline, slots, scratch) = if in_workgroup_memory {
            (&self.expm.small, count, None)
        } else {
            let per_matrix = SCRATCH_MATRICES * words_bytes(nn);
            let budget = SCRATCH_BUDGET.min(self.binding_limit());
            self.check_binding("expm scratch for one matrix", per_matrix)?;
            let slots = usize::try_from((budget / per_matrix).max(1))
                .unwrap_or(1)
                .min(count);
            let scratch = self.storage_output("expm scratch", per_matrix * slots as u64);
            (&self.expm.large, slots, Some(scratch))
        };
        let layout = pipeline.get_bind_group_layout(0);
        for base in (0..count).step_by(slots) {
            let in_flight = slots.min(count - base);
            let params = self.uniform(
                "expm params",
                &[
                    n32,
                    to_u32("expm batch", in_flight)?,
                    to_u32("expm batch", base)?,
                    0,
                ],
            );
            let mut entries = vec![
                entry(0, &params),
                entry(1, input),
                entry(2, &plans),
                entry(3, &coefs),
                entry(4, output),
            ];
            if let Some(scratch) = &scratch {
                entries.push(entry(5, scratch));
            }
            let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("expm"),
                layout: &layout,
                entries: &entries,
            });
            let (x, y) = grid(in_flight)?;
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(x, y, 1);
        }
        Ok(())
    }
}
