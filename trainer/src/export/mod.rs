//! `mclr export` and `mclr inspect`: a finished ManifoldCLR run as a viewer bundle,
//! and a readable summary of a bundle file.
//!
//! [`export_run`] reads the run directory (`config.toml`, `model.safetensors`, `state.json` and,
//! if present, `results.json`), rebuilds the model and computes, on the run's device:
//!
//! * **gallery features**: frozen backbone features (eval mode, the dataset's eval transform) of
//!   the *first N* images of the chosen split in dataset order, stored as f16. First-N rather than a
//!   stratified draw keeps `source_indices` a simple prefix and the export reproducible; the
//!   official test splits are not sorted by class, so a prefix of a few hundred images already
//!   covers every class;
//! * **thumbnails**: the same images (untransformed) as one sprite sheet of `tile_px` tiles,
//!   ⌈√N⌉ columns, tile i at column `i % columns`, row `i / columns`;
//! * **PCA**: [`PCA_COMPONENTS`] principal axes of the stored (f16-rounded) features, so the
//!   viewer projects exactly the values it holds;
//! * **operator statistics**: the Frobenius norm of each Ψ_m; the *usage* of each operator, the
//!   fraction of prior samples with `c_m ≠ 0`; and the class × operator heatmap, the mean `|c_m|`
//!   per class. The samples are [`PRIOR_SAMPLES_PER_IMAGE`] draws per gallery image from the fully
//!   warmed prior p(c | z) at the stored feature, with the run's soft threshold ζ and the shared
//!   [`LaplaceSampler`](mclr_shared::operators::LaplaceSampler) seeded with [`PRIOR_SEED`], so an export is deterministic.
//!
//! The bundle is [`validate`](mclr_shared::bundle::validate)d before it is returned, and
//! [`write_bundle`] writes it atomically (temporary file, then rename).
//!
//! The sections that are jobs of their own live in their own modules: `stats` (the operator
//! statistics from prior samples), `sprites` (the thumbnail sprite sheet) and `inspect` (reading
//! a bundle file back and `mclr inspect`'s terminal-safe summary). [`live`] writes the light
//! bundles of a run still training with the same assembly. This module assembles the bundle
//! (one function, `assemble`, for both) and writes it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;
use mclr_shared::bundle::{
    self, ArrayBlob, Bundle, Gallery, ImageFormat, MlpWeights, PcaBasis, RunMetadata, RunRecord,
    Thumbnails, TrainingLog, WeightPrecision,
};
use mclr_shared::geometry::Pca;

use crate::config::{Config, Method};
use crate::data::{self, DatasetName, ImageSet, Split};
use crate::error::{Error, Result};
use crate::eval::features;
use crate::model::ssl::SslModel;
use crate::run::{Run, Weights};
use crate::train::checkpoint;

/// File in a run directory that evaluation writes its results to; its numeric fields become the
/// bundle's metrics.
pub const RESULTS_FILE: &str = "results.json";

/// Principal axes stored in the bundle (the viewer plots two and can rotate into the third).
pub const PCA_COMPONENTS: usize = 3;

/// Prior samples drawn per gallery image for the usage and heatmap statistics.
pub const PRIOR_SAMPLES_PER_IMAGE: usize = 4;

/// Seed of the [`LaplaceSampler`](mclr_shared::operators::LaplaceSampler) behind the operator statistics.
pub const PRIOR_SEED: u64 = 0x6d63_6c72; // "mclr"

/// Metric recording how much storing the weights at reduced precision changes the prior: the
/// largest |Δ| of its location and log-scale heads over the first gallery images, relative to the
/// largest |value| of the f32 heads.
pub const PRIOR_QUANTIZATION_METRIC: &str = "export_prior_rel_change";

/// Gallery images the quantisation check runs the prior on.
const QUANTIZATION_CHECK_IMAGES: usize = 256;

/// Thumbnail side in pixels of `mclr export` (`--tile-px`) and of live bundles.
pub const DEFAULT_TILE_PX: u32 = 32;

/// Images per forward pass when computing prior parameters.
const BATCH_SIZE: usize = features::BATCH_SIZE;

mod inspect;
pub mod live;
mod sprites;
mod stats;

pub use inspect::{BundleFile, escape, read_bundle, summarise};

use sprites::sprite_sheet;
use stats::{OperatorInputs, operator_stats};

