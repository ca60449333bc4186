//! `mclr eval RUN`: every protocol of docs/method.md §10 on one run's frozen features, with progress bars,
//! written as `results.json` (machine-readable) and `results.md` (a table with mean ± std where
//! there are trials).
//!
//! Features come from the run's backbone in eval mode with the eval transform ([`features`]): the
//! training split (first `eval.max_train` images, all by default) and the test split (first
//! `eval.max_test`). The same run can be evaluated with its trained weights or with its
//! architecture's seeded random initialisation ([`Weights::RandomInit`]), the baseline that says
//! how much training bought.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

use super::augment_nn::AugmentationNnConfig;
use super::identity::IdentityConfig;
use super::kmeans::evenly_spaced;
use super::linear::LinearProbe;
use super::report::Report;
use super::semisup::{self, Augmentation, Method as SemiMethod, SemiSupervisedConfig};
use super::{
    Features, KMeansConfig, KnnVote, LinearProbeConfig, augment_nn, features, identity,
    kmeans_purity, knn_accuracy,
};
use crate::augment::rng::StreamRng;
use crate::data::{self, ImageSet, Split};
use crate::error::{Error, Result};
use crate::model::ssl::{ManifoldParts, SslModel};
use crate::run::{Run, Weights};
use crate::sampling;

/// File the results are written to, in JSON (the bundle export reads its numbers).
pub use crate::export::RESULTS_FILE;

/// File the results table is written to, in Markdown.
pub const RESULTS_TABLE_FILE: &str = "results.md";

/// One evaluation protocol of docs/method.md §10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// Linear probe, top-1 and top-5.
    Linear,
    /// k-NN: k = 5 cosine majority, and k = 200 τ = 0.1 weighted.
    Knn,
    /// k-means purity.
    Kmeans,
    /// Few-labels semi-supervised classification, five augmentation methods.
    Semisup,
    /// Linear-probe accuracy under operator perturbations (ManifoldCLR runs).
    Identity,
    /// Label agreement of the nearest neighbours of prior-augmented features (ManifoldCLR runs).
    AugmentNn,
}

impl Protocol {
    /// Every protocol, in the order they run.
    pub const ALL: [Self; 6] = [
        Self::Linear,
        Self::Knn,
        Self::Kmeans,
        Self::Semisup,
        Self::Identity,
        Self::AugmentNn,
    ];

    /// The name used on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Linear => "linear",
            Self::Knn => "knn",
            Self::Kmeans => "kmeans",
            Self::Semisup => "semisup",
            Self::Identity => "identity",
            Self::AugmentNn => "augment-nn",
        }
    }

    /// Whether the protocol needs the learned operators (so it is skipped, with a note, for
    /// SimCLR runs).
    pub const fn needs_operators(self) -> bool {
        matches!(self, Self::Identity | Self::AugmentNn)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Protocol {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| Error::InvalidSetting {
                setting: "--protocols",
                expected: Self::ALL.map(Self::name).join(", "),
                found: s.to_owned(),
            })
    }
}

/// How to evaluate a run.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Protocols to run (in [`Protocol::ALL`] order, whatever the order given).
    pub protocols: Vec<Protocol>,
    /// Trained weights, or the random-initialisation baseline.
    pub weights: Weights,
    /// Where the backbone and the protocols run.
    pub device: Device,
    /// Read the dataset from here instead of the run config's `data.dir`.
    pub data_dir: Option<PathBuf>,
    /// Draw progress bars on stderr.
    pub progress: bool,
}

/// What `mclr eval` writes: where the numbers come from, and the numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalResults {
    /// The run's config name.
    pub run: String,
    /// `trained` or `random-init`.
    pub weights: String,
    /// Dataset evaluated on.
    pub dataset: String,
    /// Epochs the run had trained when evaluated.
    pub epochs: u64,
    /// Training rows the protocols used.
    pub train_rows: usize,
    /// Test rows the protocols used.
    pub test_rows: usize,
    /// Feature dimension d.
    pub feature_dim: usize,
    /// Wall-clock seconds per step (`features` and each protocol).
    pub seconds: BTreeMap<String, f64>,
    /// Protocols not run, with the reason.
    pub skipped: BTreeMap<String, String>,
    /// The protocols' results.
    #[serde(flatten)]
    pub report: Report,
}

