//! `mclr train`: the training loop. Per iteration it takes a batch of view pairs from the data
//! loader, computes the objective of the run's config ([`step`]), backpropagates, steps AdamW with
//! its three parameter groups, logs metrics ([`metrics`]) and, at epoch ends, writes checkpoints
//! ([`checkpoint`]) from which `--resume` continues bit for bit.

pub mod checkpoint;
pub mod metrics;
pub mod monitor;
pub mod step;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};

use crate::augment::SslAugment;
use crate::config::Config;
use crate::data::loader::{LoaderConfig, SslLoader};
use crate::data::{self, ImageSet, Split};
use crate::error::{Error, Result};
use crate::export::live::LiveWriter;
use crate::model::ssl::{Group, SslModel};
use crate::optim::{AdamW, GroupSettings, ParamGroup};
use checkpoint::{Checkpoint, TrainState};
use metrics::{MetricsRecord, MetricsWriter};
use monitor::{Divergence, StepMonitor};
use step::Objective;

/// How to run training (as opposed to what to train, which is the [`Config`]).
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The run directory: config, weights, metrics and checkpoints go here.
    pub run_dir: PathBuf,
    /// Continue the run in `run_dir` from its latest checkpoint.
    pub resume: bool,
    /// Where the model runs.
    pub device: Device,
    /// Stop (with a checkpoint) after this many epochs in total, before the config's end; the
    /// schedule still follows the config's length, so a later `--resume` continues seamlessly.
    pub stop_after_epochs: Option<u64>,
    /// Show a progress bar.
    pub progress: bool,
}

/// What a training call achieved.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSummary {
    /// Epochs completed in total.
    pub epochs_done: u64,
    /// Iterations completed in total.
    pub steps: u64,
    /// Mean loss of the last epoch.
    pub last_epoch_loss: f64,
    /// The run directory.
    pub run_dir: PathBuf,
}

/// Parses `auto` ([`auto_device`]), `cpu`, `cuda` or `cuda:N`, and logs the device chosen. CUDA
/// needs a build with the `cuda` feature; without it the error says so.
pub fn parse_device(spec: &str) -> Result<Device> {
    let invalid = || Error::InvalidSetting {
        setting: "--device",
        expected: "auto, cpu, cuda or cuda:N".into(),
        found: spec.to_owned(),
    };
    let device = match spec {
        "auto" => auto_device(),
        "cpu" => Device::Cpu,
        "cuda" => Device::new_cuda(0)?,
        other => {
            let ordinal = other.strip_prefix("cuda:").ok_or_else(invalid)?;
            Device::new_cuda(ordinal.parse().map_err(|_| invalid())?)?
        }
    };
    tracing::info!(device = describe_device(&device), "--device {spec}");
    Ok(device)
}

/// The first CUDA device when this build has CUDA and one is present, else the CPU: what
/// `--device auto` (the default) picks.
pub fn auto_device() -> Device {
    if candle_core::utils::cuda_is_available() {
        match Device::new_cuda(0) {
            Ok(device) => return device,
            Err(e) => {
                tracing::warn!(
                    "CUDA is compiled in but device 0 is unusable ({}); using the CPU",
                    crate::error_chain(&e)
                );
            }
        }
    }
    Device::Cpu
}