/// How to export a run (what to export is the run directory).
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Split the gallery images come from: [`Split::EvalTest`] (default) or [`Split::EvalTrain`].
    pub gallery: Split,
    /// Export only the first `max` images of the split (at least 2, for the PCA); all if `None`.
    pub max: Option<usize>,
    /// Where the model runs.
    pub device: Device,
    /// Width and height of one thumbnail in pixels (default 32).
    pub tile_px: u32,
    /// Encoding of the sprite sheet: PNG (default, lossless) or JPEG (about a fifth of the size).
    pub thumbnail_format: ImageFormat,
    /// Read the dataset from here instead of the run config's `data.dir`.
    pub data_dir: Option<PathBuf>,
    /// Storage precision of the prior and encoder weights (default int8: a 10k-image bundle of
    /// a d = 64 run is then well under 20 MB). The largest change this makes to the prior's
    /// outputs on the gallery is recorded in the bundle's metrics.
    pub weights: WeightPrecision,
    /// Runs on the same dataset to record beside this one (e.g. SimCLR at the same budget):
    /// each one's `results.json` numbers go into the bundle's metrics under
    /// `compare.<label>.` ([`bundle::COMPARE_PREFIX`]) and its `metrics.jsonl` becomes one more training
    /// log, where `<label>` is its method (`simclr`), or its folder name when two share a method.
    pub compare: Vec<PathBuf>,
}

impl Default for ExportOptions {
    /// The test split, every image, CPU, 32 px PNG thumbnails, the config's data directory,
    /// int8 weights.
    fn default() -> Self {
        Self {
            gallery: Split::EvalTest,
            max: None,
            device: Device::Cpu,
            tile_px: DEFAULT_TILE_PX,
            thumbnail_format: ImageFormat::Png,
            data_dir: None,
            weights: WeightPrecision::default(),
            compare: Vec::new(),
        }
    }
}

/// Builds the viewer bundle of the ManifoldCLR run in `run_dir` (see the module docs for what it
/// holds and how each section is computed). The result has passed
/// [`validate`](mclr_shared::bundle::validate).
///
/// # Errors
/// [`Error::Checkpoint`] or [`Error::CheckpointData`] if the run directory lacks its config,
/// weights or state, or is a SimCLR run (which has no operators to export); [`Error::InvalidSetting`] for a bad option (a gallery
/// split other than eval-test or eval-train, `max` below 2, a zero tile size, an unlabelled split);
/// dataset errors if the split cannot be read; [`Error::Bundle`] if a section cannot be built.
pub fn export_run(run_dir: &Path, options: &ExportOptions) -> Result<Bundle> {
    check_options(options)?;
    let run = Run::open(run_dir, &[])?;
    let (config, dataset) = (&run.config, run.dataset);
    if config.method.kind != Method::Manifoldclr {
        return Err(Error::Checkpoint {
            path: run_dir.to_owned(),
            reason: format!(
                "is a {} run, which learns no operators; only ManifoldCLR runs can be exported \
                 as viewer bundles",
                method_name(config.method.kind)
            ),
        });
    }
    let state = run.state()?;
    let model = run.model(Weights::Trained, &options.device)?;
    let data_dir = options.data_dir.as_ref().unwrap_or(&config.data.dir);
    let gallery = GalleryImages::load(dataset, data_dir, options.gallery, options.max)?;
    let thumbnails = sprite_sheet(&gallery.images, options.tile_px, options.thumbnail_format)?;
    let mut metrics = read_metrics(run_dir)?;
    let mut record = run_record(run_dir, method_name(config.method.kind))?;
    add_compared_runs(&options.compare, &run, &mut metrics, &mut record)?;
    let facts = RunFacts {
        run_dir,
        config,
        config_toml: &run.config_toml,
        dataset,
        epochs_done: state.epochs_done,
        steps: state.step,
        metrics,
        record,
    };
    let bundle = assemble(
        &model,
        &gallery,
        thumbnails,
        facts,
        &Precision {
            weights: options.weights,
            check_quantization: true,
            device: &options.device,
        },
    )?;
    bundle::validate(&bundle)?;
    Ok(bundle)
}

/// The gallery images of a bundle, loaded once: the first images of a labelled split, in
/// dataset order, with their labels.
pub(crate) struct GalleryImages {
    /// The images.
    pub(crate) images: Arc<ImageSet>,
    /// Their labels.
    pub(crate) labels: Vec<u16>,
    /// The split they come from.
    pub(crate) split: Split,
}

