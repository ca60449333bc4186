//! The WGSL shaders against the crate's CPU reference in a browser (WebGPU), at smaller sizes than
//! the native tests. Built for wasm32 only and run by `wasm-bindgen-test` through a WebDriver;
//! headless Chromium exposes WebGPU only with `--enable-unsafe-webgpu`. Natively this file
//! compiles to an empty test binary.
#![cfg(target_arch = "wasm32")]
#![allow(missing_docs, clippy::unwrap_used, clippy::panic)]

mod gpu_cases;

use mclr_shared::gpu::{GpuEngine, GpuError};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// The engine, or a failure that says how to get WebGPU.
async fn engine() -> GpuEngine {
    match GpuEngine::new().await {
        Ok(engine) => engine,
        Err(e @ GpuError::NoAdapter { .. }) => panic!(
            "the browser GPU tests need WebGPU ({e}); run Chromium with --enable-unsafe-webgpu"
        ),
        Err(e) => panic!("the GPU engine failed to start: {e}"),
    }
}

#[wasm_bindgen_test]
async fn engine_reports_its_adapter() {
    let engine = engine().await;
    assert!(!engine.adapter().backend.is_empty());
}

#[wasm_bindgen_test]
async fn expm_matches_cpu_reference_for_small_and_large_norms() {
    let sizes = [(2, 3, 2), (8, 2, 2), (16, 1, 2), (64, 1, 1)];
    gpu_cases::expm_matches_cpu(&engine().await, &sizes).await;
}

#[wasm_bindgen_test]
async fn expm_rejects_non_finite_and_ragged_input_like_the_cpu() {
    gpu_cases::expm_rejects_bad_input(&engine().await).await;
}

#[wasm_bindgen_test]
async fn block_diagonal_transport_matches_cpu_reference() {
    gpu_cases::apply_matches_cpu(&engine().await, 3, 2, 8).await;
}

#[wasm_bindgen_test]
async fn knn_matches_cpu_reference_for_both_dtypes_and_metrics() {
    gpu_cases::knn_matches_cpu(&engine().await, 300, 37, 2, &[1, 5, 64]).await;
}

#[wasm_bindgen_test]
async fn knn_rejects_bad_k_and_shapes_and_breaks_ties_by_row() {
    gpu_cases::knn_edge_cases(&engine().await).await;
}

#[wasm_bindgen_test]
async fn path_frames_match_cpu_stepper_and_search() {
    gpu_cases::path_frames_match_cpu(&engine().await, 300, 3).await;
}
