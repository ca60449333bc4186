//! Live bundles: a light viewer bundle that `mclr train` writes into the run directory at
//! checkpoints, so that `mclr view RUN` can show a ManifoldCLR run while it trains.
//!
//! `RUN/live.mclr` is an ordinary bundle (format v3) assembled by the same code as `mclr export`
//! (`assemble` in the parent module): the operators, prior and encoder of the model just
//! checkpointed, the features of a fixed small gallery recomputed by its backbone in eval mode,
//! their PCA and the operator statistics. What differs:
//!
//! * the gallery is the first [`RunConfig::live_gallery`] images of the test split (2,000 by
//!   default), loaded once per training run with their thumbnails;
//! * the thumbnail sheet is not inside the bundle but beside it, `RUN/live-thumbs.png`
//!   ([`Thumbnails::sheet_file`]), written at the first live bundle and again only if it is
//!   missing or differs, so a checkpoint rewrites only the features and the networks;
//! * `run.live` is true, `run.saved_unix_ms` is the time of writing, and there are no training
//!   logs and no metrics: no evaluation, and not export's measure of what int8 storage changes
//!   in the prior (it runs the prior on the host and would double a live bundle's cost); the
//!   viewer reads `metrics.jsonl` beside the bundle.
//!
//! Both files are replaced atomically ([`crate::durable::write_atomic`]), so a reader sees a
//! whole old or a whole new bundle. [`due`] decides which checkpoints get one; [`LiveWriter`] is
//! the training loop's side: it prepares [`LiveBundles`] at the first checkpoint that needs them
//! and turns failures into warnings.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use mclr_shared::bundle::{self, ImageFormat, RunRecord, Thumbnails, WeightPrecision};

use super::sprites::sprite_sheet;
use super::{DEFAULT_TILE_PX, GalleryImages, Precision, RunFacts, assemble};
use crate::config::{Config, Method, RunConfig};
use crate::data::Split;
use crate::durable;
use crate::error::{Error, Result};
use crate::error_chain;
use crate::model::ssl::SslModel;
use crate::train::checkpoint::TrainState;

/// File name of the live bundle in a run directory.
pub const LIVE_BUNDLE_FILE: &str = "live.mclr";

/// File name of the live bundle's thumbnail sheet, beside it.
pub const LIVE_SHEET_FILE: &str = "live-thumbs.png";

/// Whether the checkpoint taken after `epochs_done` epochs gets a live bundle, in a run of
/// `total_epochs` with `run`'s settings: every [`RunConfig::live_every`]-th regular checkpoint
/// (counted from the start of the run, so resuming does not shift them) and the run's last one;
/// never with `live_every` = 0.
pub fn due(run: &RunConfig, epochs_done: u64, total_epochs: u64) -> bool {
    if run.live_every == 0 || epochs_done == 0 {
        return false;
    }
    if epochs_done == total_epochs {
        return true;
    }
    let every = run.checkpoint_every.max(1);
    epochs_done.is_multiple_of(every) && (epochs_done / every).is_multiple_of(run.live_every)
}

/// What writing one live bundle did.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveReport {
    /// The bundle written.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: usize,
    /// Whether the thumbnail sheet was (re)written too.
    pub sheet_written: bool,
    /// Seconds it took, from the model to the renamed file.
    pub seconds: f64,
}

/// What the live bundles of one training run share and is computed once: the gallery images and
/// labels, and the encoded thumbnail sheet.
pub struct LiveBundles {
    run_dir: PathBuf,
    gallery: GalleryImages,
    /// The encoded sheet, as `LIVE_SHEET_FILE` must hold it.
    sheet: Vec<u8>,
    /// The bundle's thumbnails section: the sheet's geometry and file name, no bytes.
    thumbnails: Thumbnails,
}

impl LiveBundles {
    /// Loads the live gallery of `config`'s dataset (the first `run.live_gallery` test images,
    /// from `config.data.dir`) and encodes its thumbnail sheet, for bundles in `run_dir`.
    ///
    /// # Errors
    /// Dataset errors if the test split cannot be read; [`Error::InvalidSetting`] if it has
    /// fewer than 2 images (the PCA needs two) or `run.live_gallery` is below 2; sheet errors.
    pub fn prepare(config: &Config, run_dir: &Path) -> Result<Self> {
        let wanted = config.run.live_gallery;
        if wanted < 2 {
            return Err(Error::InvalidSetting {
                setting: "run.live_gallery",
                expected: "at least 2 images (the PCA needs two)".into(),
                found: wanted.to_string(),
            });
        }
        let gallery = GalleryImages::load(
            config.dataset()?,
            &config.data.dir,
            Split::EvalTest,
            Some(wanted),
        )?;
        if gallery.len() < 2 {
            return Err(Error::InvalidSetting {
                setting: "run.live_gallery",
                expected: "a test split of at least 2 images".into(),
                found: gallery.len().to_string(),
            });
        }
        let mut thumbnails = sprite_sheet(&gallery.images, DEFAULT_TILE_PX, ImageFormat::Png)?;
        let sheet = std::mem::take(&mut thumbnails.sheet);
        thumbnails.sheet_file = Some(LIVE_SHEET_FILE.to_owned());
        bundle::check_sheet(&thumbnails, &sheet)?;
        Ok(Self {
            run_dir: run_dir.to_owned(),
            gallery,
            sheet,
            thumbnails,
        })
    }

    /// Images in the live gallery.
    pub fn gallery_len(&self) -> usize {
        self.gallery.len()
    }