impl GalleryImages {
    /// The first `max` images of `split` (all if `None` or fewer), read from `data_dir`.
    ///
    /// # Errors
    /// Dataset errors; [`Error::InvalidSetting`] for an unlabelled split.
    pub(crate) fn load(
        dataset: DatasetName,
        data_dir: &Path,
        split: Split,
        max: Option<usize>,
    ) -> Result<Self> {
        let mut images = data::load(dataset, data_dir, split)?;
        if let Some(max) = max
            && max < images.len()
        {
            images = images.prefix(max)?;
        }
        let Some(labels) = images.labels().map(<[u16]>::to_vec) else {
            return Err(Error::InvalidSetting {
                setting: "--gallery",
                expected: "a labelled split".into(),
                found: split.to_string(),
            });
        };
        Ok(Self {
            images: Arc::new(images),
            labels,
            split,
        })
    }

    /// Number of images.
    pub(crate) fn len(&self) -> usize {
        self.labels.len()
    }
}

/// What a bundle records about its run besides what it computes from the model.
pub(crate) struct RunFacts<'a> {
    /// The run directory (named in errors).
    pub(crate) run_dir: &'a Path,
    /// The run's resolved config.
    pub(crate) config: &'a Config,
    /// `config.toml` verbatim.
    pub(crate) config_toml: &'a str,
    /// The dataset it trains on.
    pub(crate) dataset: DatasetName,
    /// Epochs completed by the model.
    pub(crate) epochs_done: u64,
    /// Steps completed by the model.
    pub(crate) steps: u64,
    /// Evaluation results to record (the quantisation change is added).
    pub(crate) metrics: BTreeMap<String, f64>,
    /// The run record (save time, live flag, training logs).
    pub(crate) record: RunRecord,
}

/// Where the model runs and how precisely its heads are stored.
pub(crate) struct Precision<'a> {
    /// Storage precision of the prior and encoder weights.
    pub(crate) weights: WeightPrecision,
    /// Whether to measure and record ([`PRIOR_QUANTIZATION_METRIC`]) how much that precision
    /// changes the prior's outputs. It runs the prior on the host, twice: about 1.5 s for a
    /// demo-sized run, which a live bundle at every checkpoint cannot afford.
    pub(crate) check_quantization: bool,
    /// Where the model runs.
    pub(crate) device: &'a Device,
}

/// The one assembly of a bundle from a ManifoldCLR model, shared by `mclr export` and the live
/// bundles of a training run: gallery features recomputed by `model` in eval mode, PCA of the
/// stored features, operator statistics from seeded prior samples, the prior and encoder at
/// `precision.weights` (with `precision.check_quantization`, the change this makes to the prior
/// recorded in the metrics), and the given `thumbnails` and `facts`. The caller validates the
/// result.
///
/// # Errors
/// [`Error::Checkpoint`] if the model has no operators; tensor errors; [`Error::Bundle`] if a section cannot be built.
pub(crate) fn assemble(
    model: &SslModel,
    gallery: &GalleryImages,
    thumbnails: Thumbnails,
    facts: RunFacts<'_>,
    precision: &Precision<'_>,
) -> Result<Bundle> {
    let (config, dataset, device) = (facts.config, facts.dataset, precision.device);
    let Some(manifold) = &model.manifold else {
        return Err(Error::Checkpoint {
            path: facts.run_dir.to_owned(),
            reason: "the model has no operators".into(),
        });
    };
    let n = gallery.len();
    let operators = manifold.operators.to_operators()?;
    let (m, d) = (operators.num_operators(), operators.dim());

    let raw = features::extract(model, &gallery.images, dataset, device, None)?;
    let features = ArrayBlob::from_f16_lossy(&[n, d], &raw)?;
    // Everything derived from the features uses the values the bundle stores.
    let stored = features.to_f32_vec()?;
    let source_indices = (0..n)
        .map(|i| u32::try_from(i).map_err(|_| too_many(n)))
        .collect::<Result<Vec<u32>>>()?;
    let class_names = gallery.images.class_names().to_vec();

    let pca = Pca::fit(&stored, n, d, PCA_COMPONENTS.min(d))?;
    let p = pca.explained_variance.len();
    let stats = operator_stats(
        &OperatorInputs {
            norms: operators.frobenius_norms(),
            features: &stored,
            labels: &gallery.labels,
            classes: class_names.len(),
            threshold: config.method.threshold,
        },
        &manifold.prior,
        device,
    )?;

    let prior = manifold.prior.export()?;
    let stored_prior = prior.with_precision(precision.weights)?;
    let mut metrics = facts.metrics;
    if precision.check_quantization {
        metrics.insert(
            PRIOR_QUANTIZATION_METRIC.to_owned(),
            f64::from(prior_output_change(
                &prior,
                &stored_prior,
                &stored,
                d,
                QUANTIZATION_CHECK_IMAGES,
            )?),
        );
    }

    Ok(Bundle {
        metadata: RunMetadata {
            dataset: dataset.to_string(),
            method: method_name(config.method.kind).to_owned(),
            config_toml: facts.config_toml.to_owned(),
            producer: format!("mclr {}", env!("CARGO_PKG_VERSION")),
            epochs: u32::try_from(facts.epochs_done).unwrap_or(u32::MAX),
            steps: facts.steps,
            threshold: config.method.threshold,
            metrics,
        },
        operators: ArrayBlob::from_f32(
            &[
                m,
                operators.blocks(),
                operators.block_size(),
                operators.block_size(),
            ],
            operators.as_slice(),
        )?,
        prior: stored_prior,
        encoder: manifold
            .encoder
            .export()?
            .with_precision(precision.weights)?,
        gallery: Gallery {
            split: gallery_name(gallery.split).to_owned(),
            features,
            labels: ArrayBlob::from_u16(&[n], &gallery.labels)?,
            class_names,
            source_indices: ArrayBlob::from_u32(&[n], &source_indices)?,
        },
        thumbnails,
        pca: PcaBasis {
            mean: ArrayBlob::from_f32(&[d], &pca.mean)?,
            components: ArrayBlob::from_f32(&[p, d], &pca.components)?,
            explained_variance: ArrayBlob::from_f32(&[p], &pca.explained_variance)?,
        },
        stats,
        run: facts.record,
    })
}

