//! The WGSL engine against the CPU reference on the viewer's per-frame workloads:
//! * expm of S × K = 64 × 32 blocks of 16×16 (stable-init generators, the sampling view);
//! * transport of one 512-d feature by those 2048 blocks;
//! * kNN of one query against a 10k × 512 f16 gallery, k = 16;
//! * one path frame (z ← E z, then kNN) against `PathStepper::step` + `KnnIndex::search`.
//!
//! Each GPU timing includes uploading the inputs and reading the result back, as the API does.
//! Run with `cargo bench -p mclr-shared --features gpu --bench gpu`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

// The engine's native benchmarks; a browser has no criterion harness, so wasm32 gets an empty main.
#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::time::Duration;

    use criterion::{Criterion, criterion_group};
    use half::f16;
    use mclr_shared::expm::expm_batch;
    use mclr_shared::geometry::{KnnIndex, Metric};
    use mclr_shared::gpu::{GalleryData, GpuEngine};
    use mclr_shared::operators::{Operators, PathStepper};
    use pollster::block_on;

    const S: usize = 64;
    const K: usize = 32;
    const N: usize = 16;
    const M: usize = 8;
    const GALLERY_ROWS: usize = 10_000;

    /// Deterministic uniform numbers in [0, 1).
    fn uniform_source(mut state: u64) -> impl FnMut() -> f32 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        }
    }

    fn bench_gpu(c: &mut Criterion) {
        let engine = block_on(GpuEngine::new()).expect("a GPU adapter (or Mesa's lavapipe)");
        let mut uniform = uniform_source(0x2545_F491_4F6C_DD1D);
        let ops = Operators::stable_init(M, K, N, &mut uniform).unwrap();
        let coefficients: Vec<f32> = (0..S * M).map(|_| uniform() * 2.0 - 1.0).collect();
        let generators = ops.generators(&coefficients).unwrap();
        let transport = ops.transport(&coefficients).unwrap();
        let d = K * N;
        let z: Vec<f32> = (0..d).map(|_| uniform() * 2.0 - 1.0).collect();
        let gallery_bits: Vec<u16> = (0..GALLERY_ROWS * d)
            .map(|_| f16::from_f32(uniform() * 2.0 - 1.0).to_bits())
            .collect();
        let gallery_f32: Vec<f32> = gallery_bits
            .iter()
            .map(|&b| f16::from_bits(b).to_f32())
            .collect();
        let index = KnnIndex::new(gallery_f32, d, Metric::Cosine).unwrap();
        let gallery = engine
            .upload_gallery(GalleryData::F16(&gallery_bits), d, Metric::Cosine)
            .unwrap();

        let mut group = c.benchmark_group("gpu");
        group
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));

        group.bench_function("expm_64x32x16x16/cpu", |b| {
            b.iter(|| expm_batch(&generators, N).unwrap());
        });
        group.bench_function("expm_64x32x16x16/gpu", |b| {
            b.iter(|| block_on(engine.expm(&generators, N)).unwrap());
        });

        group.bench_function("apply_64x32x16x16/cpu", |b| {
            b.iter(|| transport.apply(&z).unwrap());
        });
        group.bench_function("apply_64x32x16x16/gpu", |b| {
            b.iter(|| block_on(engine.apply_blocks(transport.as_slice(), K, N, &z)).unwrap());
        });

        group.bench_function("knn_1x10000x512_f16_k16/cpu", |b| {
            b.iter(|| index.search(&z, 16).unwrap());
        });
        group.bench_function("knn_1x10000x512_f16_k16/gpu", |b| {
            b.iter(|| block_on(engine.knn(&gallery, &z, 16)).unwrap());
        });

        let c0: Vec<f32> = coefficients[..M].to_vec();
        let dt = 0.01f32;
        let step = ops
            .transport(&c0.iter().map(|x| x * dt).collect::<Vec<f32>>())
            .unwrap();
        let mut stepper = PathStepper::new(&ops, &c0, &z, dt).unwrap();
        group.bench_function("path_frame_512d_10000_k16/cpu", |b| {
            b.iter(|| {
                let z = stepper.step().unwrap().to_vec();
                index.search(&z, 16).unwrap()
            });
        });
        let mut path = engine.upload_path(step.as_slice(), K, N, &z).unwrap();
        group.bench_function("path_frame_512d_10000_k16/gpu", |b| {
            b.iter(|| block_on(engine.path_step_knn(&mut path, &gallery, 16)).unwrap());
        });
        group.finish();
    }

    criterion_group!(benches, bench_gpu);
}

#[cfg(not(target_arch = "wasm32"))]
criterion::criterion_main!(native::benches);

#[cfg(target_arch = "wasm32")]
fn main() {}
