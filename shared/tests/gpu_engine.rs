//! The WGSL shaders against the crate's CPU reference, natively. Without a GPU this runs on Mesa's
//! lavapipe (a Vulkan driver on the CPU), so the same shaders are checked on every machine.
#![cfg(not(target_arch = "wasm32"))]
#![allow(missing_docs, clippy::unwrap_used, clippy::panic)]

mod gpu_cases;

use mclr_shared::geometry::{KnnIndex, Metric};
use mclr_shared::gpu::{GalleryData, GpuEngine, GpuError};
use pollster::block_on;

/// The engine, or a failure that says what to install.
fn engine() -> GpuEngine {
    match block_on(GpuEngine::new()) {
        Ok(engine) => engine,
        Err(e @ GpuError::NoAdapter { .. }) => panic!(
            "no Vulkan adapter for the GPU engine tests: \
             install Mesa's Vulkan drivers: apt-get install mesa-vulkan-drivers ({e})"
        ),
        Err(e) => panic!("the GPU engine failed to start: {e}"),
    }
}

#[test]
fn engine_reports_its_adapter() {
    let engine = engine();
    let adapter = engine.adapter();
    assert!(!adapter.name.is_empty());
    assert!(!adapter.backend.is_empty() && !adapter.device_type.is_empty());
}

#[test]
fn expm_matches_cpu_reference_for_small_and_large_norms() {
    // (n, S, K): S·K matrices per size; n ≤ 16 runs in workgroup memory, larger n in storage.
    let sizes = [(2, 5, 7), (8, 3, 4), (16, 2, 3), (24, 1, 3), (64, 2, 2)];
    block_on(gpu_cases::expm_matches_cpu(&engine(), &sizes));
}

#[test]
fn expm_splits_a_batch_larger_than_its_scratch_budget() {
    // 700 blocks of 64 × 64 with six scratch matrices each need 65.6 MiB, more than the 64 MiB
    // scratch budget: the batch runs as two dispatches (682 + 18 blocks).
    block_on(gpu_cases::expm_matches_cpu(&engine(), &[(64, 1, 700)]));
}

#[test]
fn expm_rejects_non_finite_and_ragged_input_like_the_cpu() {
    block_on(gpu_cases::expm_rejects_bad_input(&engine()));
}

#[test]
fn block_diagonal_transport_matches_cpu_reference() {
    block_on(gpu_cases::apply_matches_cpu(&engine(), 6, 4, 16));
}

#[test]
fn block_diagonal_transport_spans_a_two_row_dispatch_grid() {
    // 8500 rows × 512 = 4.35 M outputs need 68 000 workgroups of 64: more than one grid row
    // holds (65 535), so the shader's linearised id must cover the second row, as the demo's
    // 10 000 × 512 gallery needs.
    block_on(gpu_cases::apply_matches_cpu(&engine(), 8500, 128, 4));
}

#[test]
fn knn_matches_cpu_reference_for_both_dtypes_and_metrics() {
    // 1000 rows: neither a multiple of the 64-wide workgroup nor of the 256-row tile; d = 37
    // exercises the tail of the eight-lane sums.
    block_on(gpu_cases::knn_matches_cpu(
        &engine(),
        1000,
        37,
        5,
        &[1, 5, 64],
    ));
    block_on(gpu_cases::knn_matches_cpu(&engine(), 300, 64, 3, &[5]));
}

#[test]
fn knn_spans_a_two_row_grid_and_splits_queries_past_its_candidate_budget() {
    // k = 5: 1700 queries × 40 tiles of 256 rows = 68 000 tile workgroups, a two-row grid.
    // k = 64: 40 × 64 candidates of 8 bytes per query, so the 32 MiB budget holds 1638 queries
    // and the 1700 run in two passes. (Dtypes and metrics are covered above.)
    let (rows, dim, queries) = (10_000, 8, 1700);
    let mut rng = gpu_cases::Rng::new(5);
    let values = rng.signed_vec(rows * dim);
    let q = rng.signed_vec(queries * dim);
    let engine = engine();
    let gallery = engine
        .upload_gallery(GalleryData::F32(&values), dim, Metric::Cosine)
        .unwrap();
    let index = KnnIndex::new(values, dim, Metric::Cosine).unwrap();
    for k in [5, 64] {
        let gpu = block_on(engine.knn(&gallery, &q, k)).unwrap();
        let cpu = index.search_batch(&q, k).unwrap();
        gpu_cases::assert_same_neighbours(&format!("knn k={k}"), &gpu, &cpu);
    }
}

#[test]
fn knn_returns_all_rows_when_k_exceeds_the_gallery() {
    // 51 × 15 f16 values: an odd count, so the last packed word holds one value and padding.
    block_on(gpu_cases::knn_matches_cpu(&engine(), 51, 15, 2, &[64]));
}

#[test]
fn knn_rejects_bad_k_and_shapes_and_breaks_ties_by_row() {
    block_on(gpu_cases::knn_edge_cases(&engine()));
}

#[test]
fn path_frames_match_cpu_stepper_and_search() {
    block_on(gpu_cases::path_frames_match_cpu(&engine(), 700, 4));
}

#[test]
fn path_step_that_overflows_is_refused_like_the_cpu_path() {
    block_on(gpu_cases::path_overflow_is_an_error_not_garbage_neighbours(
        &engine(),
    ));
}