/// Evaluates `run` (see the module docs).
///
/// # Errors
/// Dataset errors if the splits cannot be read, [`Error::Checkpoint`] if the weights cannot be
/// loaded, and the protocols' own errors.
pub fn evaluate(run: &Run, options: &EvalOptions) -> Result<EvalResults> {
    let device = &options.device;
    let state = run.state()?;
    let model = run.model(options.weights, device)?;
    let eval = &run.config.eval;
    let data_dir = options.data_dir.as_ref().unwrap_or(&run.config.data.dir);
    let mut seconds = BTreeMap::new();
    let bars = Bars::new(options.progress);

    let started = Instant::now();
    let train = split_features(
        run,
        &model,
        data_dir,
        Split::EvalTrain,
        eval.max_train,
        &bars,
        device,
    )?;
    let test = split_features(
        run,
        &model,
        data_dir,
        Split::EvalTest,
        eval.max_test,
        &bars,
        device,
    )?;
    seconds.insert("features".to_owned(), started.elapsed().as_secs_f64());

    let mut report = Report::default();
    let mut skipped = BTreeMap::new();
    let seed = run.config.run.seed;
    // One linear probe, trained on the clean training features, serves both the linear protocol
    // and identity preservation (docs/method.md §10 scores the same probe on perturbed test features).
    let mut probe = LazyProbe::new(LinearProbeConfig {
        epochs: eval.linear_epochs,
        seed,
        ..LinearProbeConfig::default()
    });
    let mut protocols = options.protocols.clone();
    protocols.sort_unstable();
    protocols.dedup();
    for protocol in protocols {
        let started = Instant::now();
        let manifold = model.manifold.as_ref();
        if protocol.needs_operators() && manifold.is_none() {
            skipped.insert(
                protocol.name().to_owned(),
                "a SimCLR run has no operators".to_owned(),
            );
            continue;
        }
        let bar = bars.spinner(&format!("{protocol}"));
        match protocol {
            Protocol::Linear => {
                report.linear = Some(probe.get(&train, device)?.evaluate(&test)?);
            }
            Protocol::Knn => {
                report.knn = Some(knn_accuracy(&train, &test, KnnVote::PAPER)?);
                report.weighted_knn = Some(knn_accuracy(&train, &test, KnnVote::LIGHTLY)?);
            }
            Protocol::Kmeans => {
                let subset = test.subset(&evenly_spaced(test.len(), eval.kmeans_rows.max(1)))?;
                let config = KMeansConfig {
                    seed,
                    ..KMeansConfig::default()
                };
                report.kmeans = Some(kmeans_purity(&subset, &config)?);
            }
            Protocol::Semisup => {
                report.semi_supervised =
                    semi_supervised(&train, &test, manifold, eval, &bars, device)?;
            }
            Protocol::Identity => {
                if let Some(parts) = manifold {
                    let (operators, prior) = cpu_manifold(parts)?;
                    let config = IdentityConfig {
                        probe: probe.config,
                        repeats: eval.identity_repeats,
                        ..IdentityConfig::default()
                    };
                    report.identity = Some(identity::identity_preservation_with(
                        Some(probe.get(&train, device)?),
                        &train,
                        &test,
                        &operators,
                        &prior,
                        run.config.method.threshold,
                        seed,
                        &config,
                    )?);
                }
            }
            Protocol::AugmentNn => {
                if let Some(parts) = manifold {
                    let (operators, prior) = cpu_manifold(parts)?;
                    report.augmentation_nn = Some(augment_nn::augmentation_nn(
                        &train,
                        &test,
                        &operators,
                        &prior,
                        run.config.method.threshold,
                        seed,
                        &AugmentationNnConfig {
                            setting: eval.augment_nn,
                            queries: eval.augment_nn_queries,
                            ..AugmentationNnConfig::default()
                        },
                    )?);
                }
            }
        }
        bar.finish_and_clear();
        seconds.insert(protocol.name().to_owned(), started.elapsed().as_secs_f64());
    }

    Ok(EvalResults {
        run: run.config.name.clone(),
        weights: match options.weights {
            Weights::Trained => "trained",
            Weights::RandomInit => "random-init",
        }
        .to_owned(),
        dataset: run.dataset.to_string(),
        epochs: state.epochs_done,
        train_rows: train.len(),
        test_rows: test.len(),
        feature_dim: train.dim(),
        seconds,
        skipped,
        report,
    })
}

