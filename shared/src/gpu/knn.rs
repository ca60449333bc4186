//! Dispatches `knn.wgsl`: exact k-nearest neighbours against a gallery kept on the GPU, with the
//! scores and ranking of [`crate::geometry::KnnIndex::search_batch`].

use half::f16;

use super::buffers::{grid, to_u32, words_bytes};
use super::{GpuEngine, GpuError, GpuResult};
use crate::Error;
use crate::error::ensure_finite;
use crate::geometry::{Metric, Neighbour};

/// Gallery rows per workgroup of `select_tiles` (the shader's `TILE`).
const TILE: usize = 256;

/// Invocations per workgroup (the shader's `WG`).
const WORKGROUP: usize = 64;

/// Largest k the GPU search supports.
pub const MAX_K: usize = 64;

/// Most candidate bytes (queries × tiles × k × 8) one dispatch writes; larger query batches run
/// as several dispatches in the same submission.
const CANDIDATE_BUDGET: u64 = 32 << 20;

/// A row slot the shader left empty.
const NONE: u32 = u32::MAX;

/// Gallery features to upload: f32, or f16 as raw bits (how a bundle stores them).
#[derive(Debug, Clone, Copy)]
pub enum GalleryData<'a> {
    /// Row-major `len × dim` f32 values.
    F32(&'a [f32]),
    /// Row-major `len × dim` IEEE half-precision values, as their bits.
    F16(&'a [u16]),
}

impl GalleryData<'_> {
    fn len(&self) -> usize {
        match self {
            Self::F32(values) => values.len(),
            Self::F16(bits) => bits.len(),
        }
    }

    /// The values widened to f32 (the CPU reference scores exactly these).
    fn to_f32(self) -> Vec<f32> {
        match self {
            Self::F32(values) => values.to_vec(),
            Self::F16(bits) => bits.iter().map(|&b| f16::from_bits(b).to_f32()).collect(),
        }
    }

    /// The words the shader reads: f32 bits, or f16 pairs packed low half first.
    fn words(self) -> Vec<u32> {
        match self {
            Self::F32(values) => values.iter().map(|v| v.to_bits()).collect(),
            Self::F16(bits) => bits
                .chunks(2)
                .map(|pair| {
                    let low = u32::from(pair.first().copied().unwrap_or(0));
                    let high = u32::from(pair.get(1).copied().unwrap_or(0));
                    low | (high << 16)
                })
                .collect(),
        }
    }
}

/// A gallery uploaded once for repeated searches: its features, the inverse row norms cosine
/// needs, its shape and metric.
#[derive(Debug)]
pub struct GpuGallery {
    features: wgpu::Buffer,
    inverse_norms: wgpu::Buffer,
    len: usize,
    dim: usize,
    metric: Metric,
    packed_f16: bool,
}

impl GpuGallery {
    /// Number of gallery rows N.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the gallery has no rows.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Feature dimension d.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The metric searches rank by.
    pub fn metric(&self) -> Metric {
        self.metric
    }
}

/// The three compiled stages of the search, sharing one bind group layout.
#[derive(Debug)]
pub(super) struct KnnPipelines {
    layout: wgpu::BindGroupLayout,
    query_norms: wgpu::ComputePipeline,
    select_tiles: wgpu::ComputePipeline,
    merge_tiles: wgpu::ComputePipeline,
}

