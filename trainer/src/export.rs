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
//!   [`LaplaceSampler`] seeded with [`PRIOR_SEED`], so an export is deterministic.
//!
//! The bundle is [`validate`](mclr_shared::bundle::validate)d before it is returned, and
//! [`write_bundle`] writes it atomically (temporary file, then rename).
// Export reads the trained weights back by design: it is not part of a training step.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use image::{ImageEncoder as _, RgbImage};
use mclr_shared::bundle::{
    self, ArrayBlob, Bundle, FORMAT_VERSION, Gallery, ImageFormat, MlpWeights, OperatorStats,
    PcaBasis, RunMetadata, Thumbnails, WeightPrecision,
};
use mclr_shared::geometry::Pca;
use mclr_shared::operators::LaplaceSampler;

use crate::config::Method;
use crate::data::{self, ImageSet, Split};
use crate::error::{Error, Result};
use crate::eval::features;
use crate::model::coefficients::PriorNetwork;
use crate::run::{Run, Weights};
use crate::train::checkpoint;

/// File in a run directory that evaluation writes its results to; its numeric fields become the
/// bundle's metrics.
pub const RESULTS_FILE: &str = "results.json";

/// Principal axes stored in the bundle (the viewer plots two and can rotate into the third).
pub const PCA_COMPONENTS: usize = 3;

/// Prior samples drawn per gallery image for the usage and heatmap statistics.
pub const PRIOR_SAMPLES_PER_IMAGE: usize = 4;

/// Seed of the [`LaplaceSampler`] behind the operator statistics.
pub const PRIOR_SEED: u64 = 0x6d63_6c72; // "mclr"

/// Metric recording how much storing the weights at reduced precision changes the prior: the
/// largest |Δ| of its location and log-scale heads over the first gallery images, relative to the
/// largest |value| of the f32 heads.
pub const PRIOR_QUANTIZATION_METRIC: &str = "export_prior_rel_change";

/// Gallery images the quantisation check runs the prior on.
const QUANTIZATION_CHECK_IMAGES: usize = 256;

/// Images per forward pass when computing prior parameters.
const BATCH_SIZE: usize = features::BATCH_SIZE;

/// JPEG quality of a JPEG sprite sheet.
const JPEG_QUALITY: u8 = 85;

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
}

impl Default for ExportOptions {
    /// The test split, every image, CPU, 32 px PNG thumbnails, the config's data directory,
    /// int8 weights.
    fn default() -> Self {
        Self {
            gallery: Split::EvalTest,
            max: None,
            device: Device::Cpu,
            tile_px: 32,
            thumbnail_format: ImageFormat::Png,
            data_dir: None,
            weights: WeightPrecision::default(),
        }
    }
}