/// Writes `results.json` and `results.md` into `dir` (created if needed), atomically.
///
/// # Errors
/// [`Error::Io`] if a file cannot be written, [`Error::Json`] if the results cannot be serialised.
pub fn write_results(dir: &Path, results: &EvalResults) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    let json = serde_json::to_vec_pretty(results).map_err(|source| Error::Json {
        action: "serialise the results for",
        path: dir.join(RESULTS_FILE),
        source,
    })?;
    crate::train::checkpoint::write_atomic(&dir.join(RESULTS_FILE), &json)?;
    crate::train::checkpoint::write_atomic(
        &dir.join(RESULTS_TABLE_FILE),
        super::markdown::results_table(&[results]).as_bytes(),
    )
}

/// Features of the first `max` images (0: all) of `split`.
fn split_features(
    run: &Run,
    model: &SslModel,
    data_dir: &Path,
    split: Split,
    max: usize,
    bars: &Bars,
    device: &Device,
) -> Result<Features> {
    let mut images = data::load(run.dataset, data_dir, split)?;
    if max > 0 && max < images.len() {
        images = images.prefix(max)?;
    }
    let Some(labels) = images.labels().map(<[u16]>::to_vec) else {
        return Err(Error::InvalidSetting {
            setting: "eval split",
            expected: "a labelled split".into(),
            found: split.to_string(),
        });
    };
    let classes = images.class_names().len();
    let images: Arc<ImageSet> = Arc::new(images);
    let bar = bars.counter(images.len() as u64, &format!("features ({split})"));
    let data = features::extract(model, &images, run.dataset, device, Some(&bar))?;
    bar.finish_and_clear();
    Features::new(data, model.backbone.feature_dim(), labels, classes)
}

/// The five semi-supervised methods, one progress bar over all their trials.
fn semi_supervised(
    train: &Features,
    test: &Features,
    manifold: Option<&ManifoldParts>,
    eval: &crate::config::EvalConfig,
    bars: &Bars,
    device: &Device,
) -> Result<Vec<super::SemiSupervisedResult>> {
    let config = SemiSupervisedConfig {
        trials: eval.semisup_trials,
        iterations: eval.semisup_iterations,
        hidden: eval.semisup_hidden,
        ..SemiSupervisedConfig::default()
    };
    let learned = match manifold {
        Some(parts) => {
            let prior = PriorOfRows::new(parts, train, device)?;
            let operators = parts.operators.to_operators()?;
            Some(
                move |z: &Tensor, rows: &[u32], rng: &mut StreamRng| -> Result<Tensor> {
                    operator_augment(&operators, &prior, z, rows, rng)
                },
            )
        }
        None => None,
    };
    let learned_ref: Option<&Augmentation<'_>> = learned.as_ref().map(|f| f as &Augmentation<'_>);
    let mut methods = Vec::new();
    if let Some(augment) = learned_ref {
        methods.push(SemiMethod::Augmented {
            name: "learned-operators",
            augment,
        });
    }
    methods.extend([
        SemiMethod::PseudoLabel,
        SemiMethod::Mixup,
        SemiMethod::FeatMatch,
        SemiMethod::SupervisedOnly,
    ]);
    let bar = bars.counter(
        (methods.len() * config.trials) as u64,
        "semi-supervised trials",
    );
    let mut results = Vec::with_capacity(methods.len());
    for method in methods {
        bar.set_message(format!("semi-supervised: {}", method.name()));
        let started = Instant::now();
        let trials = semisup::parallel_trials(&config, |seed| {
            let outcome = semisup::trial(train, test, method, &config, seed, device)?;
            bar.inc(1);
            Ok(outcome)
        })?;
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(
            "semi-supervised {}: {} trials in {seconds:.1} s ({:.1} ms per iteration)",
            method.name(),
            config.trials,
            1e3 * seconds / (config.trials * config.iterations) as f64
        );
        results.push(semisup::summarise(method.name(), &trials, &config));
    }
    bar.finish_and_clear();
    Ok(results)
}

