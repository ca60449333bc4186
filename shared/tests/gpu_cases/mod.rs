//! The GPU-versus-CPU comparisons, shared by the native (lavapipe) and browser (WebGPU) tests:
//! each case runs a shader and the crate's CPU reference on the same seeded random input.
// A panic here is a test failure with a message, which is what we want.
#![allow(
    dead_code,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use half::f16;
use mclr_shared::expm::{expm_batch, norm1};
use mclr_shared::geometry::{KnnIndex, Metric, Neighbour};
use mclr_shared::gpu::{GalleryData, GpuEngine, GpuError};
use mclr_shared::operators::{Operators, PathStepper};

/// Tolerance of every comparison, relative to the largest magnitude of the reference.
pub const TOLERANCE: f32 = 1e-4;

/// A small seeded xorshift generator: the same inputs on every target.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in [-1, 1).
    pub fn signed(&mut self) -> f32 {
        self.uniform() * 2.0 - 1.0
    }

    pub fn signed_vec(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.signed()).collect()
    }
}

/// `max |got − want| ≤ TOLERANCE · max(|want|, floor)` over the slice.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], floor: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(floor, |m, x| m.max(x.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= TOLERANCE * scale,
            "{what}: element {i}: GPU {g} vs CPU {w} (scale {scale})"
        );
    }
}

/// Random dense n×n matrices rescaled to an exact 1-norm.
pub fn dense_matrices(rng: &mut Rng, count: usize, n: usize, norm: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(count * n * n);
    for _ in 0..count {
        let m = rng.signed_vec(n * n);
        let s = norm / norm1(&m, n);
        out.extend(m.iter().map(|x| x * s));
    }
    out
}

/// Generators Σ_m c_m Ψ[m, k] of stable-init operators (near-rotations, any norm via `scale`), S
/// coefficient rows: S × K blocks of n×n.
pub fn stable_generators(rng: &mut Rng, s: usize, k: usize, n: usize, scale: f32) -> Vec<f32> {
    let m = 3;
    let ops = Operators::stable_init(m, k, n, || rng.uniform()).unwrap();
    let c: Vec<f32> = (0..s * m).map(|_| rng.signed() * scale).collect();
    ops.generators(&c).unwrap()
}

/// expm of S×K blocks of each size n against `expm_batch`, for dense matrices of 1-norm 0.1, 3
/// and 20 and for stable-init generators.
pub async fn expm_matches_cpu(engine: &GpuEngine, sizes: &[(usize, usize, usize)]) {
    let mut rng = Rng::new(1);
    for &(n, s, k) in sizes {
        for norm in [0.1f32, 3.0, 20.0] {
            let a = dense_matrices(&mut rng, s * k, n, norm);
            let gpu = engine.expm(&a, n).await.unwrap();
            let cpu = expm_batch(&a, n).unwrap();
            let nn = n * n;
            for (i, (g, c)) in gpu.chunks(nn).zip(cpu.chunks(nn)).enumerate() {
                assert_close(&format!("expm n={n} ‖A‖₁={norm} matrix {i}"), g, c, 0.0);
            }
        }
        let a = stable_generators(&mut rng, s, k, n, 2.0);
        let gpu = engine.expm(&a, n).await.unwrap();
        let cpu = expm_batch(&a, n).unwrap();
        assert_close(
            &format!("expm of stable-init generators n={n}"),
            &gpu,
            &cpu,
            0.0,
        );
    }
}

/// Non-finite and malformed expm inputs are refused with the CPU's error.
pub async fn expm_rejects_bad_input(engine: &GpuEngine) {
    let mut a = vec![0.0f32; 2 * 4];
    a[5] = f32::NAN;
    let gpu = engine.expm(&a, 2).await.unwrap_err();
    let cpu = expm_batch(&a, 2).unwrap_err();
    match gpu {
        GpuError::Input(e) => assert_eq!(e, cpu),
        other => panic!("expected an input error, got {other}"),
    }
    assert!(matches!(
        engine.expm(&[0.0; 5], 2).await,
        Err(GpuError::Input(_))
    ));
}

/// Block-diagonal transport of S rows against `BlockDiagonal::apply`, with z of S rows and of one
/// broadcast row.
pub async fn apply_matches_cpu(engine: &GpuEngine, s: usize, k: usize, n: usize) {
    let mut rng = Rng::new(2);
    let m = 3;
    let ops = Operators::stable_init(m, k, n, || rng.uniform()).unwrap();
    let c: Vec<f32> = (0..s * m).map(|_| rng.signed()).collect();
    let transport = ops.transport(&c).unwrap();
    let d = k * n;
    for z_rows in [s, 1] {
        let z = rng.signed_vec(z_rows * d);
        let gpu = engine
            .apply_blocks(transport.as_slice(), k, n, &z)
            .await
            .unwrap();
        let cpu = transport.apply(&z).unwrap();
        assert_close(&format!("apply S={s} B={z_rows}"), &gpu, &cpu, 1.0);
    }
    assert!(matches!(
        engine
            .apply_blocks(transport.as_slice(), k, n, &vec![0.0; d + 1])
            .await,
        Err(GpuError::Input(_))
    ));
}

