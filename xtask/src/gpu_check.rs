//! `cargo xtask gpu-check`: the acceptance check for a machine with an NVIDIA GPU.
//!
//! In a few minutes it:
//! 1. builds the release trainer with `cudnn` (which implies `cuda`; `--no-cudnn` for `cuda`
//!    alone) for the GPU's own compute capability;
//! 2. runs the parity tests on the GPU (`MCLR_TEST_DEVICE=cuda`): expm forward and backward,
//!    transport, every loss and sampler, one whole training step's loss and gradients, each
//!    compared with the CPU's result (fixtures recorded on the CPU, f64 loops, the CPU reference
//!    kernels) within the tolerance its test states;
//! 3. trains the `demo` config for 100 steps on the GPU and on the CPU and checks that the GPU's
//!    loss curve follows the CPU's ([`CURVE_TOLERANCE`]);
//! 4. measures the training throughput of `cifar10-manifoldclr` and `cifar10-simclr` (full
//!    ResNet-18, batch 512) over a fixed number of steps, with the peak GPU memory, and appends
//!    the figures with the GPU's name to BENCHMARKS.md.
//!
//! The images are real CIFAR-10 when `data/cifar10` (or `--data DIR`) holds it, else synthetic
//! images written in CIFAR-10's binary format (a GPU machine often has no network).
//!
//! Needs: `nvidia-smi` and a driver; a CUDA toolkit whose `nvcc` is on `PATH` (else the compiler
//! wheels of `cuda-check`); and, to link, the CUDA libraries candle links against (cuBLAS,
//! cuBLASLt, cuRAND, NVRTC, and cuDNN for `cudnn`) where the linker finds them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cmd::{self, command};
use crate::{cuda, workspace};

/// How far the GPU's total loss may stray from the CPU's at a logged step of the 100-step run:
/// `|gpu − cpu| ≤ CURVE_TOLERANCE · |cpu|`. The two runs differ only in rounding, which training
/// amplifies slowly; a wrong kernel shows up as a different curve from the first steps.
pub const CURVE_TOLERANCE: f64 = 0.05;

/// The configs whose throughput is measured, at batch 512.
const THROUGHPUT_CONFIGS: [&str; 2] = ["cifar10-manifoldclr", "cifar10-simclr"];

/// Steps per epoch of the throughput runs (5,120 images at batch 512) and epochs run.
const THROUGHPUT_IMAGES: usize = 5120;
const THROUGHPUT_EPOCHS: u32 = 3;

/// The parity tests, as test-name filters of the trainer's `it` binary.
const PARITY_FILTERS: [&str; 6] = [
    "expm::",
    "transport::",
    "losses::",
    "sampling::",
    "kernels::a_training_step",
    "readback::",
];

/// What `nvidia-smi` says about GPU 0.
#[derive(Debug, Clone)]
struct Gpu {
    name: String,
    /// e.g. `80` for 8.0.
    compute_cap: String,
}

/// What `cargo xtask gpu-check` was asked to do.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// CIFAR-10 to train on [default: data/cifar10 if it holds it, else synthetic images].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Build with `cuda` alone, without cuDNN.
    #[arg(long)]
    pub no_cudnn: bool,
}