/// The fully warmed prior's Laplace parameters of every training row: the features and the prior
/// are frozen, so the semi-supervised trials gather them instead of running the prior network
/// (2048 wide) on every batch of every iteration.
struct PriorOfRows {
    /// μ_p(z), one row per training row.
    loc: Tensor,
    /// ln b_p(z), one row per training row.
    logscale: Tensor,
}

impl PriorOfRows {
    /// Rows of the training set the prior network reads at once (bounds the trunk's activations).
    const CHUNK: usize = 4096;

    fn new(parts: &ManifoldParts, train: &Features, device: &Device) -> Result<Self> {
        let features = train.tensor(device)?;
        let (mut loc, mut logscale) = (Vec::new(), Vec::new());
        for start in (0..train.len()).step_by(Self::CHUNK) {
            let len = Self::CHUNK.min(train.len() - start);
            let heads = parts.prior.forward(&features.narrow(0, start, len)?)?;
            loc.push(heads.loc);
            logscale.push(heads.logscale);
        }
        Ok(Self {
            loc: Tensor::cat(&loc, 0)?,
            logscale: Tensor::cat(&logscale, 0)?,
        })
    }
}

/// The learned-operator augmentation of the semi-supervised protocol: one sample c̃ from the
/// fully warmed prior at z (the training rows `rows`, whose parameters `prior` holds) with
/// threshold 0 (docs/method.md §10), then T(c̃) z.
///
/// Each T(c̃) moves one feature once and no gradient flows through the move, so it is computed on
/// the CPU as each block's exponential acting on its chunk of z
/// ([`Operators::apply_action`](mclr_shared::operators::Operators::apply_action)), not by forming
/// the K exponentials of every row: the same values to f32 rounding at a fraction of the work.
fn operator_augment(
    operators: &mclr_shared::operators::Operators,
    prior: &PriorOfRows,
    z: &Tensor,
    rows: &[u32],
    rng: &mut StreamRng,
) -> Result<Tensor> {
    let index = Tensor::from_slice(rows, rows.len(), z.device())?;
    let loc = prior.loc.index_select(&index, 0)?;
    let logscale = prior.logscale.index_select(&index, 0)?;
    let (rows, m) = loc.dims2()?;
    let noise: Vec<f32> = (0..rows * m)
        .map(|_| rng.uniform(-0.5, 0.5) as f32)
        .collect();
    let noise = Tensor::from_vec(noise, (rows, m), z.device())?;
    let c = sampling::reparameterize(&loc, &logscale, &noise, 0.0)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let moved = operators.apply_action(&c, &z.flatten_all()?.to_vec1::<f32>()?)?;
    Ok(Tensor::from_vec(moved, z.dims(), z.device())?)
}

/// The shared CPU operators and prior of a model (what the viewer also runs).
fn cpu_manifold(
    parts: &ManifoldParts,
) -> Result<(
    mclr_shared::operators::Operators,
    mclr_shared::operators::PriorNetwork,
)> {
    let operators = parts.operators.to_operators()?;
    let prior = mclr_shared::operators::PriorNetwork::new(parts.prior.export()?.to_mlp("prior")?);
    Ok((operators, prior))
}

/// The linear probe on the clean training features, trained on first use.
struct LazyProbe {
    config: LinearProbeConfig,
    probe: Option<LinearProbe>,
}

impl LazyProbe {
    fn new(config: LinearProbeConfig) -> Self {
        Self {
            config,
            probe: None,
        }
    }

    fn get(&mut self, train: &Features, device: &Device) -> Result<&LinearProbe> {
        match &mut self.probe {
            Some(probe) => Ok(probe),
            slot @ None => Ok(slot.insert(LinearProbe::fit(train, &self.config, device)?)),
        }
    }
}

/// Progress bars on stderr, or hidden ones.
struct Bars {
    visible: bool,
}

impl Bars {
    fn new(visible: bool) -> Self {
        Self { visible }
    }

    /// A bar counting `len` items.
    fn counter(&self, len: u64, message: &str) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(Some(len), self.target());
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:32} [{bar:30}] {pos}/{len} ({elapsed} elapsed, ETA {eta})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(message.to_owned());
        bar
    }

    /// A spinner for a step without a count.
    fn spinner(&self, message: &str) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(None, self.target());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(message.to_owned());
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    }

    fn target(&self) -> ProgressDrawTarget {
        if self.visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        }
    }
}