/// Builds the viewer bundle of the ManifoldCLR run in `run_dir` (see the module docs for what it
/// holds and how each section is computed). The result has passed
/// [`validate`](mclr_shared::bundle::validate).
///
/// # Errors
/// [`Error::Checkpoint`] if the run directory lacks its config, weights or state, or is a SimCLR
/// run (which has no operators to export); [`Error::InvalidSetting`] for a bad option (a gallery
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
    let device = &options.device;
    let model = run.model(Weights::Trained, device)?;
    let Some(manifold) = &model.manifold else {
        return Err(Error::Checkpoint {
            path: run_dir.to_owned(),
            reason: "the model has no operators".into(),
        });
    };

    // The gallery images.
    let data_dir = options.data_dir.as_ref().unwrap_or(&config.data.dir);
    let mut images = data::load(dataset, data_dir, options.gallery)?;
    if let Some(max) = options.max
        && max < images.len()
    {
        images = images.prefix(max)?;
    }
    let images = Arc::new(images);
    let Some(labels) = images.labels().map(<[u16]>::to_vec) else {
        return Err(Error::InvalidSetting {
            setting: "--gallery",
            expected: "a labelled split".into(),
            found: options.gallery.to_string(),
        });
    };
    let n = images.len();
    let operators = manifold.operators.to_operators()?;
    let (m, d) = (operators.num_operators(), operators.dim());

    let raw = features::extract(&model, &images, dataset, device, None)?;
    let features = ArrayBlob::from_f16_lossy(&[n, d], &raw)?;
    // Everything derived from the features uses the values the bundle stores.
    let stored = features.to_f32_vec()?;
    let source_indices = (0..n)
        .map(|i| u32::try_from(i).map_err(|_| too_many(n)))
        .collect::<Result<Vec<u32>>>()?;
    let class_names = images.class_names().to_vec();

    let pca = Pca::fit(&stored, n, d, PCA_COMPONENTS.min(d))?;
    let p = pca.explained_variance.len();
    let stats = operator_stats(
        &OperatorInputs {
            norms: operators.frobenius_norms(),
            features: &stored,
            labels: &labels,
            classes: class_names.len(),
            threshold: config.method.threshold,
        },
        &manifold.prior,
        device,
    )?;

    let prior = manifold.prior.export()?;
    let stored_prior = prior.with_precision(options.weights)?;
    let mut metrics = read_metrics(run_dir)?;
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

    let bundle = Bundle {
        metadata: RunMetadata {
            dataset: dataset.to_string(),
            method: method_name(config.method.kind).to_owned(),
            config_toml: run.config_toml.clone(),
            producer: format!("mclr {}", env!("CARGO_PKG_VERSION")),
            epochs: u32::try_from(state.epochs_done).unwrap_or(u32::MAX),
            steps: state.step,
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
        encoder: manifold.encoder.export()?.with_precision(options.weights)?,
        gallery: Gallery {
            split: gallery_name(options.gallery).to_owned(),
            features,
            labels: ArrayBlob::from_u16(&[n], &labels)?,
            class_names,
            source_indices: ArrayBlob::from_u32(&[n], &source_indices)?,
        },
        thumbnails: sprite_sheet(&images, options.tile_px, options.thumbnail_format)?,
        pca: PcaBasis {
            mean: ArrayBlob::from_f32(&[d], &pca.mean)?,
            components: ArrayBlob::from_f32(&[p, d], &pca.components)?,
            explained_variance: ArrayBlob::from_f32(&[p], &pca.explained_variance)?,
        },
        stats,
    };
    bundle::validate(&bundle)?;
    Ok(bundle)
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

/// A bundle read from a file, with what the file says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleFile {
    /// The decoded (and, for older versions, upgraded) contents.
    pub bundle: Bundle,
    /// The format version in the file's header (the contents are always the current version).
    pub format_version: u32,
    /// Size of the file in bytes.
    pub len: u64,
}

/// Reads and decodes the bundle file at `path` (bounded by
/// [`DEFAULT_MAX_PAYLOAD_BYTES`](bundle::DEFAULT_MAX_PAYLOAD_BYTES), checksummed and validated).
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; [`Error::Bundle`] with the typed reason if it is not
/// a valid bundle (bad magic, unsupported version, truncation, checksum, shapes, …).
pub fn read_bundle(path: &Path) -> Result<BundleFile> {
    use std::io::Read as _;
    // Only a regular file is read: a FIFO (whose opening alone blocks until a writer appears), a
    // device (/dev/zero never ends) or a directory is refused before opening, and checked again
    // on the opened handle in case the path was swapped; a file that grows while it is read is
    // cut at the limit below.
    let not_regular = || {
        Error::io(
            "reading",
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file (a bundle is read from a plain file, not a pipe, device or \
                 directory)",
            ),
        )
    };
    let before = std::fs::metadata(path).map_err(|source| Error::io("reading", path, source))?;
    if !before.is_file() {
        return Err(not_regular());
    }
    let file = std::fs::File::open(path).map_err(|source| Error::io("reading", path, source))?;
    let opened = file
        .metadata()
        .map_err(|source| Error::io("reading", path, source))?;
    if !opened.is_file() {
        return Err(not_regular());
    }
    let limit = bundle::DEFAULT_MAX_PAYLOAD_BYTES.saturating_add(bundle::HEADER_LEN as u64);
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| Error::io("reading", path, source))?;
    let len = bytes.len() as u64;
    if len > limit {
        return Err(mclr_shared::Error::TooLarge {
            what: "file".to_owned(),
            len,
            limit,
        }
        .into());
    }
    let bundle = bundle::decode(&bytes)?;
    // The header was checked by `decode`, so bytes 8..12 are its version.
    let format_version = bytes
        .get(8..12)
        .and_then(|v| <[u8; 4]>::try_from(v).ok())
        .map_or(FORMAT_VERSION, u32::from_le_bytes);
    Ok(BundleFile {
        bundle,
        format_version,
        len: bytes.len() as u64,
    })
}

