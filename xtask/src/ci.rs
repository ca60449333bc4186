//! `cargo xtask ci`: everything CI checks, in the order that fails fastest, ending with the test
//! runs and one closing count over all of them. `.ci/run` calls exactly this. Besides the tests it
//! compiles the CUDA build (`cargo xtask cuda-check`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use mclr_tests::chromium;

use crate::cmd::{self, TestTally, command};
use crate::cuda;
use crate::demo;
use crate::setup::{self, WASM_TARGET};
use crate::web;
use crate::workspace;

/// Crates that are compiled for the browser and so are linted and built for wasm32 as well.
const WASM_CRATES: [&str; 2] = ["mclr-shared", "mclr-viewer"];

/// The shared crate's GPU engine, switched on for every native and wasm32 check so that its
/// code is linted and its native tests (on Mesa's lavapipe) run with the rest, in one build.
const GPU_FEATURE: &str = "mclr-shared/gpu";

/// Runs the full check.
pub fn run() -> Result<()> {
    setup::rust_toolchain()?;
    setup::npm()?;
    setup::system_packages()?;
    let target = workspace::target_dir()?;
    setup::report_free_disk(&target);
    // Installed first, so that a failure to build it shows in minutes, not after the test runs.
    let runner = bindgen_test_runner()?;
    cargo(&["fmt", "--all", "--", "--check"])
        .map_err(|e| e.context("formatting differs: run `cargo fmt --all`"))?;
    cargo(&[
        "clippy",
        "--locked",
        "--workspace",
        "--all-targets",
        "--features",
        GPU_FEATURE,
        "--",
        "-D",
        "warnings",
    ])?;

    // Broken intra-doc links and stray HTML in doc comments are errors, as clippy's warnings are.
    cmd::run(
        command(
            "cargo",
            &[
                "doc",
                "--locked",
                "--workspace",
                "--no-deps",
                "--features",
                GPU_FEATURE,
            ],
        )
        .env("RUSTDOCFLAGS", "-D warnings"),
    )
    .map_err(|e| e.context("a doc comment does not render: see rustdoc's message above"))?;

    let mut wasm_clippy = vec![
        "clippy",
        "--locked",
        "--target",
        WASM_TARGET,
        "--no-default-features",
        "--features",
        GPU_FEATURE,
    ];
    for krate in WASM_CRATES {
        wasm_clippy.extend(["-p", krate]);
    }
    wasm_clippy.extend(["--", "-D", "warnings"]);
    cargo(&wasm_clippy)?;
    // Both feature sets of the shared crate must build for the browser without the GPU engine too.
    cargo(&[
        "build",
        "--locked",
        "-p",
        "mclr-shared",
        "--target",
        WASM_TARGET,
    ])?;
    cargo(&[
        "build",
        "--locked",
        "-p",
        "mclr-shared",
        "--target",
        WASM_TARGET,
        "--no-default-features",
    ])?;
    // The browser end-to-end test loads this build.
    web::build(false)?;
    // The GPU build, compiled without a GPU; cached outside the checkout (see `cuda`).
    cuda::check()?;
    // Hostile bundles and share links: a minute of coverage-guided fuzzing (RELIABILITY.md).
    crate::fuzz::run(&crate::fuzz::Options::smoke())
        .map_err(|e| e.context("the fuzz smoke failed; rerun with `cargo xtask fuzz --smoke`"))?;

    // The one-command demo, smoke-sized, end to end; the browser test then opens its bundle. Its
    // `mclr` is the binary the test build makes anyway (the trainer's CLI tests run it), so the
    // demo compiles nothing of its own.
    cargo(&[
        "test",
        "--locked",
        "--workspace",
        "--all-targets",
        "--features",
        GPU_FEATURE,
        "--no-run",
    ])?;
    demo::pipeline(&demo::Options {
        smoke: true,
        serve: false,
        // CI may not reach the dataset's web server; npm it can (the real-data test uses it too).
        offline: true,
        mclr: Some(target.join("debug/mclr")),
        site: demo::SiteBuild::AlreadyBuilt,
        ..demo::Options::default()
    })?;

    // Crash-safe training: SIGKILLs during training and checkpoint writes, then a disk-full
    // fault, each followed by a resume that must end bit-identical (RELIABILITY.md).
    let short_kill_test = crate::kill_test::Options {
        kills: 4,
        epochs: 6,
        seed: Some(1),
        ..crate::kill_test::Options::default()
    };
    crate::kill_test::run(&short_kill_test)
        .map_err(|e| e.context("the kill test failed; rerun with `cargo xtask kill-test`"))?;

    setup::report_free_disk(&target);
    let mut total = TestTally::default();
    let mut ok = true;
    for scope in ["--doc", "--all-targets"] {
        // --no-fail-fast: one failing test binary must not hide the results of the others, so the
        // closing count is always over every test.
        let (tally, success) = cmd::run_tests(&mut command(
            "cargo",
            &[
                "test",
                "--locked",
                "--no-fail-fast",
                "--workspace",
                scope,
                "--features",
                GPU_FEATURE,
            ],
        ))?;
        total.add(tally);
        ok &= success;
    }
    let (tally, success) = gpu_browser_tests(&runner)?;
    total.add(tally);
    ok &= success;
    // One closing line over every test binary, so the last thing CI prints is the whole count.
    println!(
        "\ntests: {} passed, {} failed, {} skipped",
        total.passed, total.failed, total.ignored
    );
    if !ok || total.failed > 0 {
        bail!("tests failed");
    }
    if total.passed == 0 {
        bail!("no test ran: the test command found nothing to run");
    }
    Ok(())
}

