//! How the project runs headless Chromium: the binary, the driver, and the exact command-line
//! flags, shared by the browser end-to-end test and the `webdriver.json` that `cargo xtask ci`
//! writes for `wasm-bindgen-test-runner`.
//!
//! The flags keep a CI machine's browser quiet and offline-safe (no sync, no component updates,
//! no QUIC probes, a fresh profile each run). WebGPU is only exposed by headless Chromium with
//! `--enable-unsafe-webgpu`; it then runs on the SwiftShader adapter, which is enough for compute.

use std::path::Path;

use serde_json::{Value, json};

use crate::error::{Error, Result};

/// The Chromium binary Debian's `chromium` package installs.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The driver Debian's `chromium-driver` package installs (same version as the browser).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The command that installs everything the browser tests and the native GPU tests need.
pub const APT_INSTALL: &str =
    "sudo apt-get install -y chromium chromium-driver mesa-vulkan-drivers libvulkan1";

/// The flags every headless run gets, before the profile folder and the WebGPU switch.
pub const BASE_ARGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,900",
];

/// The switch that makes headless Chromium expose `navigator.gpu`.
pub const WEBGPU_ARG: &str = "--enable-unsafe-webgpu";

/// Fails with the apt command when Chromium or chromedriver is not installed.
pub fn require_installed() -> Result<()> {
    for program in [CHROMIUM, CHROMEDRIVER] {
        if !Path::new(program).exists() {
            return Err(Error::MissingProgram {
                program: program.into(),
                install: APT_INSTALL,
            });
        }
    }
    Ok(())
}

/// Whether a browser run should expose WebGPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gpu {
    /// Pass [`WEBGPU_ARG`]: `navigator.gpu` exists (SwiftShader).
    WebGpu,
    /// Plain flags: the page has no WebGPU adapter.
    Off,
}

/// The full argument list for one run with its own profile folder `user_data_dir`.
pub fn args(user_data_dir: &Path, gpu: Gpu) -> Vec<String> {
    let mut args: Vec<String> = BASE_ARGS.iter().map(|a| (*a).to_owned()).collect();
    args.push(format!("--user-data-dir={}", user_data_dir.display()));
    if gpu == Gpu::WebGpu {
        args.push(WEBGPU_ARG.to_owned());
    }
    args
}

/// The W3C capabilities for one Chromium session: the binary, [`args`], and browser console
/// logging at every level (read back through chromedriver's log endpoint).
pub fn capabilities(user_data_dir: &Path, gpu: Gpu) -> Value {
    json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": args(user_data_dir, gpu),
        },
        "goog:loggingPrefs": { "browser": "ALL" },
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{Gpu, args, capabilities};

    #[test]
    fn webgpu_runs_add_exactly_the_unsafe_webgpu_switch() {
        let dir = Path::new("/tmp/profile");
        let plain = args(dir, Gpu::Off);
        let gpu = args(dir, Gpu::WebGpu);
        assert!(plain.contains(&"--user-data-dir=/tmp/profile".to_owned()));
        assert!(plain.contains(&"--headless".to_owned()));
        assert_eq!(gpu.len(), plain.len() + 1);
        assert_eq!(
            gpu.last().map(String::as_str),
            Some("--enable-unsafe-webgpu")
        );
        let caps = capabilities(dir, Gpu::WebGpu);
        assert_eq!(
            caps["goog:chromeOptions"]["args"].as_array().map(Vec::len),
            Some(gpu.len())
        );
        assert_eq!(caps["goog:loggingPrefs"]["browser"], "ALL");
    }
}