impl KnnPipelines {
    pub(super) fn new(device: &wgpu::Device) -> Self {
        let module = device.create_shader_module(wgpu::include_wgsl!("knn.wgsl"));
        let storage = |binding: u32, read_only: bool| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("knn"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
                storage(1, true),
                storage(2, true),
                storage(3, true),
                storage(4, false),
                storage(5, false),
                storage(6, false),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("knn"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let stage = |entry_point: &'static str| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry_point),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(entry_point),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        Self {
            query_norms: stage("query_norms"),
            select_tiles: stage("select_tiles"),
            merge_tiles: stage("merge_tiles"),
            layout,
        }
    }
}

/// `1 / |x|` accumulated in f64, or 0 for a zero vector: the CPU index's row norm, bit for bit.
fn inverse_norm(x: &[f32]) -> f32 {
    let squared: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    if squared > 0.0 {
        (1.0 / squared.sqrt()) as f32
    } else {
        0.0
    }
}

/// Fails unless 1 ≤ k ≤ [`MAX_K`].
fn check_k(k: usize) -> GpuResult<()> {
    if k == 0 || k > MAX_K {
        return Err(Error::invalid(
            "k",
            format!("number of neighbours must be in 1..={MAX_K} on the GPU, got {k}"),
        )
        .into());
    }
    Ok(())
}

/// Where a search reads its queries and writes its `(row, score)` pairs.
pub(super) struct SearchTarget<'a> {
    pub(super) queries: &'a wgpu::Buffer,
    pub(super) count: usize,
    pub(super) results: &'a wgpu::Buffer,
    pub(super) k: usize,
}

impl GpuEngine {
    /// Uploads a gallery of `len × dim` features (f32, or f16 bits) once, for repeated searches
    /// under `metric`. An empty gallery is allowed; searches on it return no neighbours.
    ///
    /// # Errors
    /// [`GpuError::Input`] when `dim` is 0, the length is not a multiple of `dim` or a value is
    /// not finite (as [`crate::geometry::KnnIndex::new`] reports it), [`GpuError::TooLarge`]
    /// when the features exceed a device binding.
    pub fn upload_gallery(
        &self,
        features: GalleryData<'_>,
        dim: usize,
        metric: Metric,
    ) -> GpuResult<GpuGallery> {
        if dim == 0 {
            return Err(Error::invalid("dim", "feature dimension must be at least 1").into());
        }
        let total = features.len();
        if !total.is_multiple_of(dim) {
            return Err(Error::shape("features", &[total / dim, dim], &[total]).into());
        }
        let values = features.to_f32();
        ensure_finite("features", values.iter().copied())?;
        let words = features.words();
        self.check_binding("gallery features", words_bytes(words.len()))?;
        let len = total / dim;
        to_u32("gallery elements", total)?;
        let norms: Vec<f32> = match metric {
            Metric::Cosine => values.chunks_exact(dim).map(inverse_norm).collect(),
            Metric::Euclidean => Vec::new(),
        };
        Ok(GpuGallery {
            features: self.storage_init("gallery features", bytemuck::cast_slice(&words)),
            inverse_norms: self.storage_init("gallery inverse norms", bytemuck::cast_slice(&norms)),
            len,
            dim,
            metric,
            packed_f16: matches!(features, GalleryData::F16(_)),
        })
    }

    /// The `k` gallery rows nearest to each query (`queries` is row-major Q × d), best first, with
    /// the scores, order and tie rule (lower row first) of
    /// [`crate::geometry::KnnIndex::search_batch`]. When k exceeds the gallery size, all rows are
    /// returned. Only Q × k results are read back.
    ///
    /// # Errors
    /// [`GpuError::Input`] when k is 0 or above [`MAX_K`] (64), or the queries are not whole
    /// finite rows of the gallery's dimension; device and readback failures.
    pub async fn knn(
        &self,
        gallery: &GpuGallery,
        queries: &[f32],
        k: usize,
    ) -> GpuResult<Vec<Vec<Neighbour>>> {
        check_k(k)?;
        let dim = gallery.dim;
        if !queries.len().is_multiple_of(dim) {
            let len = queries.len();
            return Err(Error::shape("queries", &[len / dim, dim], &[len]).into());
        }
        ensure_finite("queries", queries.iter().copied())?;
        let count = queries.len() / dim;
        let k = k.min(gallery.len);
        if count == 0 || k == 0 {
            return Ok(vec![Vec::new(); count]);
        }
        self.check_binding("queries", words_bytes(queries.len()))?;
        let scope = self.error_scope();
        let query_buffer = self.storage_init("knn queries", bytemuck::cast_slice(queries));
        let result_words = count * k * 2;
        let result_bytes = words_bytes(result_words);
        let results = self.storage_output("knn results", result_bytes);
        let mut encoder = self.device.create_command_encoder(&Default::default());
        self.encode_knn(
            &mut encoder,
            gallery,
            &SearchTarget {
                queries: &query_buffer,
                count,
                results: &results,
                k,
            },
        )?;
        let readback = self.readback_buffer(result_bytes);
        encoder.copy_buffer_to_buffer(&results, 0, &readback, 0, result_bytes);
        let words = self
            .submit_and_read("knn", scope, encoder, &readback, result_words)
            .await?;
        Ok(words
            .chunks_exact(k * 2)
            .map(neighbours_from_words)
            .collect())
    }

