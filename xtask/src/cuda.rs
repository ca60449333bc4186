//! The CUDA build without a GPU: `cargo xtask cuda-check`, run by `ci`.
//!
//! `cuda-check` gets NVIDIA's compiler from the Python package registry: the wheels below,
//! unpacked side by side, form a CUDA root (`nvidia/cu13/`) with a working `nvcc`. candle's
//! `candle-kernels` build script compiles every kernel with it, which is most of the cost (about
//! half an hour on 2 cores), so the wheels and the check's own target directory live in a cache
//! outside the checkout (`$XDG_CACHE_HOME/mclr/cuda`, else `~/.cache/mclr/cuda`): a clean clone
//! on the same machine reuses them and only the first run pays.
//!
//! The check is `cargo check` of the trainer with `cuda` and with `cudnn`, all targets. It does
//! not link: candle's CUDA layer links against the driver (`libcuda.so`) and the CUDA libraries
//! at build time, and a machine without a GPU has no driver to link against.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::cmd::{self, command};
use crate::workspace;

/// The compiler wheels, pinned so every machine compiles with the same toolkit.
const WHEELS: [&str; 5] = [
    "nvidia-cuda-nvcc==13.5.37",
    "nvidia-cuda-runtime==13.5.37",
    "nvidia-cuda-crt==13.5.37",
    "nvidia-nvvm==13.5.37",
    "nvidia-cuda-cccl==13.3.5.0.6",
];

/// The CUDA version cudarc is told to target. cudarc 0.19 knows versions up to 13.4 and rejects
/// the 13.5 that `nvcc --version` reports; the kernels use nothing newer than 13.0.
const CUDARC_CUDA_VERSION: &str = "13000";

/// The compute capability the kernels are compiled for: the A100's.
const COMPUTE_CAP: &str = "80";

/// The cache directory of the CUDA check.
pub fn cache_dir() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".cache"),
    };
    Ok(base.join("mclr/cuda"))
}

/// The CUDA root made from [`WHEELS`] under `cache`, downloading and unpacking them if needed.
pub fn toolkit(cache: &Path) -> Result<PathBuf> {
    let root = cache.join("toolkit");
    let cuda_root = root.join("nvidia/cu13");
    let marker = root.join(".complete");
    let wanted = WHEELS.join("\n");
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == wanted) {
        return Ok(cuda_root);
    }
    let wheels = cache.join("wheels");
    let manual = format!(
        "python3 -m pip download --no-deps -d {} {}",
        wheels.display(),
        WHEELS.join(" ")
    );
    let mut download = command(
        "python3",
        &["-m", "pip", "download", "--quiet", "--no-deps", "-d"],
    );
    download.arg(&wheels).args(WHEELS);
    cmd::run(&mut download).with_context(|| {
        format!("could not download NVIDIA's compiler wheels; try by hand: {manual}")
    })?;
    if root.exists() {
        std::fs::remove_dir_all(&root).with_context(|| format!("clearing {}", root.display()))?;
    }
    for entry in
        std::fs::read_dir(&wheels).with_context(|| format!("listing {}", wheels.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "whl") {
            let mut unzip = command("python3", &["-m", "zipfile", "-e"]);
            unzip.arg(&path).arg(&root);
            cmd::run(&mut unzip)?;
        }
    }
    // Zip archives do not keep the executable bit.
    for dir in [cuda_root.join("bin"), cuda_root.join("nvvm/bin")] {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?
        {
            let path = entry?.path();
            if path.is_file() {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                    .with_context(|| format!("making {} executable", path.display()))?;
            }
        }
    }
    let nvcc = cuda_root.join("bin/nvcc");
    if cmd::output(&mut command(&nvcc.to_string_lossy(), &["--version"])).is_none() {
        bail!("{} does not run", nvcc.display());
    }
    std::fs::write(&marker, wanted).with_context(|| format!("writing {}", marker.display()))?;
    Ok(cuda_root)
}

/// A cargo command with the toolkit on its path and the CUDA variables set, compiling the
/// kernels for `compute_cap` (e.g. `80` for an A100).
pub fn cuda_cargo(
    cuda_root: &Path,
    compute_cap: &str,
    target_dir: &Path,
    args: &[&str],
) -> std::process::Command {
    let mut c = command("cargo", args);
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![cuda_root.join("bin")];
    paths.extend(std::env::split_paths(&path));
    if let Ok(joined) = std::env::join_paths(paths) {
        c.env("PATH", joined);
    }
    c.env("CUDA_ROOT", cuda_root)
        .env("CUDA_PATH", cuda_root)
        .env("CUDA_TOOLKIT_ROOT_DIR", cuda_root)
        .env("CUDA_COMPUTE_CAP", compute_cap)
        .env("CUDARC_CUDA_VERSION", CUDARC_CUDA_VERSION)
        .env("CARGO_TARGET_DIR", target_dir);
    c
}

/// `cargo xtask cuda-check`: compiles the trainer with `cuda` and `cudnn` (no GPU needed).
pub fn check() -> Result<()> {
    let started = std::time::Instant::now();
    let cache = cache_dir()?;
    std::fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    let cuda_root = toolkit(&cache)?;
    let root = workspace::root()?;
    let target = cache.join("target");
    for feature in ["cuda", "cudnn"] {
        let mut c = cuda_cargo(
            &cuda_root,
            COMPUTE_CAP,
            &target,
            &[
                "check",
                "--locked",
                "-p",
                "mclr-trainer",
                "--all-targets",
                "--features",
                feature,
            ],
        );
        c.current_dir(&root);
        cmd::run(&mut c).with_context(|| {
            format!(
                "the GPU build is broken: `cargo check -p mclr-trainer --features {feature}` \
                 failed (CUDA root {})",
                cuda_root.display()
            )
        })?;
    }
    println!(
        "cuda-check: the trainer compiles with `cuda` and `cudnn` (check only, no link) in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