/// `cargo xtask gpu-check [--data DIR] [--no-cudnn]`.
pub fn run(opts: &Options) -> Result<()> {
    let data = opts.data.clone();
    let feature = if opts.no_cudnn { "cuda" } else { "cudnn" };
    let started = Instant::now();
    let gpu = gpu()?;
    println!(
        "gpu-check on {} (compute capability {})",
        gpu.name, gpu.compute_cap
    );
    let root = workspace::root()?;
    let cache = cuda::cache_dir()?;
    let work = workspace::target_dir()?.join("gpu-check");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let cargo = |args: &[&str]| -> Result<std::process::Command> {
        let mut c = match system_cuda_root() {
            Some(cuda_root) => {
                let mut c = cuda::cuda_cargo(
                    &cuda_root,
                    &gpu.compute_cap,
                    &cache.join("gpu-target"),
                    args,
                );
                // The installed toolkit's own version is one cudarc knows.
                c.env_remove("CUDARC_CUDA_VERSION");
                c
            }
            None => cuda::cuda_cargo(
                &cuda::toolkit(&cache)?,
                &gpu.compute_cap,
                &cache.join("gpu-target"),
                args,
            ),
        };
        c.current_dir(&root);
        Ok(c)
    };

    // 1. Build.
    let build = [
        "--release",
        "--locked",
        "-p",
        "mclr-trainer",
        "--features",
        feature,
    ];
    cmd::run(&mut cargo(
        &[&["build", "--bin", "mclr"], &build[..]].concat(),
    )?)
    .with_context(|| {
        format!(
            "building the trainer with `{feature}` failed: it links against the CUDA libraries \
             (cuBLAS, cuBLASLt, cuRAND, NVRTC{}), which must be where the linker finds them",
            if feature == "cudnn" {
                ", cuDNN; or pass --no-cudnn"
            } else {
                ""
            }
        )
    })?;
    let mclr = cache.join("gpu-target/release/mclr");

    // 2. Parity tests on the GPU.
    let mut tests = cargo(
        &[
            &["test", "--test", "it"],
            &build[..],
            &["--"],
            &PARITY_FILTERS[..],
        ]
        .concat(),
    )?;
    tests.env("MCLR_TEST_DEVICE", "cuda");
    cmd::run(&mut tests).context("the GPU's results differ from the CPU's (parity tests above)")?;

    // 3. The demo config's loss curve, GPU against CPU.
    let (data, data_kind) = data_dir(data, &root, &work)?;
    let curve = |device: &str| -> Result<Vec<(u64, f64, f64)>> {
        let dir = work.join(format!("curve-{device}"));
        train(
            &mclr,
            &dir,
            device,
            "demo",
            &data,
            &["data.subset=3200", "optim.epochs=2", "run.log_every=5"],
        )?;
        read_metrics(&dir.join("metrics.jsonl"))
    };
    let (gpu_curve, cpu_curve) = (curve("cuda")?, curve("cpu")?);
    compare_curves(&gpu_curve, &cpu_curve)?;

    // 4. Throughput and memory.
    let mut rows = Vec::new();
    for config in THROUGHPUT_CONFIGS {
        let dir = work.join(format!("throughput-{config}"));
        let baseline = gpu_memory_used_mib().unwrap_or(0);
        let peak = Arc::new(Mutex::new(baseline));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, stop) = (Arc::clone(&peak), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let (Some(used), Ok(mut p)) = (gpu_memory_used_mib(), peak.lock()) {
                        *p = (*p).max(used);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        let subset = format!("data.subset={THROUGHPUT_IMAGES}");
        let epochs = format!("optim.epochs={THROUGHPUT_EPOCHS}");
        let trained = train(
            &mclr,
            &dir,
            "cuda",
            config,
            &data,
            &[&subset, &epochs, "optim.batch_size=512", "run.log_every=2"],
        );
        stop.store(true, Ordering::Relaxed);
        sampler.join().ok();
        trained?;
        let records = read_metrics(&dir.join("metrics.jsonl"))?;
        // The first logged steps include CUDA's kernel loading and the allocator's warm-up.
        let mut rates: Vec<f64> = records.iter().skip(2).map(|r| r.2).collect();
        rates.sort_by(f64::total_cmp);
        let Some(&median) = rates.get(rates.len() / 2) else {
            bail!("{config}: too few logged steps in {}", dir.display());
        };
        let peak_mib = peak.lock().map_or(0, |p| *p).saturating_sub(baseline);
        println!(
            "{config}: {median:.0} pairs/s ({:.0} images/s), peak GPU memory {peak_mib} MiB",
            2.0 * median
        );
        rows.push(format!(
            "| `{config}` | {} | 512 pairs | {} steps | **{median:.0} pairs/s** ({:.0} images/s) | {peak_mib} MiB |",
            gpu.name,
            records.last().map_or(0, |r| r.0 + 1),
            2.0 * median
        ));
    }
    append_benchmarks(&root, &gpu, feature, data_kind, &rows)?;
    println!(
        "gpu-check passed on {} in {:.0} s: parity tests, the demo curve within {:.0} % of the CPU's, \
         throughput appended to BENCHMARKS.md",
        gpu.name,
        started.elapsed().as_secs_f64(),
        100.0 * CURVE_TOLERANCE
    );
    Ok(())
}

/// GPU 0's name and compute capability, or an error saying that this needs a GPU.
fn gpu() -> Result<Gpu> {
    let out = cmd::output(&mut command(
        "nvidia-smi",
        &[
            "--query-gpu=name,compute_cap",
            "--format=csv,noheader",
            "-i",
            "0",
        ],
    ))
    .context(
        "no NVIDIA GPU here (`nvidia-smi` failed): gpu-check needs one; without a GPU, \
         `cargo xtask cuda-check` compiles the GPU build",
    )?;
    let (name, cap) = out
        .trim()
        .rsplit_once(',')
        .with_context(|| format!("unexpected nvidia-smi output `{out}`"))?;
    Ok(Gpu {
        name: name.trim().to_owned(),
        compute_cap: cap.trim().replace('.', ""),
    })
}

/// GPU 0's used memory in MiB.
fn gpu_memory_used_mib() -> Option<u64> {
    cmd::output(&mut command(
        "nvidia-smi",
        &[
            "--query-gpu=memory.used",
            "--format=csv,noheader,nounits",
            "-i",
            "0",
        ],
    ))?
    .trim()
    .parse()
    .ok()
}

/// The root of an installed CUDA toolkit whose `nvcc` is on `PATH`.
fn system_cuda_root() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("nvcc"))
        .find(|nvcc| nvcc.is_file())
        .and_then(|nvcc| Some(nvcc.parent()?.parent()?.to_path_buf()))
}