/// A readable multi-line summary of a bundle file, as `mclr inspect` prints it: format version
/// and size, section sizes, run metadata, shapes, gallery, thumbnails, PCA, the operators by norm
/// with their usage, and the metrics.
pub fn summarize(file: &BundleFile) -> String {
    let bundle = &file.bundle;
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored on purpose.
    let mib = |bytes: usize| bytes as f64 / (1024.0 * 1024.0);
    let meta = &bundle.metadata;
    let _ = writeln!(
        out,
        "mclr bundle, format v{}, {} bytes ({:.2} MiB)",
        file.format_version,
        file.len,
        file.len as f64 / (1024.0 * 1024.0)
    );
    let _ = writeln!(
        out,
        "run:        {} on {}, {} epochs ({} steps), threshold ζ = {}",
        escape(&meta.method),
        escape(&meta.dataset),
        meta.epochs,
        meta.steps,
        meta.threshold
    );
    let _ = writeln!(out, "producer:   {}", escape(&meta.producer));
    let (m, k, n, d) = (
        bundle.num_operators(),
        bundle.blocks(),
        bundle.block_size(),
        bundle.feature_dim(),
    );
    let _ = writeln!(
        out,
        "operators:  M = {m}, K = {k} blocks of n = {n}, d = {d}"
    );
    let mlp_bytes = MlpWeights::stored_bytes;
    let widths = |w: &MlpWeights| -> String {
        w.trunk
            .iter()
            .map(|l| l.weight.shape.first().copied().unwrap_or(0).to_string())
            .collect::<Vec<_>>()
            .join("→")
    };
    let _ = writeln!(
        out,
        "networks:   {} weights; prior trunk {} ({:.2} MiB), encoder trunk {} ({:.2} MiB)",
        bundle
            .prior
            .trunk
            .first()
            .map_or("?", |l| l.weight.dtype.name()),
        widths(&bundle.prior),
        mib(mlp_bytes(&bundle.prior)),
        widths(&bundle.encoder),
        mib(mlp_bytes(&bundle.encoder)),
    );
    let gallery = &bundle.gallery;
    let _ = writeln!(
        out,
        "gallery:    N = {} {} images, {} features ({:.2} MiB), {} classes: {}",
        bundle.num_gallery(),
        escape(&gallery.split),
        gallery.features.dtype,
        mib(gallery.features.data.len()),
        bundle.num_classes(),
        gallery
            .class_names
            .iter()
            .map(|name| escape(name))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let thumbs = &bundle.thumbnails;
    let rows = thumbs.count.div_ceil(thumbs.columns.max(1));
    let _ = writeln!(
        out,
        "thumbnails: {} tiles of {} px, {} × {} tiles ({} × {} px), {:?} {:.2} MiB",
        thumbs.count,
        thumbs.tile_px,
        thumbs.columns,
        rows,
        u64::from(thumbs.columns) * u64::from(thumbs.tile_px),
        u64::from(rows) * u64::from(thumbs.tile_px),
        thumbs.format,
        mib(thumbs.sheet.len())
    );
    let variance = bundle
        .pca
        .explained_variance
        .to_f32_vec()
        .unwrap_or_default();
    let listed: Vec<String> = variance.iter().map(|v| format!("{v:.4}")).collect();
    let _ = writeln!(
        out,
        "pca:        {} components, explained variance {}",
        variance.len(),
        listed.join(", ")
    );
    let norms = bundle.stats.norms.to_f32_vec().unwrap_or_default();
    let usage = bundle.stats.usage.to_f32_vec().unwrap_or_default();
    let mut order: Vec<usize> = (0..norms.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (norms.get(a).copied(), norms.get(b).copied());
        y.unwrap_or(0.0).total_cmp(&x.unwrap_or(0.0))
    });
    let _ = writeln!(out, "top operators by norm:");
    for &i in order.iter().take(10) {
        let _ = writeln!(
            out,
            "  Ψ_{i:<4} norm {:>10.4}  usage {:>5.1}%",
            norms.get(i).copied().unwrap_or(0.0),
            100.0 * usage.get(i).copied().unwrap_or(0.0)
        );
    }
    if meta.metrics.is_empty() {
        let _ = writeln!(out, "metrics:    none");
    } else {
        let _ = writeln!(out, "metrics:");
        for (name, value) in &meta.metrics {
            let _ = writeln!(out, "  {} = {value}", escape(name));
        }
    }
    out
}

