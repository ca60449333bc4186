//! `cargo xtask kill-test`: SIGKILLs `mclr train` at random moments, some of them while a
//! checkpoint is being written, resumes after each kill, and checks that the final weights are
//! bit-identical to an uninterrupted run's and that every checkpoint left on disk verifies and
//! loads (`mclr checkpoints`). Then a disk-full case: the file-size limit (`ulimit -f`) makes a
//! checkpoint write fail; the error must name the failure and the intact previous checkpoint, and a
//! plain `--resume` must then finish with the same weights.
//!
//! ```text
//! cargo xtask kill-test [--kills 20] [--seed S] [--epochs 20] [--release] [--keep]
//! ```
//!
//! Everything happens under `kill-test/` of the target directory (synthetic CIFAR-10-format data, the runs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

use crate::{cmd, gpu_check, workspace};

/// `--set` overrides of the tiny run: 64 images in batches of 8 (8 steps per epoch), a
/// checkpoint after every epoch.
const TINY: [&str; 12] = [
    "model.base_width=4",
    "method.block_size=8",
    "method.operators=4",
    "method.prior_warmup_iters=4",
    "optim.batch_size=8",
    "optim.warmup_epochs=0.5",
    "data.subset=64",
    "data.prefetch=1",
    "run.log_every=2",
    "run.checkpoint_every=1",
    "run.keep_last=3",
    "run.seed=3",
];

/// What `cargo xtask kill-test` was asked to do.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// How many times to kill the training run.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub kills: usize,
    /// Seed of the kill moments [default: the clock].
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Epochs of the run.
    #[arg(long, value_name = "E", default_value_t = 20)]
    pub epochs: u64,
    /// Build and run the release trainer.
    #[arg(long)]
    pub release: bool,
    /// Keep the runs in the target directory's kill-test/ afterwards.
    #[arg(long)]
    pub keep: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            kills: 20,
            seed: None,
            epochs: 20,
            release: false,
            keep: false,
        }
    }
}