/// Scores closer than this (relative) are a tie: the GPU may fuse a multiply-add that the CPU
/// rounds twice, which moves a score by an ulp or two and can swap two tied rows.
pub const TIE: f32 = 1e-6;

/// Neighbour lists must name the same rows in the same order with close scores, except that rows
/// whose CPU scores tie (within [`TIE`]) may come in either order, and a row tied with the CPU's
/// last neighbour may take its place.
pub fn assert_same_neighbours(what: &str, gpu: &[Vec<Neighbour>], cpu: &[Vec<Neighbour>]) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: number of queries");
    let tied = |a: f32, b: f32| (a - b).abs() <= TIE * a.abs().max(b.abs()).max(1e-2);
    for (q, (g, c)) in gpu.iter().zip(cpu).enumerate() {
        assert_eq!(g.len(), c.len(), "{what}: query {q}: number of neighbours");
        for (rank, (a, b)) in g.iter().zip(c).enumerate() {
            assert!(
                (a.score - b.score).abs() <= TOLERANCE * b.score.abs().max(1e-2),
                "{what}: query {q} rank {rank}: GPU score {} vs CPU {}",
                a.score,
                b.score
            );
            if a.index == b.index {
                continue;
            }
            // The CPU's score for the row the GPU put here: where the CPU ranked it, or (outside
            // its list) no better than its last neighbour.
            let cpu_score = c
                .iter()
                .find(|n| n.index == a.index)
                .or(c.last())
                .map_or(f32::NAN, |n| n.score);
            assert!(
                tied(cpu_score, b.score),
                "{what}: query {q} rank {rank}: GPU row {} (CPU score {cpu_score}) vs CPU row {} \
                 (score {}), not a tie\n  GPU rows {:?}\n  CPU rows {:?}",
                a.index,
                b.index,
                b.score,
                g.iter().map(|n| n.index).collect::<Vec<_>>(),
                c.iter().map(|n| n.index).collect::<Vec<_>>(),
            );
        }
        let mut rows: Vec<usize> = g.iter().map(|n| n.index).collect();
        rows.sort_unstable();
        rows.dedup();
        assert_eq!(rows.len(), g.len(), "{what}: query {q}: a row listed twice");
    }
}

/// kNN of `queries` random queries against an `rows × dim` random gallery, f32 and f16, both
/// metrics, each k in `ks`, against `KnnIndex::search_batch`.
pub async fn knn_matches_cpu(
    engine: &GpuEngine,
    rows: usize,
    dim: usize,
    queries: usize,
    ks: &[usize],
) {
    let mut rng = Rng::new(3);
    let values = rng.signed_vec(rows * dim);
    let bits: Vec<u16> = values.iter().map(|&v| f16::from_f32(v).to_bits()).collect();
    let widened: Vec<f32> = bits.iter().map(|&b| f16::from_bits(b).to_f32()).collect();
    let q = rng.signed_vec(queries * dim);
    for metric in [Metric::Cosine, Metric::Euclidean] {
        for (name, data, reference) in [
            ("f32", GalleryData::F32(&values), &values),
            ("f16", GalleryData::F16(&bits), &widened),
        ] {
            let gallery = engine.upload_gallery(data, dim, metric).unwrap();
            assert_eq!((gallery.len(), gallery.dim()), (rows, dim));
            let index = KnnIndex::new(reference.clone(), dim, metric).unwrap();
            for &k in ks {
                let gpu = engine.knn(&gallery, &q, k).await.unwrap();
                let cpu = index.search_batch(&q, k).unwrap();
                assert_same_neighbours(
                    &format!("knn {name} {metric:?} N={rows} d={dim} k={k}"),
                    &gpu,
                    &cpu,
                );
            }
        }
    }
}

/// k outside 1..=64, queries of the wrong width and an empty gallery.
pub async fn knn_edge_cases(engine: &GpuEngine) {
    let mut rng = Rng::new(4);
    let dim = 8;
    let values = rng.signed_vec(10 * dim);
    let gallery = engine
        .upload_gallery(GalleryData::F32(&values), dim, Metric::Cosine)
        .unwrap();
    let q = rng.signed_vec(dim);
    for k in [0, 65] {
        assert!(matches!(
            engine.knn(&gallery, &q, k).await,
            Err(GpuError::Input(_))
        ));
    }
    assert!(matches!(
        engine.knn(&gallery, &q[..dim - 1], 1).await,
        Err(GpuError::Input(_))
    ));
    assert!(matches!(
        engine.upload_gallery(GalleryData::F32(&values[..dim + 1]), dim, Metric::Cosine),
        Err(GpuError::Input(_))
    ));
    // A zero query has cosine similarity 0 to every row: ties, broken by the lower row.
    let zero = vec![0.0; dim];
    let hits = engine.knn(&gallery, &zero, 3).await.unwrap();
    let rows: Vec<usize> = hits[0].iter().map(|n| n.index).collect();
    assert_eq!(rows, [0, 1, 2]);
    assert!(hits[0].iter().all(|n| n.score == 0.0));

    let empty = engine
        .upload_gallery(GalleryData::F32(&[]), dim, Metric::Euclidean)
        .unwrap();
    assert!(empty.is_empty());
    assert_eq!(
        engine.knn(&empty, &q, 5).await.unwrap(),
        vec![Vec::<Neighbour>::new()]
    );
}