    /// Records the search of `target.count` queries (rows of `target.queries`) against `gallery`,
    /// writing `(row, score bits)` pairs, k per query, into `target.results`. `target.k` must
    /// already be clamped to the gallery size and be at least 1.
    pub(super) fn encode_knn(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        gallery: &GpuGallery,
        target: &SearchTarget<'_>,
    ) -> GpuResult<()> {
        let tiles = gallery.len.div_ceil(TILE);
        let per_query = words_bytes(tiles * target.k * 2);
        let budget = CANDIDATE_BUDGET.min(self.binding_limit());
        if per_query > budget {
            return Err(GpuError::TooLarge {
                what: "kNN candidates of one query",
                bytes: per_query,
                limit: budget,
            });
        }
        let chunk = usize::try_from(budget / per_query.max(1))
            .unwrap_or(1)
            .clamp(1, target.count);
        let candidates = self.storage_output("knn candidates", per_query * chunk as u64);
        let query_norms = self.storage_output("knn query norms", words_bytes(target.count));

        for base in (0..target.count).step_by(chunk) {
            let in_flight = chunk.min(target.count - base);
            let params = self.uniform(
                "knn params",
                &[
                    to_u32("gallery dimension", gallery.dim)?,
                    to_u32("gallery rows", gallery.len)?,
                    to_u32("queries", in_flight)?,
                    to_u32("k", target.k)?,
                    to_u32("gallery tiles", tiles)?,
                    match gallery.metric {
                        Metric::Cosine => 0,
                        Metric::Euclidean => 1,
                    },
                    u32::from(gallery.packed_f16),
                    to_u32("queries", base)?,
                ],
            );
            let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("knn"),
                layout: &self.knn.layout,
                entries: &[
                    super::buffers::entry(0, &params),
                    super::buffers::entry(1, &gallery.features),
                    super::buffers::entry(2, &gallery.inverse_norms),
                    super::buffers::entry(3, target.queries),
                    super::buffers::entry(4, &query_norms),
                    super::buffers::entry(5, &candidates),
                    super::buffers::entry(6, target.results),
                ],
            });
            let stages = [
                (&self.knn.query_norms, in_flight.div_ceil(WORKGROUP)),
                (&self.knn.select_tiles, in_flight * tiles),
                (&self.knn.merge_tiles, in_flight),
            ];
            for (pipeline, groups) in stages {
                let (x, y) = grid(groups)?;
                let mut pass = encoder.begin_compute_pass(&Default::default());
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, &bind_group, &[]);
                pass.dispatch_workgroups(x, y, 1);
            }
        }
        Ok(())
    }
}

/// One query's `(row, score bits)` pairs as neighbours, skipping empty slots.
pub(super) fn neighbours_from_words(words: &[u32]) -> Vec<Neighbour> {
    words
        .chunks_exact(2)
        .filter_map(|pair| match *pair {
            [row, score] if row != NONE => Some(Neighbour {
                index: row as usize,
                score: f32::from_bits(score),
            }),
            _ => None,
        })
        .collect()
}