/// "cpu" or "cuda:N", for logs.
pub fn describe_device(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".to_owned(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// Trains `config` on its dataset (read from `config.data.dir`), or, with `options.resume`,
/// continues the run in `options.run_dir` from its newest checkpoint: `config` must then equal the
/// run's config except for `optim.epochs` (see [`saved_config`] to start from the run's own).
pub fn train(config: &Config, options: &TrainOptions) -> Result<TrainSummary> {
    let name = config.dataset()?;
    let mut images = data::load(name, &config.data.dir, Split::SslTrain)?;
    if config.data.subset > 0 && config.data.subset < images.len() {
        images = first_images(&images, config.data.subset)?;
    }
    train_on(config, Arc::new(images), options)
}

/// Trains on an image set already in memory (`config.data` only chooses the augmentation recipe).
pub fn train_on(
    config: &Config,
    images: Arc<ImageSet>,
    options: &TrainOptions,
) -> Result<TrainSummary> {
    let run_dir = &options.run_dir;
    let dataset = config.dataset()?;
    let augment = SslAugment::for_dataset(dataset);
    let image_px = augment.size();
    let loader_config = LoaderConfig {
        batch_size: config.optim.batch_size,
        drop_last: true,
        shuffle: true,
        seed: config.run.seed,
        prefetch: config.data.prefetch.max(1),
        threads: None,
    };
    let loader = SslLoader::new(images, augment, loader_config)?;
    let per_epoch = loader.batches_per_epoch() as u64;
    if per_epoch == 0 {
        return Err(Error::InvalidSetting {
            setting: "optim.batch_size",
            expected: "at most the number of training images".into(),
            found: config.optim.batch_size.to_string(),
        });
    }
    let total_steps = per_epoch * config.optim.epochs;

    let model = SslModel::new(config, image_px, &options.device)?;
    let mut optimizer = optimizer_for(config, &model, per_epoch)?;

    std::fs::create_dir_all(run_dir).map_err(|e| Error::io("creating", run_dir, e))?;
    let _lock = checkpoint::lock(run_dir)?;
    for path in checkpoint::clean_partials(run_dir)? {
        tracing::info!("removed {} left by an interrupted run", path.display());
    }
    let resumed = if options.resume {
        resume_point(config, run_dir)?
    } else {
        None
    };
    let config_toml = config.to_toml()?;
    let (mut state, metrics_len) = match resumed {
        Some((dir, manifest)) => {
            let (weights, opt_tensors, state) = checkpoint::read(&dir, &options.device)?;
            load_weights(&model, &weights, &dir)?;
            optimizer.load_state(&state.optimizer, &opt_tensors)?;
            // The top-level copies may lag behind if the last run died between commit and publish.
            checkpoint::publish(run_dir, &dir)?;
            tracing::info!(
                epochs_done = state.epochs_done,
                step = state.step,
                "resuming from {}",
                dir.display()
            );
            (state, manifest.metrics_bytes)
        }
        None => {
            start_run_dir(config, &config_toml, options)?;
            let state = TrainState {
                config_name: config.name.clone(),
                epochs_done: 0,
                step: 0,
                optimizer: optimizer.meta(),
                objective: Objective::new(config).state(),
                epoch_losses: Vec::new(),
                best: None,
                elapsed_secs: 0.0,
            };
            (state, 0)
        }
    };
    let mut objective = Objective::with_state(config, Some(&state.objective));
    let mut live = LiveWriter::new(config, run_dir);
    let mut metrics = MetricsWriter::open_at(&run_dir.join(checkpoint::METRICS_FILE), metrics_len)?;
    let last_epoch = options
        .stop_after_epochs
        .map_or(config.optim.epochs, |s| s.min(config.optim.epochs));
    tracing::info!(
        parameters = model.num_parameters(),
        steps_per_epoch = per_epoch,
        total_steps,
        "training {}",
        config.name
    );

    let bar = if options.progress {
        ProgressBar::new(total_steps)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed} < {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_position(state.step);
    // Training time is added up to here at each epoch's end (state.elapsed_secs).
    let mut counted_until = Instant::now();
    let mut last_log = (Instant::now(), state.step);
    let mut last_epoch_loss = state.epoch_losses.last().copied().unwrap_or(f64::NAN);

    for epoch in state.epochs_done..last_epoch {
        bar.set_prefix(format!("{}/{}", epoch + 1, config.optim.epochs));
        // Loss terms and gradient norms stay on the device until a logging step or the epoch's
        // end reads them all at once (see `monitor`); a NaN is caught there, before any save.
        let mut monitor = StepMonitor::new();
        let mut loss_sum = 0.0;
        let mut batches = 0u64;
        for batch in loader.epoch(epoch)? {
            let step = state.step;
            optimizer.set_iteration(step);
            let shape = (batch.len(), 3, batch.size, batch.size);
            let x0 = Tensor::from_vec(batch.view0, shape, &options.device)?;
            let x1 = Tensor::from_vec(batch.view1, shape, &options.device)?;
            let stepped = objective.step(&model, &x0, &x1, step).and_then(|out| {
                let report = optimizer.step_deferred(&out.loss.backward()?)?;
                monitor.record(step, &out, report)?;
                Ok(out)
            });
            let out = match stepped {
                Ok(out) => out,
                Err(e) => {
                    bar.abandon();
                    // A NaN from an earlier step is the likelier cause; report it if there is one.
                    if let Ok(steps) = monitor.read()
                        && let Some(divergence) = monitor::first_divergence(&steps)
                    {
                        return Err(diverged(divergence, run_dir));
                    }
                    return Err(Error::Step {
                        step,
                        source: without_backtrace(e),
                        run_dir: run_dir.clone(),
                    });
                }
            };
            state.step += 1;
            batches += 1;
            bar.inc(1);

            if step % config.run.log_every.max(1) == 0 {
                let steps = monitor.read()?;
                if let Some(divergence) = monitor::first_divergence(&steps) {
                    bar.abandon();
                    return Err(diverged(divergence, run_dir));
                }
                loss_sum += steps.iter().map(|s| s.terms.total).sum::<f64>();
                let Some(current) = steps.into_iter().next_back() else {
                    continue;
                };
                let (since, since_step) = last_log;
                let pairs = (state.step - since_step) as f64 * config.optim.batch_size as f64;
                let pairs_per_sec = pairs / since.elapsed().as_secs_f64().max(1e-9);
                last_log = (Instant::now(), state.step);
                let record = MetricsRecord {
                    step,
                    epoch,
                    loss: current.terms,
                    lr: current.lr,
                    grad_norm: current.grad_norm,
                    pairs_per_sec,
                    diagnostics: metrics::diagnostics(&model, &out.tensors)?,
                };
                metrics.write(&record)?;
                let backbone_lr = record.lr.get("backbone").copied().unwrap_or(f64::NAN);
                let t = &record.loss;
                bar.set_message(format!(
                    "loss {:.4} (con {:.4} man {:.4} kl {:.2}) lr {backbone_lr:.2e} {pairs_per_sec:.0} pairs/s",
                    t.total, t.contrastive, t.manifold, t.kl
                ));
            }
        }
        let steps = monitor.read()?;
        if let Some(divergence) = monitor::first_divergence(&steps) {
            bar.abandon();
            return Err(diverged(divergence, run_dir));
        }
        loss_sum += steps.iter().map(|s| s.terms.total).sum::<f64>();
        last_epoch_loss = loss_sum / batches.max(1) as f64;
        state.epochs_done = epoch + 1;
        state.epoch_losses.push(last_epoch_loss);
        state.objective = objective.state();
        state.optimizer = optimizer.meta();
        let now = Instant::now();
        state.elapsed_secs += now.duration_since(counted_until).as_secs_f64();
        counted_until = now;
        let done = state.epochs_done;
        if done % config.run.checkpoint_every.max(1) == 0 || done == last_epoch {
            let is_best = state.best.is_none_or(|(_, best)| last_epoch_loss < best);
            if is_best {
                state.best = Some((done, last_epoch_loss));
            }
            let ck = Checkpoint {
                model: model_tensors(&model),
                optimizer: optimizer.state_tensors(),
                state: &state,
                config_toml: &config_toml,
                metrics_bytes: metrics.sync_len()?,
            };
            save_checkpoint(&ck, run_dir, config.run.keep_last, is_best)?;
            // After the commit: the live bundle shows a checkpoint that is already safe.
            live.at_checkpoint(&model, config, &config_toml, &state, &options.device)?;
        }
        tracing::info!(epoch = done, loss = last_epoch_loss, "epoch done");
    }
    bar.finish();
    Ok(TrainSummary {
        epochs_done: state.epochs_done,
        steps: state.step,
        last_epoch_loss,
        run_dir: run_dir.clone(),
    })
}

/// The error for a run that produced a NaN or infinity at some step.
fn diverged(divergence: Divergence, run_dir: &Path) -> Error {
    match divergence {
        Divergence::Loss { step, term, value } => Error::NonFiniteLoss {
            step,
            term,
            value,
            run_dir: run_dir.to_owned(),
        },
        Divergence::Gradient { step, group, value } => Error::NonFiniteGradient {
            step,
            group,
            value,
            run_dir: run_dir.to_owned(),
        },
    }
}

/// A candle error without the backtrace candle attaches when `RUST_BACKTRACE` is set (its message
/// would carry the whole backtrace).
fn without_backtrace(e: candle_core::Error) -> candle_core::Error {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => without_backtrace(*inner),
        other => other,
    }
}

/// The first `n` images of `images` (CPU-sized runs train on a subset).
fn first_images(images: &ImageSet, n: usize) -> Result<ImageSet> {
    let bytes = images.image_len() * n;
    ImageSet::new(
        images.height(),
        images.width(),
        images.pixels().get(..bytes).unwrap_or_default().to_vec(),
        images.labels().map(|l| l.iter().take(n).copied().collect()),
        images.class_names().to_vec(),
    )
}

/// Prepares the run directory for a new run and writes its resolved config; refuses to overwrite
/// a run that has a checkpoint.
fn start_run_dir(config: &Config, config_toml: &str, options: &TrainOptions) -> Result<()> {
    let dir = &options.run_dir;
    if dir.join(checkpoint::STATE_FILE).exists() || !checkpoint::epoch_dirs(dir)?.is_empty() {
        return Err(Error::Checkpoint {
            path: dir.clone(),
            reason:
                "already holds a run; pass --resume to continue it, or choose another --run-dir"
                    .into(),
        });
    }
    if options.resume {
        tracing::info!(
            "{} has no checkpoint yet: starting {} from the beginning",
            dir.display(),
            config.name
        );
    }
    checkpoint::write_atomic(&dir.join(checkpoint::CONFIG_FILE), config_toml.as_bytes())
}

/// The config saved in the run directory `run_dir` (`config.toml`), for `--resume` without
/// `--config`; `overrides` (`--set`) are applied on top, and [`train`] then checks them against
/// the run's checkpoint.
///
/// # Errors
/// [`Error::Checkpoint`] when there is no `config.toml`, config errors for a bad file or override.
pub fn saved_config(run_dir: &Path, overrides: &[String]) -> Result<Config> {
    let path = run_dir.join(checkpoint::CONFIG_FILE);
    if !path.exists() {
        return Err(Error::Checkpoint {
            path,
            reason: "no run to resume here (config.toml is missing)".into(),
        });
    }
    Config::resolve(&path.to_string_lossy(), overrides)
}

/// Config keys a resumed run may change: its length, and the live bundles (a view of the run,
/// not part of its training).
pub const MAY_CHANGE_ON_RESUME: [&str; 3] = ["optim.epochs", "run.live_every", "run.live_gallery"];

/// For `--resume`: the newest checkpoint, verified, once the configs agree. `config` (what the
/// caller asks for) and the run's `config.toml` must both equal the config saved with the
/// checkpoint, except `optim.epochs`, which may be raised to extend the run (the new length is
/// written to `config.toml`), and the live bundles' settings ([`MAY_CHANGE_ON_RESUME`]). `None`
/// when the run has no checkpoint yet (it starts over).
fn resume_point(
    config: &Config,
    run_dir: &Path,
) -> Result<Option<(PathBuf, checkpoint::Manifest)>> {
    let config_path = run_dir.join(checkpoint::CONFIG_FILE);
    let Some((dir, manifest)) = checkpoint::latest(run_dir)? else {
        if !config_path.exists() {
            return Err(Error::Checkpoint {
                path: config_path,
                reason: "no run to resume here (config.toml is missing)".into(),
            });
        }
        return Ok(None);
    };
    let saved_path = dir.join(checkpoint::CONFIG_FILE);
    let saved = Config::resolve(&saved_path.to_string_lossy(), &[])?;
    let list = |diffs: Vec<crate::config::Difference>| {
        diffs
            .iter()
            .filter(|d| !MAY_CHANGE_ON_RESUME.contains(&d.key.as_str()))
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if config_path.exists() {
        let on_disk = Config::resolve(&config_path.to_string_lossy(), &[])?;
        let edited = list(saved.differences(&on_disk));
        if !edited.is_empty() {
            return Err(Error::ConfigEdited {
                path: config_path,
                checkpoint: saved_path,
                differences: edited,
            });
        }
    }
    let changed = list(saved.differences(config));
    if !changed.is_empty() {
        return Err(Error::ResumeConfigMismatch {
            checkpoint: saved_path,
            differences: changed,
        });
    }
    if config.optim.epochs < manifest.epochs_done {
        return Err(Error::InvalidSetting {
            setting: "optim.epochs",
            expected: format!(
                "at least the {} epochs the run has completed",
                manifest.epochs_done
            ),
            found: config.optim.epochs.to_string(),
        });
    }
    if config.optim.epochs != saved.optim.epochs {
        tracing::info!(
            "optim.epochs: {} -> {} (the schedule follows the new length)",
            saved.optim.epochs,
            config.optim.epochs
        );
    }
    checkpoint::write_atomic(&config_path, config.to_toml()?.as_bytes())?;
    Ok(Some((dir, manifest)))
}

/// Every variable of the model, by name (sorted), for saving.
fn model_tensors(model: &SslModel) -> Vec<(String, Tensor)> {
    let Ok(vars) = model.varmap.data().lock() else {
        return Vec::new();
    };
    let mut out: Vec<(String, Tensor)> = vars
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Sets every model variable from `weights`, checking that each is present with its shape.
pub fn load_weights(
    model: &SslModel,
    weights: &std::collections::HashMap<String, Tensor>,
    from: &Path,
) -> Result<()> {
    let Ok(vars) = model.varmap.data().lock() else {
        return Err(Error::Checkpoint {
            path: from.to_owned(),
            reason: "variable store lock poisoned".into(),
        });
    };
    for (name, var) in vars.iter() {
        let Some(t) = weights.get(name) else {
            return Err(Error::Checkpoint {
                path: from.to_owned(),
                reason: format!("no tensor `{name}`"),
            });
        };
        if t.dims() != var.dims() {
            return Err(Error::Checkpoint {
                path: from.to_owned(),
                reason: format!(
                    "tensor `{name}` has shape {:?}, the model needs {:?}",
                    t.dims(),
                    var.dims()
                ),
            });
        }
        var.set(t)?;
    }
    Ok(())
}

/// Commits the epoch checkpoint, refreshes the run directory's latest files, the best copy, and
/// prunes old epochs.
fn save_checkpoint(
    ck: &Checkpoint<'_>,
    run_dir: &Path,
    keep_last: usize,
    is_best: bool,
) -> Result<()> {
    let dir = ck.commit(run_dir).map_err(|e| {
        let last_good = match checkpoint::epoch_dirs(run_dir)
            .ok()
            .and_then(|d| d.last().cloned())
        {
            Some((_, last)) => format!(
                "the last checkpoint, {}, is intact and --resume continues from it",
                last.display()
            ),
            None => "the run has no checkpoint yet; --resume starts it over".to_owned(),
        };
        Error::CheckpointWrite {
            epoch: ck.state.epochs_done,
            source: Box::new(e),
            last_good,
        }
    })?;
    checkpoint::publish(run_dir, &dir)?;
    if is_best {
        checkpoint::promote_best(run_dir, &dir)?;
    }
    checkpoint::prune(run_dir, keep_last.max(1))
}

/// AdamW over `model`'s parameter groups with `config`'s settings and schedule, for a run of
/// `per_epoch` steps per epoch (the schedule's warm-up and length are counted in steps).
pub fn optimizer_for(config: &Config, model: &SslModel, per_epoch: u64) -> Result<AdamW> {
    let total_steps = per_epoch * config.optim.epochs;
    let warmup_iters = config.optim.warmup_epochs * per_epoch as f64;
    let mut groups = Vec::new();
    for (group, settings) in [
        (Group::Backbone, &config.optim.backbone),
        (Group::Operators, &config.optim.operators),
        (Group::Coefficients, &config.optim.coefficients),
    ] {
        let vars: Vec<_> = model
            .group_vars(group)
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        if vars.is_empty() {
            continue;
        }
        let settings = GroupSettings {
            lr: settings.lr,
            weight_decay: settings.weight_decay,
            floor: settings.floor,
            max_grad_norm: (settings.clip > 0.0).then_some(settings.clip),
        };
        groups.push(ParamGroup::new(
            group.name(),
            vars,
            &settings,
            warmup_iters,
            total_steps,
        )?);
    }
    Ok(AdamW::new(groups)?)
}