/// `text` safe to print to a terminal: control characters (C0, DEL, C1: the escape sequences that
/// clear the screen, set the window title or write the clipboard) and the Unicode bidirectional
/// overrides and isolates are written as `\u{…}`, and a backslash as `\\`, so that the output
/// shows what the bundle holds without acting on it. Other text, non-ASCII included, is kept.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || bidi {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    out
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
/// (`linear.top1`, `knn.k20.top1`; array elements by index), non-finite values skipped.
fn read_metrics(run_dir: &Path) -> Result<BTreeMap<String, f64>> {
    let path = run_dir.join(RESULTS_FILE);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(Error::io("reading", &path, e)),
    };
    let value: serde_json::Value = serde_json::from_slice(&text).map_err(|e| Error::Parse {
        path: path.clone(),
        line: e.line(),
        reason: e.to_string(),
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
                flatten_numbers(&join(&i.to_string()), item, out);
            }
        }
        serde_json::Value::Null | serde_json::Value::Bool(_) | serde_json::Value::String(_) => {}
    }
}

/// What the operator statistics are computed from.
struct OperatorInputs<'a> {
    /// Frobenius norm of each Ψ_m.
    norms: Vec<f32>,
    /// Stored gallery features, N × d.
    features: &'a [f32],
    /// Class of each gallery image.
    labels: &'a [u16],
    /// Number of classes C.
    classes: usize,
    /// Soft threshold ζ.
    threshold: f32,
}

/// Norms, usage and the class × operator heatmap (see the module docs), from
/// [`PRIOR_SAMPLES_PER_IMAGE`] prior samples per gallery image.
fn operator_stats(
    inputs: &OperatorInputs<'_>,
    prior: &PriorNetwork,
    device: &Device,
) -> Result<OperatorStats> {
    let m = inputs.norms.len();
    let d = prior.feature_dim();
    let mut sampler = LaplaceSampler::new(PRIOR_SEED);
    let mut nonzero = vec![0_u64; m];
    let mut class_sum = vec![0.0_f64; inputs.classes.saturating_mul(m)];
    let mut class_count = vec![0_u64; inputs.classes];
    let mut samples = 0_u64;
    let rows_per_batch = BATCH_SIZE.saturating_mul(d);
    for (chunk, labels) in inputs
        .features
        .chunks(rows_per_batch.max(1))
        .zip(inputs.labels.chunks(BATCH_SIZE))
    {
        let z = Tensor::from_slice(chunk, (labels.len(), d), device)?;
        let heads = prior.forward(&z)?;
        let loc = heads.loc.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        let logscale = heads.logscale.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        for ((loc, logscale), &label) in loc.iter().zip(&logscale).zip(labels) {
            let c = sampler.sample(loc, logscale, inputs.threshold, PRIOR_SAMPLES_PER_IMAGE)?;
            let class = usize::from(label);
            if let Some(count) = class_count.get_mut(class) {
                *count += PRIOR_SAMPLES_PER_IMAGE as u64;
            }
            for draw in c.chunks_exact(m.max(1)) {
                samples += 1;
                for (j, &value) in draw.iter().enumerate() {
                    if value != 0.0
                        && let Some(slot) = nonzero.get_mut(j)
                    {
                        *slot += 1;
                    }
                    if let Some(slot) = class_sum.get_mut(class * m + j) {
                        *slot += f64::from(value.abs());
                    }
                }
            }
        }
    }
    let usage: Vec<f32> = nonzero
        .iter()
        .map(|&k| (k as f64 / samples.max(1) as f64) as f32)
        .collect();
    let heatmap: Vec<f32> = class_sum
        .chunks_exact(m.max(1))
        .zip(&class_count)
        .flat_map(|(row, &count)| row.iter().map(move |&s| (s / count.max(1) as f64) as f32))
        .collect();
    Ok(OperatorStats {
        norms: ArrayBlob::from_f32(&[m], &inputs.norms)?,
        usage: ArrayBlob::from_f32(&[m], &usage)?,
        class_heatmap: ArrayBlob::from_f32(&[inputs.classes, m], &heatmap)?,
    })
}

