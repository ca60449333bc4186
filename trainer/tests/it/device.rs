//! The device the parity tests run on, chosen by `MCLR_TEST_DEVICE`: `cpu` (the default) or
//! `cuda` / `cuda:N` in a build with the `cuda` feature, as `cargo xtask gpu-check` runs them.
//! The oracles stay on the host (fixtures recorded from the authors' PyTorch code on the CPU,
//! f64 loops, the CPU reference kernels), so on a GPU every such test compares the GPU's result
//! with the CPU's.
// Test support: a panic here is a test failure with a message, which is what we want.
#![allow(clippy::panic)]

use std::sync::OnceLock;

use candle_core::Device;

/// The environment variable that selects the device.
pub const DEVICE_VAR: &str = "MCLR_TEST_DEVICE";

/// The test device (created once per test binary).
pub fn device() -> Device {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    DEVICE
        .get_or_init(|| match std::env::var(DEVICE_VAR) {
            Err(_) => Device::Cpu,
            Ok(spec) if spec.is_empty() || spec == "cpu" => Device::Cpu,
            Ok(spec) => mclr_trainer::train::parse_device(&spec).unwrap_or_else(|e| {
                panic!("{DEVICE_VAR}={spec}: {e} (CUDA needs `--features cuda` and a GPU)")
            }),
        })
        .clone()
}