/// Trains `config` afresh in `dir` on `device`; a failure names the run.
fn train(
    mclr: &Path,
    dir: &Path,
    device: &str,
    config: &str,
    data: &Path,
    sets: &[&str],
) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    let data_set = format!("data.dir={}", data.display());
    let mut c = command(
        &mclr.to_string_lossy(),
        &["train", "--config", config, "--device", device],
    );
    c.arg("--run-dir").arg(dir).args(["--set", &data_set]);
    for set in sets {
        c.args(["--set", set]);
    }
    cmd::run(&mut c).with_context(|| format!("training {config} on {device} failed"))
}

/// `(step, total loss, pairs/s)` of every record of a run's `metrics.jsonl`.
fn read_metrics(path: &Path) -> Result<Vec<(u64, f64, f64)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("{}: not JSON: {line}", path.display()))?;
            let step = v["step"].as_u64();
            let total = v["loss"]["total"].as_f64();
            let rate = v["pairs_per_sec"].as_f64();
            match (step, total, rate) {
                (Some(s), Some(t), Some(r)) => Ok((s, t, r)),
                _ => bail!(
                    "{}: a record without step, loss.total or pairs_per_sec: {line}",
                    path.display()
                ),
            }
        })
        .collect()
}

/// Fails unless both curves log the same steps and every GPU loss is within
/// [`CURVE_TOLERANCE`] of the CPU's; prints both.
pub fn compare_curves(gpu: &[(u64, f64, f64)], cpu: &[(u64, f64, f64)]) -> Result<()> {
    if gpu.len() != cpu.len() || gpu.is_empty() {
        bail!(
            "the GPU run logged {} steps, the CPU run {}",
            gpu.len(),
            cpu.len()
        );
    }
    println!("step   cpu loss   gpu loss   rel. diff");
    let mut worst = (0.0f64, 0u64);
    for (g, c) in gpu.iter().zip(cpu) {
        if g.0 != c.0 {
            bail!(
                "the runs logged different steps ({} on the GPU, {} on the CPU)",
                g.0,
                c.0
            );
        }
        let rel = match (g.1 - c.1).abs() / c.1.abs().max(1e-12) {
            r if r.is_nan() => f64::INFINITY,
            r => r,
        };
        if rel > worst.0 {
            worst = (rel, g.0);
        }
        println!("{:>4} {:>10.5} {:>10.5} {:>10.2e}", g.0, c.1, g.1, rel);
    }
    if worst.0 > CURVE_TOLERANCE {
        bail!(
            "the GPU's loss curve leaves the CPU's: {:.1} % apart at step {} (tolerance {:.0} %)",
            100.0 * worst.0,
            worst.1,
            100.0 * CURVE_TOLERANCE
        );
    }
    Ok(())
}

/// The CIFAR-10 directory to train on and what it holds: `--data`, else the workspace's `data/cifar10` if it holds
/// the dataset, else synthetic images in CIFAR-10's format under `work`.
fn data_dir(given: Option<PathBuf>, root: &Path, work: &Path) -> Result<(PathBuf, &'static str)> {
    if let Some(dir) = given {
        return Ok((dir, "CIFAR-10 from --data"));
    }
    let real = root.join("data/cifar10");
    let batch = |dir: &Path| dir.join("cifar-10-batches-bin/data_batch_5.bin");
    if batch(&real).is_file() || real.join("data_batch_5.bin").is_file() {
        println!("training on real CIFAR-10 in {}", real.display());
        return Ok((real, "real CIFAR-10"));
    }
    let synthetic = work.join("synthetic-cifar10");
    println!(
        "no CIFAR-10 in {} (pass --data DIR): training on synthetic images in CIFAR-10's format",
        real.display()
    );
    write_synthetic_cifar10(&synthetic)?;
    Ok((synthetic, "synthetic images in CIFAR-10's format"))
}