    /// Writes `live.mclr` for `model` as it stands after `state`, and the thumbnail sheet if it
    /// is missing or differs. `config_toml` is recorded verbatim.
    ///
    /// # Errors
    /// [`Error::Bundle`] if the bundle assembled is invalid (a bug, not a condition of the
    /// run); tensor errors; [`Error::Io`] if a file cannot be written.
    pub fn write(
        &self,
        model: &SslModel,
        config: &Config,
        config_toml: &str,
        state: &TrainState,
        device: &Device,
    ) -> Result<LiveReport> {
        let started = Instant::now();
        let sheet_written = self.write_sheet()?;
        let facts = RunFacts {
            run_dir: &self.run_dir,
            config,
            config_toml,
            dataset: config.dataset()?,
            epochs_done: state.epochs_done,
            steps: state.step,
            metrics: std::collections::BTreeMap::new(),
            record: RunRecord {
                saved_unix_ms: now_unix_ms(),
                live: true,
                training_logs: Vec::new(),
            },
        };
        let bundle = assemble(
            model,
            &self.gallery,
            self.thumbnails.clone(),
            facts,
            &Precision {
                weights: WeightPrecision::default(),
                check_quantization: false,
                device,
            },
        )?;
        let bytes = bundle::encode(&bundle)?;
        let path = self.run_dir.join(LIVE_BUNDLE_FILE);
        durable::write_atomic(&path, &bytes)?;
        Ok(LiveReport {
            path,
            bytes: bytes.len(),
            sheet_written,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Writes the thumbnail sheet unless the file already holds exactly it; whether it wrote.
    fn write_sheet(&self) -> Result<bool> {
        let path = self.run_dir.join(LIVE_SHEET_FILE);
        match std::fs::read(&path) {
            Ok(current) if current == self.sheet => return Ok(false),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("reading", &path, e)),
        }
        durable::write_atomic(&path, &self.sheet)?;
        Ok(true)
    }
}

/// Milliseconds since the Unix epoch now (0 if the clock is before it).
fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The training loop's side of live bundles: which checkpoints get one ([`due`]), the
/// [`LiveBundles`] prepared at the first of them, and failures reported as warnings.
pub struct LiveWriter {
    run_dir: PathBuf,
    phase: Phase,
}

/// Where a [`LiveWriter`] stands.
enum Phase {
    /// No live bundles in this run (turned off, or not a ManifoldCLR run).
    Off,
    /// Not prepared yet: the first checkpoint that is due prepares it.
    Pending,
    /// Prepared.
    Ready(Box<LiveBundles>),
}

impl LiveWriter {
    /// The live-bundle writer of a run of `config` in `run_dir`; says once in the log if the run
    /// will have none (turned off, or a run without operators).
    pub fn new(config: &Config, run_dir: &Path) -> Self {
        let phase = if config.run.live_every == 0 {
            tracing::info!("no live bundles (run.live_every = 0, or --no-live)");
            Phase::Off
        } else if config.method.kind != Method::Manifoldclr {
            tracing::info!(
                "no live bundles: a {} run learns no operators for the viewer to show",
                config.method.kind.name()
            );
            Phase::Off
        } else {
            Phase::Pending
        };
        Self {
            run_dir: run_dir.to_owned(),
            phase,
        }
    }

    /// Called after the checkpoint of `state.epochs_done` is committed: writes the live bundle
    /// if one is due (see [`due`]; `total_epochs` is the run's length).
    ///
    /// A live bundle is a view of the run, not part of it: nothing in training or resuming reads
    /// it, and the checkpoint it shows is already safe on disk. So a failure to prepare or write
    /// one (a missing test split, a full disk, a device error) is logged as a warning and
    /// training goes on; a missing test split turns live bundles off for the rest of the run
    /// rather than warning at every checkpoint.
    ///
    /// # Errors
    /// Only [`Error::Bundle`]: the trainer assembled a bundle that breaks the format's rules,
    /// which is a bug to fix rather than a condition to live with.
    pub fn at_checkpoint(
        &mut self,
        model: &SslModel,
        config: &Config,
        config_toml: &str,
        state: &TrainState,
        device: &Device,
    ) -> Result<()> {
        if !due(&config.run, state.epochs_done, config.optim.epochs) {
            return Ok(());
        }
        if matches!(self.phase, Phase::Pending) {
            let started = Instant::now();
            match LiveBundles::prepare(config, &self.run_dir) {
                Ok(live) => {
                    tracing::info!(
                        "live bundles: a gallery of the first {} test images, prepared in {:.2} s",
                        live.gallery_len(),
                        started.elapsed().as_secs_f64()
                    );
                    self.phase = Phase::Ready(Box::new(live));
                }
                Err(e) => {
                    tracing::warn!(
                        "no live bundles in this run: preparing the live gallery failed: {}",
                        error_chain(&e)
                    );
                    self.phase = Phase::Off;
                    return Ok(());
                }
            }
        }
        let Phase::Ready(live) = &self.phase else {
            return Ok(());
        };
        match live.write(model, config, config_toml, state, device) {
            Ok(report) => {
                tracing::info!(
                    epoch = state.epochs_done,
                    "wrote {} ({} KiB{}) in {:.2} s",
                    report.path.display(),
                    report.bytes / 1024,
                    if report.sheet_written {
                        ", and its thumbnail sheet"
                    } else {
                        ""
                    },
                    report.seconds
                );
                Ok(())
            }
            Err(e @ Error::Bundle(_)) => Err(e),
            Err(e) => {
                tracing::warn!(
                    epoch = state.epochs_done,
                    "the live bundle was not written (training goes on): {}",
                    error_chain(&e)
                );
                Ok(())
            }
        }
    }
}
