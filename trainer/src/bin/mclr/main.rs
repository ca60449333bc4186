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

mod cli;
mod commands;

use anyhow::Context as _;
use clap::Parser as _;
use mclr_trainer::data::fetch::{self, FetchOptions};
use tracing::info;

use crate::cli::{Cli, Command, DataCommand};

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
        Command::Train(args) => commands::train(&args, !cli.quiet)?,
        Command::Eval(args) => commands::eval(&args, !cli.quiet)?,
        Command::Export(args) => commands::export(&args)?,
        Command::Inspect(args) => commands::inspect(&args)?,
        Command::Checkpoints(args) => commands::checkpoints(&args)?,
        Command::View(args) => commands::view(&args)?,
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
                commands::log_report(&report);
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