/// Writes 5 × 1,024 training and 1,024 test images in CIFAR-10's binary format: per image a
/// label byte and the R, G, B planes, each image a class colour with a gradient and noise.
pub(crate) fn write_synthetic_cifar10(dir: &Path) -> Result<()> {
    let bin = dir.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&bin).with_context(|| format!("creating {}", bin.display()))?;
    let mut state = 0x9e37_79b9_u32;
    let mut file = |name: &str, count: usize| -> Result<()> {
        let mut bytes = Vec::with_capacity(count * 3073);
        for i in 0..count {
            let class = i % 10;
            bytes.push(class as u8);
            for ch in 0..3 {
                for y in 0..32 {
                    for x in 0..32 {
                        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        let base = 40 + 60 * ((class + ch) % 3);
                        let v = base + (x + y) * 2 + (state >> 26) as usize;
                        bytes.push(v.min(255) as u8);
                    }
                }
            }
        }
        let path = bin.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
    };
    for b in 1..=5 {
        file(&format!("data_batch_{b}.bin"), 1024)?;
    }
    file("test_batch.bin", 1024)?;
    let meta = bin.join("batches.meta.txt");
    std::fs::write(
        &meta,
        mclr_shared::bundle::synthetic::CLASS_NAMES.join("\n") + "\n",
    )
    .with_context(|| format!("writing {}", meta.display()))
}

/// Appends the throughput rows to BENCHMARKS.md, under a heading naming the GPU and the date.
fn append_benchmarks(
    root: &Path,
    gpu: &Gpu,
    feature: &str,
    data: &str,
    rows: &[String],
) -> Result<()> {
    let path = root.join("BENCHMARKS.md");
    let date = cmd::output(&mut command("date", &["-u", "+%Y-%m-%d"])).unwrap_or_default();
    let mut text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.push_str(&format!(
        "\n## `cargo xtask gpu-check`: GPU training throughput, {} ({})\n\n\
         Command: `cargo xtask gpu-check` (`mclr train --device cuda`, build feature `{feature}`, \
         {THROUGHPUT_EPOCHS} epochs of {THROUGHPUT_IMAGES} images from {}; median of the logged \
         steps after the first two; the loader's augmentation runs on the host's cores).\n\n\
         | config | GPU | batch | run | throughput | peak GPU memory |\n|---|---|---|---|---|---|\n{}\n",
        gpu.name,
        date.trim(),
        data,
        rows.join("\n")
    ));
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(losses: &[f64]) -> Vec<(u64, f64, f64)> {
        losses
            .iter()
            .enumerate()
            .map(|(i, &l)| (5 * i as u64, l, 100.0))
            .collect()
    }

    #[test]
    fn curves_within_the_tolerance_pass_and_others_fail_naming_the_step() {
        let cpu = curve(&[6.0, 5.5, 5.0]);
        compare_curves(&curve(&[6.0, 5.6, 4.9]), &cpu).unwrap();
        let err = compare_curves(&curve(&[6.0, 5.5, 4.0]), &cpu)
            .unwrap_err()
            .to_string();
        assert!(err.contains("20.0 % apart at step 10"), "{err}");
        let err = compare_curves(&curve(&[6.0, f64::NAN, 5.0]), &cpu)
            .unwrap_err()
            .to_string();
        assert!(err.contains("at step 5"), "{err}");
        let err = compare_curves(&curve(&[6.0, 5.5]), &cpu)
            .unwrap_err()
            .to_string();
        assert!(err.contains("logged 2 steps, the CPU run 3"), "{err}");
    }

    #[test]
    fn synthetic_cifar10_loads_as_cifar10_records() {
        let dir = std::env::temp_dir().join(format!("mclr-gpu-check-{}", std::process::id()));
        write_synthetic_cifar10(&dir).unwrap();
        let bin = dir.join("cifar-10-batches-bin");
        let len = std::fs::metadata(bin.join("data_batch_3.bin"))
            .unwrap()
            .len();
        assert_eq!(len, 1024 * 3073);
        let meta = std::fs::read_to_string(bin.join("batches.meta.txt")).unwrap();
        assert_eq!(meta.lines().count(), 10);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