/// One sprite sheet of every image as a `tile_px` tile (resized with a triangle filter when the
/// images are another size), ⌈√N⌉ columns, unused cells black, encoded as `format`.
fn sprite_sheet(images: &ImageSet, tile_px: u32, format: ImageFormat) -> Result<Thumbnails> {
    let count = u32::try_from(images.len()).map_err(|_| too_many(images.len()))?;
    let columns = (1..=count.max(1))
        .find(|c| c.saturating_mul(*c) >= count)
        .unwrap_or(1);
    let rows = count.div_ceil(columns).max(1);
    let too_large = || Error::InvalidSetting {
        setting: "--tile-px",
        expected: "a sprite sheet of at most 65535 pixels per side".into(),
        found: format!("{tile_px} px tiles in {columns} columns and {rows} rows"),
    };
    let width = columns
        .checked_mul(tile_px)
        .filter(|&w| w <= 65_535)
        .ok_or_else(too_large)?;
    let height = rows
        .checked_mul(tile_px)
        .filter(|&h| h <= 65_535)
        .ok_or_else(too_large)?;
    let (h, w) = (
        u32::try_from(images.height()).map_err(|_| too_large())?,
        u32::try_from(images.width()).map_err(|_| too_large())?,
    );
    let mut sheet = RgbImage::new(width, height);
    for i in 0..count {
        let Some(pixels) = images.image(i as usize) else {
            continue;
        };
        let Some(image) = RgbImage::from_raw(w, h, pixels.to_vec()) else {
            continue;
        };
        let tile = if (w, h) == (tile_px, tile_px) {
            image
        } else {
            image::imageops::resize(
                &image,
                tile_px,
                tile_px,
                image::imageops::FilterType::Triangle,
            )
        };
        let (x, y) = (
            i64::from((i % columns) * tile_px),
            i64::from((i / columns) * tile_px),
        );
        image::imageops::replace(&mut sheet, &tile, x, y);
    }
    let mut encoded = Vec::new();
    let result = match format {
        ImageFormat::Png => image::codecs::png::PngEncoder::new_with_quality(
            &mut encoded,
            image::codecs::png::CompressionType::Best,
            image::codecs::png::FilterType::Adaptive,
        )
        .write_image(
            sheet.as_raw(),
            width,
            height,
            image::ExtendedColorType::Rgb8,
        ),
        ImageFormat::Jpeg => {
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut encoded, JPEG_QUALITY)
                .write_image(
                    sheet.as_raw(),
                    width,
                    height,
                    image::ExtendedColorType::Rgb8,
                )
        }
    };
    result.map_err(|e| {
        mclr_shared::Error::invalid("thumbnails.sheet", format!("encoding failed: {e}"))
    })?;
    Ok(Thumbnails {
        format,
        tile_px,
        columns,
        count,
        sheet: encoded,
    })
}
