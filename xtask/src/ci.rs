//! `cargo xtask ci`: everything CI checks, in the order that fails fastest, ending with the test
//! run so its summary is the last thing printed. `.ci/run` calls exactly this.

use anyhow::{Result, bail};

use crate::cmd::{self, command};
use crate::setup::{self, WASM_TARGET};

/// Crates that are compiled for the browser and so are linted and built for wasm32 as well.
const WASM_CRATES: [&str; 2] = ["mclr-shared", "mclr-viewer"];

/// Runs the full check. No options yet; unknown ones are an error rather than silently ignored.
pub fn run(args: &[String]) -> Result<()> {
    if let Some(a) = args.first() {
        bail!("`cargo xtask ci` takes no options (got `{a}`)");
    }
    setup::rust_toolchain()?;
    cmd::run(&mut command("cargo", &["fmt", "--all", "--", "--check"]))
        .map_err(|e| e.context("formatting differs: run `cargo fmt --all`"))?;
    cmd::run(&mut command(
        "cargo",
        &[
            "clippy",
            "--locked",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    ))?;
    let mut wasm_clippy = vec![
        "clippy",
        "--locked",
        "--target",
        WASM_TARGET,
        "--no-default-features",
    ];
    for krate in WASM_CRATES {
        wasm_clippy.extend(["-p", krate]);
    }
    wasm_clippy.extend(["--", "-D", "warnings"]);
    cmd::run(&mut command("cargo", &wasm_clippy))?;
    // Both feature sets of the shared crate must build for the browser.
    cmd::run(&mut command(
        "cargo",
        &[
            "build",
            "--locked",
            "-p",
            "mclr-shared",
            "--target",
            WASM_TARGET,
        ],
    ))?;
    cmd::run(&mut command(
        "cargo",
        &[
            "build",
            "--locked",
            "-p",
            "mclr-shared",
            "--target",
            WASM_TARGET,
            "--no-default-features",
        ],
    ))?;
    // Doc tests first, so the all-targets run's summary is the last thing CI prints.
    cmd::run(&mut command(
        "cargo",
        &["test", "--locked", "--workspace", "--doc"],
    ))?;
    cmd::run(&mut command(
        "cargo",
        &["test", "--locked", "--workspace", "--all-targets"],
    ))
}

/// `cargo xtask bench [criterion args]`: the criterion benchmarks of the workspace.
pub fn bench(args: &[String]) -> Result<()> {
    let mut c = command("cargo", &["bench", "--locked", "-p", "mclr-shared"]);
    if !args.is_empty() {
        c.arg("--").args(args);
    }
    cmd::run(&mut c)
}