/// `cargo xtask gpu-browser`: only the in-browser GPU tests of [`run`], for working on shaders.
pub fn gpu_browser() -> Result<()> {
    setup::system_packages()?;
    let (tally, ok) = gpu_browser_tests(&bindgen_test_runner()?)?;
    println!(
        "\ntests: {} passed, {} failed, {} skipped",
        tally.passed, tally.failed, tally.ignored
    );
    if !ok || tally.failed > 0 || tally.passed == 0 {
        bail!("the in-browser GPU tests failed or did not run");
    }
    Ok(())
}

/// `wasm-bindgen-test-runner` of the release Cargo.lock pins, installed if missing.
fn bindgen_test_runner() -> Result<PathBuf> {
    let root = workspace::root()?;
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).context("reading Cargo.lock")?;
    let version = web::check_bindgen_version(&lock)?;
    setup::wasm_bindgen_test_runner(&version)
}

/// The WGSL engine's tests in headless Chromium over WebGPU (`shared/tests/gpu_browser.rs`),
/// through `runner` (see [`bindgen_test_runner`]) and chromedriver.
fn gpu_browser_tests(runner: &Path) -> Result<(TestTally, bool)> {
    // The runner reads the browser's capabilities from this file: the project's Chromium flags
    // with WebGPU on, and a fresh profile folder.
    let e2e = workspace::target_dir()?.join("e2e");
    let profile = e2e.join("gpu-browser-profile");
    if profile.exists() {
        std::fs::remove_dir_all(&profile)
            .with_context(|| format!("clearing {}", profile.display()))?;
    }
    std::fs::create_dir_all(&profile).with_context(|| format!("creating {}", profile.display()))?;
    let webdriver_json = e2e.join("webdriver.json");
    let caps = chromium::capabilities(&profile, chromium::Gpu::WebGpu);
    std::fs::write(&webdriver_json, caps.to_string())
        .with_context(|| format!("writing {}", webdriver_json.display()))?;

    let mut c = command(
        "cargo",
        &[
            "test",
            "--locked",
            "-p",
            "mclr-shared",
            "--no-default-features",
            "--features",
            "gpu",
            "--target",
            WASM_TARGET,
            "--test",
            "gpu_browser",
        ],
    );
    c.env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER", runner)
        .env("CHROMEDRIVER", chromium::CHROMEDRIVER)
        .env("WASM_BINDGEN_TEST_WEBDRIVER_JSON", &webdriver_json)
        // SwiftShader runs WebGPU compute on the CPU: allow it more than the default 20 s.
        .env("WASM_BINDGEN_TEST_TIMEOUT", "180");
    cmd::run_tests(&mut c)
}

/// `cargo xtask bench [criterion args]`: the criterion benchmarks of the workspace.
pub fn bench(args: &[String]) -> Result<()> {
    let mut c = command("cargo", &["bench", "--locked", "-p", "mclr-shared"]);
    if !args.is_empty() {
        c.arg("--").args(args);
    }
    cmd::run(&mut c)
}

fn cargo(args: &[&str]) -> Result<()> {
    cmd::run(&mut command("cargo", args))
}
