//! `cargo xtask bench-torch`: mclr and PyTorch side by side on the same workloads, in one run.
//!
//! PyTorch (CPU) is installed from the Python package registry into a virtual environment under
//! `bench-torch/venv` of the target directory (no root). Each workload then runs in torch
//! (`bench/torch/workloads.py`) and in mclr (`trainer/benches/workloads.rs`) alternately, each run
//! a fresh process, for a number of rounds; the table reports medians over every timed
//! iteration, the ratio mclr / torch of their throughputs, and each side's peak RSS. The expm
//! workloads also run torch with `THP_MEM_ALLOC_ENABLE=1` (transparent huge pages for its
//! allocator), which speeds its `matrix_exp` up considerably on these machines.
//!
//! The same environment serves the interop check ([`interop`]): a trained checkpoint loaded
//! into torchvision's ResNet-18 must give mclr's features.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cmd::{self, command};
use crate::workspace;

/// What one workload measures, in the order of the table.
const WORKLOADS: [(&str, &str); 13] = [
    ("train_step", "img/s"),
    ("eval_forward", "img/s"),
    ("head_step", "pairs/s"),
    ("manifoldclr_step", "pairs/s"),
    ("simclr_step", "pairs/s"),
    ("expm_forward", "mat/s"),
    ("expm_backward", "mat/s"),
    ("expm_shared", "mat/s"),
    ("augment", "pairs/s"),
    ("conv64", "img/s"),
    ("conv128", "img/s"),
    ("conv256", "img/s"),
    ("conv512", "img/s"),
];

/// Python packages the comparison needs.
const PACKAGES: [&str; 5] = ["torch", "torchvision", "numpy", "pillow", "safetensors"];

/// What `cargo xtask bench-torch` was asked to do.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Rounds of each workload (each side a fresh process per round).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub rounds: usize,
    /// Timed iterations per run.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub iters: usize,
    /// Threads of both sides [default: the available parallelism].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Only these workloads (`interop` is one of the names).
    #[arg(long, value_name = "a,b,...", value_delimiter = ',')]
    pub only: Option<Vec<String>>,
}

/// The venv's python, creating the venv and installing [`PACKAGES`] when missing.
pub fn venv_python() -> Result<PathBuf> {
    let venv = workspace::target_dir()?.join("bench-torch/venv");
    let python = venv.join("bin/python");
    let ready = venv.join(".installed");
    if ready.exists() {
        return Ok(python);
    }
    let manual = format!(
        "python3 -m venv {v} && {v}/bin/pip install {p}",
        v = venv.display(),
        p = PACKAGES.join(" ")
    );
    cmd::run(&mut command(
        "python3",
        &["-m", "venv", &venv.to_string_lossy()],
    ))
    .with_context(|| format!("could not create the venv; create it by hand: {manual}"))?;
    let mut pip = command(
        &python.to_string_lossy(),
        &["-m", "pip", "install", "--quiet"],
    );
    pip.args(PACKAGES);
    cmd::run(&mut pip)
        .with_context(|| format!("could not install PyTorch; install it by hand: {manual}"))?;
    std::fs::write(&ready, PACKAGES.join("\n"))
        .with_context(|| format!("writing {}", ready.display()))?;
    Ok(python)
}

/// One run's numbers.
#[derive(Debug, Default, Clone)]
struct Samples {
    items: f64,
    seconds: Vec<f64>,
    peak_rss_mib: f64,
    torch_version: Option<String>,
}

impl Samples {
    fn add(&mut self, line: &serde_json::Value) -> Result<()> {
        self.items = line["items"].as_f64().context("no `items` in the result")?;
        let seconds = line["seconds"]
            .as_array()
            .context("no `seconds` in the result")?;
        self.seconds
            .extend(seconds.iter().filter_map(serde_json::Value::as_f64));
        self.peak_rss_mib = self
            .peak_rss_mib
            .max(line["peak_rss_mib"].as_f64().unwrap_or(0.0));
        if let Some(v) = line["torch"].as_str() {
            self.torch_version = Some(v.to_owned());
        }
        Ok(())
    }

    /// Items per second at the median iteration.
    fn rate(&self) -> f64 {
        let mut s = self.seconds.clone();
        s.sort_by(f64::total_cmp);
        match s.get(s.len() / 2) {
            Some(&median) if median > 0.0 => self.items / median,
            _ => f64::NAN,
        }
    }
}