/// Runs the kill test; see the module docs.
pub fn run(opts: &Options) -> Result<()> {
    let Options {
        kills,
        epochs,
        release,
        keep,
        ..
    } = *opts;
    let seed = opts.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let root = workspace::root()?;
    let started = Instant::now();

    // 1. Build.
    let profile = if release { "release" } else { "dev" };
    cmd::run(
        cmd::command(
            "cargo",
            &[
                "build",
                "--locked",
                "-p",
                "mclr-trainer",
                "--bin",
                "mclr",
                "--profile",
                profile,
            ],
        )
        .current_dir(&root),
    )?;
    let target = workspace::target_dir()?;
    let mclr = target
        .join(if release { "release" } else { "debug" })
        .join("mclr");
    ensure!(mclr.exists(), "{} was not built", mclr.display());

    // 2. Data and the uninterrupted reference run.
    let work = target.join("kill-test");
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    let data = work.join("data");
    gpu_check::write_synthetic_cifar10(&data)?;
    let mut sets: Vec<String> = TINY.iter().map(|s| (*s).to_owned()).collect();
    sets.push(format!("optim.epochs={epochs}"));
    sets.push(format!("data.dir={}", data.display()));
    let trainer = Trainer { mclr, sets };

    let reference = work.join("reference");
    let t0 = Instant::now();
    trainer.finish(&reference, false)?;
    let straight = t0.elapsed();
    eprintln!(
        "reference run: {epochs} epochs in {:.1} s",
        straight.as_secs_f64()
    );

    // 3. Kills.
    let killed = work.join("killed");
    let mut rng = SplitMix(seed);
    let mut tally = Tally::default();
    // A random kill lands within start-up plus two epochs of the segment's start, so some land
    // in start-up, most in steps and some in checkpoint writes, and the run advances by about an
    // epoch per kill; every other kill waits for the segment's first or second checkpoint write
    // to start and kills it there.
    let window = 2.5 * straight.as_secs_f64() / epochs as f64;
    for k in 0..kills {
        let resume = killed.join("config.toml").exists();
        let mut child = trainer.spawn(&killed, resume)?;
        let during_write = k % 2 == 1;
        let target_write = 1 + (rng.unit() * 2.0) as usize;
        let mut writes_seen = 0;
        let mut writing = false;
        // Leftovers of the previous kill (cleaned when the run starts) are not a write.
        let leftovers = partial_entries(&killed);
        let deadline = Instant::now() + Duration::from_secs_f64(rng.unit() * window);
        let finished = loop {
            if let Some(status) = child.try_wait()? {
                break Some(status);
            }
            if during_write {
                let now_writing = partial_entries(&killed)
                    .iter()
                    .any(|e| !leftovers.contains(e));
                if now_writing && !writing {
                    writes_seen += 1;
                }
                writing = now_writing;
                if writes_seen >= target_write && writing {
                    break None;
                }
                std::thread::sleep(Duration::from_micros(100));
            } else {
                if Instant::now() >= deadline {
                    break None;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        if let Some(status) = finished {
            ensure!(
                status.success(),
                "mclr train failed ({status}) before kill {}",
                k + 1
            );
            eprintln!("kill {}: the run finished first", k + 1);
            tally.finished_early += 1;
            break;
        }
        child.kill().context("sending SIGKILL")?;
        child.wait()?;
        tally.kills += 1;
        let mid_write = during_write;
        if mid_write {
            tally.mid_checkpoint += 1;
        }
        let checked = trainer.check_checkpoints(&killed)?;
        tally.checkpoints_verified += checked;
        eprintln!(
            "kill {}: {}; {checked} checkpoints on disk verify and load",
            k + 1,
            if mid_write {
                "during a checkpoint write"
            } else {
                "at a random moment"
            },
        );
    }
    trainer.finish(&killed, killed.join("config.toml").exists())?;
    tally.checkpoints_verified += trainer.check_checkpoints(&killed)?;
    let tensors = same_weights(&reference, &killed)?;
    eprintln!(
        "after {} kills the weights equal the uninterrupted run's ({tensors} tensors)",
        tally.kills
    );

    // 4. Disk full: a checkpoint write fails, the previous checkpoint stays, --resume finishes.
    let full = work.join("disk-full");
    trainer.finish_with(&full, false, &["--stop-after-epochs", "1"])?;
    let model_bytes = std::fs::metadata(full.join("model.safetensors"))?.len();
    let blocks = (model_bytes / 2 / 1024).max(1);
    let out = trainer
        .command(&full, true, Some(blocks))
        .output()
        .context("starting mclr train under a file-size limit")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success(),
        "the run under a file-size limit succeeded"
    );
    for expected in [
        "writing the checkpoint of epoch 2 failed",
        "File too large",
        "nothing was committed",
        "epoch-0001, is intact and --resume continues from it",
    ] {
        ensure!(
            stderr.contains(expected),
            "the disk-full error lacks `{expected}`:\n{stderr}"
        );
    }
    ensure!(
        !full.join("checkpoints/epoch-0002").exists(),
        "a checkpoint of epoch 2 was committed despite the failed write"
    );
    let intact = trainer.check_checkpoints(&full)?;
    trainer.finish(&full, true)?;
    same_weights(&reference, &full)?;
    eprintln!(
        "disk full: the write failed cleanly ({intact} checkpoints intact), the resumed run matches"
    );

    eprintln!(
        "\nkill-test: {} kills ({} during a checkpoint write), {} checkpoint verifications, 1 \
         write fault injected; final weights bit-identical ({tensors} tensors) in {:.0} s (seed {seed})",
        tally.kills,
        tally.mid_checkpoint,
        tally.checkpoints_verified,
        started.elapsed().as_secs_f64()
    );
    if !keep {
        std::fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    Ok(())
}

/// What the kill loop counted.
#[derive(Default)]
struct Tally {
    kills: usize,
    mid_checkpoint: usize,
    checkpoints_verified: usize,
    finished_early: usize,
}

/// The `mclr` binary and the tiny run's settings.
struct Trainer {
    mclr: PathBuf,
    sets: Vec<String>,
}

impl Trainer {
    /// `mclr train` into `run_dir` (a fresh run, or `--resume`), optionally under a file-size
    /// limit of `blocks` (the shell's `ulimit -f` units), with SIGXFSZ ignored so that the write
    /// fails with EFBIG instead of killing the process.
    fn command(&self, run_dir: &Path, resume: bool, blocks: Option<u64>) -> Command {
        let mut args: Vec<String> = vec!["train".into(), "--quiet".into()];
        if resume {
            args.push("--resume".into());
        } else {
            args.extend(["--config".into(), "demo".into()]);
            for s in &self.sets {
                args.extend(["--set".into(), s.clone()]);
            }
        }
        args.extend([
            "--run-dir".into(),
            run_dir.display().to_string(),
            "--device".into(),
            "cpu".into(),
        ]);
        let mut c = match blocks {
            Some(blocks) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!(
                        "ulimit -f {blocks} && trap '' XFSZ && exec \"$0\" \"$@\""
                    ))
                    .arg(&self.mclr)
                    .args(&args);
                c
            }
            None => {
                let mut c = Command::new(&self.mclr);
                c.args(&args);
                c
            }
        };
        c.stdin(Stdio::null());
        c
    }

    fn spawn(&self, run_dir: &Path, resume: bool) -> Result<Child> {
        self.command(run_dir, resume, None)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting mclr train")
    }

    fn finish(&self, run_dir: &Path, resume: bool) -> Result<()> {
        self.finish_with(run_dir, resume, &[])
    }

    fn finish_with(&self, run_dir: &Path, resume: bool, extra: &[&str]) -> Result<()> {
        let out = self
            .command(run_dir, resume, None)
            .args(extra)
            .output()
            .context("starting mclr train")?;
        ensure!(
            out.status.success(),
            "mclr train into {} failed ({}):\n{}",
            run_dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// Runs `mclr checkpoints` on `run_dir`; returns how many checkpoints it verified.
    fn check_checkpoints(&self, run_dir: &Path) -> Result<usize> {
        let committed = std::fs::read_dir(run_dir.join("checkpoints")).is_ok_and(|entries| {
            entries
                .filter_map(|e| e.ok())
                .any(|e| !e.file_name().to_string_lossy().starts_with('.'))
        });
        if !committed {
            // Killed before its first checkpoint: nothing to load.
            return Ok(0);
        }
        let out = Command::new(&self.mclr)
            .args(["--quiet", "checkpoints"])
            .arg(run_dir)
            .output()
            .context("starting mclr checkpoints")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        ensure!(
            out.status.success(),
            "a checkpoint in {} does not load:\n{stdout}{}",
            run_dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(stdout.lines().filter(|l| l.starts_with("ok")).count())
    }
}

/// The staging folders and temporary files of checkpoint writes on disk.
fn partial_entries(run_dir: &Path) -> Vec<PathBuf> {
    let list = |dir: &Path, keep: &dyn Fn(&str) -> bool| -> Vec<PathBuf> {
        std::fs::read_dir(dir).map_or_else(
            |_| Vec::new(),
            |entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter(|e| keep(&e.file_name().to_string_lossy()))
                    .map(|e| e.path())
                    .collect()
            },
        )
    };
    let mut out = list(&run_dir.join("checkpoints"), &|n| n.starts_with('.'));
    out.extend(list(run_dir, &|n| n.starts_with(".mclr-partial-")));
    out
}

/// Checks that the two runs' `model.safetensors` hold the same tensors, byte for byte (the
/// files' headers may order their metadata differently); returns the tensor count.
fn same_weights(a: &Path, b: &Path) -> Result<usize> {
    let (ta, tb) = (
        tensors(&a.join("model.safetensors"))?,
        tensors(&b.join("model.safetensors"))?,
    );
    ensure!(!ta.is_empty(), "{} holds no tensors", a.display());
    ensure!(
        ta.keys().eq(tb.keys()),
        "the runs' models hold different tensors"
    );
    for (name, bytes) in &ta {
        ensure!(
            tb.get(name) == Some(bytes),
            "tensor `{name}` differs between {} and {}",
            a.display(),
            b.display()
        );
    }
    Ok(ta.len())
}

/// A tensor as stored: dtype, shape (both as JSON text) and bytes.
type Stored = (String, String, Vec<u8>);

/// The tensors of a safetensors file, by name.
fn tensors(path: &Path) -> Result<BTreeMap<String, Stored>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let len = bytes
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .context("no safetensors header")? as usize;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(bytes.get(8..8 + len).context("truncated header")?)?;
    let data = bytes.get(8 + len..).context("no data")?;
    let mut out = BTreeMap::new();
    for (name, info) in header {
        if name == "__metadata__" {
            continue;
        }
        let offsets = info["data_offsets"].as_array().context("no data_offsets")?;
        let (start, end) = (
            offsets
                .first()
                .and_then(|v| v.as_u64())
                .context("bad offset")? as usize,
            offsets
                .get(1)
                .and_then(|v| v.as_u64())
                .context("bad offset")? as usize,
        );
        let slice = data.get(start..end).context("offsets out of range")?;
        out.insert(
            name,
            (
                info["dtype"].to_string(),
                info["shape"].to_string(),
                slice.to_vec(),
            ),
        );
    }
    Ok(out)
}

/// SplitMix64: the kill moments, reproducible from `--seed`.
struct SplitMix(u64);

impl SplitMix {
    /// A number in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}