/// `frames` path frames on the GPU (step from the CPU, and step computed on the GPU) against
/// `PathStepper` plus `KnnIndex::search`.
pub async fn path_frames_match_cpu(engine: &GpuEngine, rows: usize, frames: usize) {
    let mut rng = Rng::new(5);
    let (m, k_blocks, n) = (3, 4, 8);
    let d = k_blocks * n;
    let ops = Operators::stable_init(m, k_blocks, n, || rng.uniform()).unwrap();
    let c = rng.signed_vec(m);
    let z0 = rng.signed_vec(d);
    let dt = 0.05f32;
    let values = rng.signed_vec(rows * d);
    let bits: Vec<u16> = values.iter().map(|&v| f16::from_f32(v).to_bits()).collect();
    let widened: Vec<f32> = bits.iter().map(|&b| f16::from_bits(b).to_f32()).collect();
    let gallery = engine
        .upload_gallery(GalleryData::F16(&bits), d, Metric::Cosine)
        .unwrap();
    let index = KnnIndex::new(widened, d, Metric::Cosine).unwrap();

    let scaled: Vec<f32> = c.iter().map(|x| x * dt).collect();
    let step = ops.transport(&scaled).unwrap();
    let generators = ops.generators(&scaled).unwrap();
    let mut uploaded = engine
        .upload_path(step.as_slice(), k_blocks, n, &z0)
        .unwrap();
    let mut computed = engine
        .path_from_generators(&generators, k_blocks, n, &z0)
        .await
        .unwrap();
    let mut cpu = PathStepper::new(&ops, &c, &z0, dt).unwrap();
    for frame in 0..frames {
        let want = cpu.step().unwrap().to_vec();
        let neighbours = index.search(&want, 5).unwrap();
        for (name, path) in [("uploaded", &mut uploaded), ("computed", &mut computed)] {
            let got = engine.path_step_knn(path, &gallery, 5).await.unwrap();
            assert_close(
                &format!("path ({name}) frame {frame} z"),
                &got.z,
                &want,
                1.0,
            );
            assert_same_neighbours(
                &format!("path ({name}) frame {frame} neighbours"),
                std::slice::from_ref(&got.neighbours),
                std::slice::from_ref(&neighbours),
            );
            assert_eq!(path.steps(), frame as u64 + 1);
        }
    }

    let other = engine
        .upload_gallery(GalleryData::F32(&values[..d - 1]), d - 1, Metric::Cosine)
        .unwrap();
    assert!(matches!(
        engine.path_step_knn(&mut uploaded, &other, 5).await,
        Err(GpuError::Mismatch { .. })
    ));
    engine.set_path_position(&mut uploaded, &z0).unwrap();
    assert_eq!(uploaded.steps(), 0);
    let again = engine
        .path_step_knn(&mut uploaded, &gallery, 1)
        .await
        .unwrap();
    let first = step.apply(&z0).unwrap();
    assert_close("path after reset", &again.z, &first, 1.0);
}

/// A step that overflows the position to infinity is refused as the CPU path refuses it (a
/// non-finite query), instead of ranking the gallery against infinity; the path stays on its last
/// finite position.
pub async fn path_overflow_is_an_error_not_garbage_neighbours(engine: &GpuEngine) {
    let (k_blocks, n) = (1, 2);
    let d = k_blocks * n;
    let gallery = engine
        .upload_gallery(GalleryData::F32(&[1.0, 0.0, 0.0, 1.0]), d, Metric::Cosine)
        .unwrap();
    // E = 1e30 · I: one step takes 1e10 to 1e40, past f32::MAX.
    let step = [1e30_f32, 0.0, 0.0, 1e30];
    let mut path = engine
        .upload_path(&step, k_blocks, n, &[1e10, 1e10])
        .unwrap();
    let err = engine
        .path_step_knn(&mut path, &gallery, 1)
        .await
        .unwrap_err();
    let GpuError::Input(mclr_shared::Error::NonFinite { field, .. }) = &err else {
        panic!("expected a non-finite position error, got {err:?}");
    };
    assert_eq!(field, "path position");
    assert!(err.to_string().contains("non-finite"), "{err}");
    assert_eq!(path.steps(), 0, "the failed step does not count");
}