/// Runs `c` and parses the last line of its stdout as JSON.
fn json_of(c: &mut Command) -> Result<serde_json::Value> {
    let shown = std::iter::once(c.get_program())
        .chain(c.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    eprintln!("\x1b[2m$ {shown}\x1b[0m");
    let out = c
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("could not start {shown}"))?;
    if !out.status.success() {
        bail!("{shown} failed ({})", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .last()
        .context("the workload printed nothing")?;
    serde_json::from_str(line).with_context(|| format!("not a result line: {line}"))
}

/// The interop check: the trainer's test that trains a full-width ResNet-18 for two steps, loads
/// its `model.safetensors` into torchvision's `resnet18` and compares features, run with this
/// venv's python.
pub fn interop(root: &Path, python: &Path) -> Result<()> {
    let mut c = command(
        "cargo",
        &[
            "test",
            "--locked",
            "-p",
            "mclr-trainer",
            "--test",
            "it",
            "interop",
            "--",
            "--nocapture",
        ],
    );
    c.env("MCLR_TORCH_PYTHON", python).current_dir(root);
    cmd::run(&mut c).context("the interop check with PyTorch failed")
}

/// `cargo xtask bench-torch [--rounds N] [--iters N] [--threads N] [--only a,b]` (`interop` is one
/// of the names `--only` takes).
pub fn run(options: &Options) -> Result<()> {
    let threads = options
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from));
    let root = workspace::root()?;
    let python = venv_python()?;
    let script = root.join("bench/torch/workloads.py");
    let threads_s = threads.to_string();
    let iters = options.iters.to_string();
    let wanted = |name: &str| {
        options
            .only
            .as_ref()
            .is_none_or(|o| o.iter().any(|w| w == name))
    };
    if wanted("interop") {
        interop(&root, &python)?;
    }
    // Built once up front, so that compilation never overlaps a measurement.
    cmd::run(&mut command(
        "cargo",
        &[
            "bench",
            "--locked",
            "-p",
            "mclr-trainer",
            "--bench",
            "workloads",
            "--no-run",
        ],
    ))?;
    let mut rows = Vec::new();
    let mut torch_version = None;
    for (name, unit) in WORKLOADS {
        if options
            .only
            .as_ref()
            .is_some_and(|o| !o.iter().any(|w| w == name))
        {
            continue;
        }
        // mclr-shared's CPU expm is compared with the same torch.matrix_exp forward as the
        // trainer's (`expm_forward`), so torch does not run again for it.
        let shared = name == "expm_shared";
        let thp = name.starts_with("expm_") && !shared;
        let (mut ours, mut theirs, mut theirs_thp) =
            (Samples::default(), Samples::default(), Samples::default());
        for _ in 0..options.rounds {
            let torch = |thp: bool| -> Result<serde_json::Value> {
                let mut c = command(&python.to_string_lossy(), &[]);
                c.arg(&script)
                    .args([name, "--iters", &iters, "--threads", &threads_s]);
                if thp {
                    c.env("THP_MEM_ALLOC_ENABLE", "1");
                }
                json_of(&mut c)
            };
            if !shared {
                theirs.add(&torch(false)?)?;
            }
            let mut c = command(
                "cargo",
                &[
                    "bench",
                    "--locked",
                    "--quiet",
                    "-p",
                    "mclr-trainer",
                    "--bench",
                    "workloads",
                    "--",
                    name,
                    "--iters",
                    &iters,
                ],
            );
            c.env("RAYON_NUM_THREADS", &threads_s);
            ours.add(&json_of(&mut c)?)?;
            if thp {
                theirs_thp.add(&torch(true)?)?;
            }
        }
        if shared {
            theirs = rows
                .iter()
                .find(|r: &&Row| r.name == "expm_forward")
                .map(|r| r.torch.clone())
                .unwrap_or_default();
            theirs_thp = rows
                .iter()
                .find(|r: &&Row| r.name == "expm_forward")
                .map(|r| r.torch_thp.clone())
                .unwrap_or_default();
        }
        torch_version = torch_version.or_else(|| theirs.torch_version.clone());
        let row = Row {
            name,
            unit,
            mclr: ours,
            torch: theirs,
            torch_thp: theirs_thp,
        };
        // Each row as soon as it is measured, so a failure later keeps what was done.
        eprintln!("{}", row.markdown());
        rows.push(row);
    }
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    println!(
        "\nmachine: {cpu}, {} threads; torch {}; {} rounds × {} iterations, medians\n",
        threads,
        torch_version.as_deref().unwrap_or("?"),
        options.rounds,
        options.iters
    );
    println!(
        "| workload | unit | mclr | torch | mclr / torch | torch (THP) | mclr / torch (THP) | peak RSS mclr / torch (MiB) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!("{}", r.markdown());
    }
    Ok(())
}

struct Row {
    name: &'static str,
    unit: &'static str,
    mclr: Samples,
    torch: Samples,
    torch_thp: Samples,
}

impl Row {
    /// The row of the results table.
    fn markdown(&self) -> String {
        let (ours, theirs) = (self.mclr.rate(), self.torch.rate());
        let thp = self.torch_thp.rate();
        let (thp_rate, thp_ratio) = if thp.is_finite() {
            (format!("{thp:.1}"), format!("{:.2}×", ours / thp))
        } else {
            ("–".to_owned(), "–".to_owned())
        };
        format!(
            "| {} | {} | {ours:.1} | {theirs:.1} | **{:.2}×** | {thp_rate} | {thp_ratio} | {:.0} / {:.0} |",
            self.name,
            self.unit,
            ours / theirs,
            self.mclr.peak_rss_mib,
            self.torch.peak_rss_mib
        )
    }
}
