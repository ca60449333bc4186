//! `cargo xtask ci`: everything CI checks, in the order that fails fastest, ending with the test
//! runs and one closing count over all of them. `.ci/run` calls exactly this.

use anyhow::{Result, bail};

use crate::cmd::{self, TestTally, command};
use crate::setup::{self, WASM_TARGET};

/// Crates that are compiled for the browser and so are linted and built for wasm32 as well.
const WASM_CRATES: [&str; 2] = ["mclr-shared", "mclr-viewer"];

/// Runs the full check. No options yet; unknown ones are an error rather than silently ignored.
pub fn run(args: &[String]) -> Result<()> {
    if let Some(a) = args.first() {
        bail!("`cargo xtask ci` takes no options (got `{a}`)");
    }
    setup::rust_toolchain()?;
    setup::npm()?;
    cargo(&["fmt", "--all", "--", "--check"])
        .map_err(|e| e.context("formatting differs: run `cargo fmt --all`"))?;
    cargo(&[
        "clippy",
        "--locked",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;

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
    cargo(&wasm_clippy)?;
    // Both feature sets of the shared crate must build for the browser.
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

    let mut total = TestTally::default();
    let mut ok = true;
    for scope in ["--doc", "--all-targets"] {
        let (tally, success) = cmd::run_tests(&mut command(
            "cargo",
            &["test", "--locked", "--workspace", scope],
        ))?;
        total.passed += tally.passed;
        total.failed += tally.failed;
        total.ignored += tally.ignored;
        ok &= success;
    }
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