/// The bundle's run record for the run in `run_dir`: its `metrics.jsonl` as the one training log
/// (labelled `label`), and the time its published model was saved.
fn run_record(run_dir: &Path, label: &str) -> Result<RunRecord> {
    let model = run_dir.join(checkpoint::MODEL_FILE);
    let saved_unix_ms = std::fs::metadata(&model)
        .and_then(|m| m.modified())
        .map_err(|e| Error::io("reading the time of", &model, e))?
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Ok(RunRecord {
        saved_unix_ms,
        live: false,
        training_logs: training_log(run_dir, label)?.into_iter().collect(),
    })
}

/// The run's `metrics.jsonl` labelled `label`, if it has one.
fn training_log(run_dir: &Path, label: &str) -> Result<Option<TrainingLog>> {
    let log_path = run_dir.join(checkpoint::METRICS_FILE);
    match std::fs::read_to_string(&log_path) {
        Ok(jsonl) => Ok(Some(TrainingLog {
            label: label.to_owned(),
            jsonl,
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading", &log_path, e)),
    }
}

/// Adds each run of `compared` to `metrics` (its `results.json` under `compare.<label>.`) and to
/// `record` (its `metrics.jsonl`, labelled `<label>`): see [`ExportOptions::compare`].
fn add_compared_runs(
    compared: &[PathBuf],
    exported: &Run,
    metrics: &mut BTreeMap<String, f64>,
    record: &mut RunRecord,
) -> Result<()> {
    let runs = compared
        .iter()
        .map(|dir| Run::open(dir, &[]))
        .collect::<Result<Vec<_>>>()?;
    for run in &runs {
        if run.dataset != exported.dataset {
            return Err(Error::Checkpoint {
                path: run.dir.clone(),
                reason: format!(
                    "was trained on {}, not {} as the exported run: a comparison needs the same \
                     dataset",
                    run.config.data.dataset, exported.config.data.dataset
                ),
            });
        }
    }
    let method = |run: &Run| method_name(run.config.method.kind);
    for run in &runs {
        let shared = runs
            .iter()
            .filter(|other| method(other) == method(run))
            .count()
            > 1
            || method(run) == method(exported);
        // A label is one segment of the dotted metric names: no dots in it.
        let label = if shared {
            run.dir.file_name().map_or_else(
                || method(run).to_owned(),
                |n| n.to_string_lossy().replace('.', "-"),
            )
        } else {
            method(run).to_owned()
        };
        for (key, value) in read_metrics(&run.dir)? {
            metrics.insert(format!("{}.{label}.{key}", bundle::COMPARE_PREFIX), value);
        }
        record.training_logs.extend(training_log(&run.dir, &label)?);
    }
    Ok(())
}

/// Largest change of the prior's raw heads when its weights go from `exact` to `stored`, over the
/// first `images` rows of `features` (rows of `d`), relative to the largest head magnitude.
fn prior_output_change(
    exact: &MlpWeights,
    stored: &MlpWeights,
    features: &[f32],
    d: usize,
    images: usize,
) -> Result<f32> {
    let (exact, stored) = (exact.to_mlp("prior")?, stored.to_mlp("prior")?);
    let rows = features.len().checked_div(d).unwrap_or(0).min(images);
    let x = features.get(..rows * d).unwrap_or_default();
    let (a, b) = (exact.forward(x)?, stored.forward(x)?);
    let mut max_diff = 0.0_f32;
    let mut max_value = 0.0_f32;
    for (u, v) in a
        .scale
        .iter()
        .chain(&a.loc)
        .zip(b.scale.iter().chain(&b.loc))
    {
        max_diff = max_diff.max((u - v).abs());
        max_value = max_value.max(u.abs());
    }
    Ok(if max_value > 0.0 {
        max_diff / max_value
    } else {
        max_diff
    })
}

/// Encodes `bundle` and writes it to `path` atomically: through a temporary file in the same
/// folder and a rename, so an interrupted export never leaves a half-written bundle at `path`.
///
/// # Errors
/// [`Error::Bundle`] if the bundle is invalid or too large to encode; [`Error::Io`] if the file
/// cannot be written.
pub fn write_bundle(path: &Path, bundle: &Bundle) -> Result<()> {
    let bytes = bundle::encode(bundle)?;
    checkpoint::write_atomic(path, &bytes)
}

/// Rejects options that cannot give a valid bundle.
fn check_options(options: &ExportOptions) -> Result<()> {
    if !matches!(options.gallery, Split::EvalTest | Split::EvalTrain) {
        return Err(Error::InvalidSetting {
            setting: "--gallery",
            expected: "eval-test or eval-train".into(),
            found: options.gallery.to_string(),
        });
    }
    if options.max.is_some_and(|max| max < 2) {
        return Err(Error::InvalidSetting {
            setting: "--max",
            expected: "at least 2 images (the PCA needs two)".into(),
            found: options.max.map(|m| m.to_string()).unwrap_or_default(),
        });
    }
    if options.tile_px == 0 {
        return Err(Error::InvalidSetting {
            setting: "--tile-px",
            expected: "at least 1 pixel".into(),
            found: "0".into(),
        });
    }
    Ok(())
}

/// The method's name as configs spell it.
fn method_name(method: Method) -> &'static str {
    method.name()
}

/// The gallery's split as the bundle names it (`test` or `train`).
fn gallery_name(split: Split) -> &'static str {
    match split {
        Split::EvalTrain | Split::SslTrain => "train",
        Split::EvalTest => "test",
    }
}

/// An [`Error::InvalidSetting`] for a gallery too large for the format's u32 indices.
fn too_many(n: usize) -> Error {
    Error::InvalidSetting {
        setting: "--max",
        expected: "at most 2^32 gallery images".into(),
        found: n.to_string(),
    }
}

/// The numeric fields of the run's `results.json` (if any), flattened to dotted names
/// (`linear.top1`, `identity.clean.mean`; an array element by its `method` when it names one, as
/// `semi_supervised.pseudo-label.mean`, else by its index), non-finite values skipped.
fn read_metrics(run_dir: &Path) -> Result<BTreeMap<String, f64>> {
    let path = run_dir.join(RESULTS_FILE);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(Error::io("reading", &path, e)),
    };
    let value: serde_json::Value = serde_json::from_slice(&text).map_err(|source| Error::Json {
        action: "parse the JSON of",
        path: path.clone(),
        source,
    })?;
    let mut metrics = BTreeMap::new();
    flatten_numbers("", &value, &mut metrics);
    Ok(metrics)
}

/// Adds every finite number in `value` to `out` under its dotted path from `prefix`.
fn flatten_numbers(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, f64>) {
    let join = |key: &str| {
        if prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{prefix}.{key}")
        }
    };
    match value {
        serde_json::Value::Number(number) => {
            if let Some(v) = number.as_f64().filter(|v| v.is_finite()) {
                out.insert(prefix.to_owned(), v);
            }
        }
        serde_json::Value::Object(fields) => {
            for (key, field) in fields {
                flatten_numbers(&join(key), field, out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let key = item
                    .get("method")
                    .and_then(serde_json::Value::as_str)
                    .map_or_else(|| i.to_string(), str::to_owned);
                flatten_numbers(&join(&key), item, out);
            }
        }
        serde_json::Value::Null | serde_json::Value::Bool(_) | serde_json::Value::String(_) => {}
    }
}
