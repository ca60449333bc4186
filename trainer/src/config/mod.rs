//! Training configurations: one TOML file per experiment of the paper (docs/method.md §9) plus a CPU-sized
//! `demo`, `--set key=value` overrides, and the resolved config a run saves next to its weights.
//!
//! The paper's base setting (CIFAR-10 ManifoldCLR without a projection head) is [`Config::default`]
//! and is the only place a default lives; each file under `trainer/configs/` states just how its
//! experiment differs. The resolved config written into a run directory states everything.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::DatasetName;
use crate::error::{Error, Result};
use crate::model::{projection, resnet};

mod keys;
mod validate;

pub use keys::{Difference, valid_keys};
use keys::{apply_override, default_table, merge};

/// The built-in configurations, by name: every row of docs/method.md §9, the paper's feature-augmentation
/// ablations, `demo` (the quick CPU run of `cargo xtask demo`) and `demo-large` (the shipped demo
/// model, CPU-sized).
pub const BUILTIN: [(&str, &str); 23] = [
    ("demo", include_str!("../../configs/demo.toml")),
    ("demo-large", include_str!("../../configs/demo-large.toml")),
    (
        "cifar10-manifoldclr",
        include_str!("../../configs/cifar10-manifoldclr.toml"),
    ),
    (
        "stl10-manifoldclr",
        include_str!("../../configs/stl10-manifoldclr.toml"),
    ),
    (
        "tin-manifoldclr",
        include_str!("../../configs/tin-manifoldclr.toml"),
    ),
    (
        "cifar10-manifoldclr-proj",
        include_str!("../../configs/cifar10-manifoldclr-proj.toml"),
    ),
    (
        "stl10-manifoldclr-proj",
        include_str!("../../configs/stl10-manifoldclr-proj.toml"),
    ),
    (
        "tin-manifoldclr-proj",
        include_str!("../../configs/tin-manifoldclr-proj.toml"),
    ),
    (
        "cifar10-manifoldclr-thresh",
        include_str!("../../configs/cifar10-manifoldclr-thresh.toml"),
    ),
    (
        "stl10-manifoldclr-thresh",
        include_str!("../../configs/stl10-manifoldclr-thresh.toml"),
    ),
    (
        "tin-manifoldclr-thresh",
        include_str!("../../configs/tin-manifoldclr-thresh.toml"),
    ),
    (
        "cifar10-simclr",
        include_str!("../../configs/cifar10-simclr.toml"),
    ),
    (
        "stl10-simclr",
        include_str!("../../configs/stl10-simclr.toml"),
    ),
    ("tin-simclr", include_str!("../../configs/tin-simclr.toml")),
    (
        "cifar10-simclr-nohead",
        include_str!("../../configs/cifar10-simclr-nohead.toml"),
    ),
    (
        "stl10-simclr-nohead",
        include_str!("../../configs/stl10-simclr-nohead.toml"),
    ),
    (
        "tin-simclr-nohead",
        include_str!("../../configs/tin-simclr-nohead.toml"),
    ),
    (
        "cifar10-simclr-gaussaug",
        include_str!("../../configs/cifar10-simclr-gaussaug.toml"),
    ),
    (
        "stl10-simclr-gaussaug",
        include_str!("../../configs/stl10-simclr-gaussaug.toml"),
    ),
    (
        "tin-simclr-gaussaug",
        include_str!("../../configs/tin-simclr-gaussaug.toml"),
    ),
    (
        "cifar10-simclr-mixup",
        include_str!("../../configs/cifar10-simclr-mixup.toml"),
    ),
    (
        "stl10-simclr-mixup",
        include_str!("../../configs/stl10-simclr-mixup.toml"),
    ),
    (
        "tin-simclr-mixup",
        include_str!("../../configs/tin-simclr-mixup.toml"),
    ),
];

/// A complete training configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Name of the experiment (the built-in name, or the file stem).
    pub name: String,
    /// Which images and how to serve them.
    pub data: DataConfig,
    /// Network sizes.
    pub model: ModelConfig,
    /// SimCLR or ManifoldCLR, and ManifoldCLR's operator and sampling settings.
    pub method: MethodConfig,
    /// Loss weights and temperatures.
    pub loss: LossConfig,
    /// Epochs, batch size and the three parameter groups.
    pub optim: OptimConfig,
    /// Seed, device, logging and checkpointing.
    pub run: RunConfig,
    /// How `mclr eval` evaluates the run (absent in older run configs: docs/method.md §10's defaults).
    pub eval: EvalConfig,
}

/// Evaluation settings (docs/method.md §10). [`Default`] is the paper's protocol; CPU-sized configs shrink
/// the semi-supervised trials, which dominate the cost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Linear probe epochs (the paper: 500).
    pub linear_epochs: usize,
    /// Semi-supervised trials per method (the paper: 50).
    pub semisup_trials: usize,
    /// Semi-supervised training iterations per trial (the paper: 10,000).
    pub semisup_iterations: usize,
    /// Hidden width of the semi-supervised classifier (the paper: 2048).
    pub semisup_hidden: usize,
    /// Test rows k-means clusters (the paper: 5000).
    pub kmeans_rows: usize,
    /// Which augmentation-nearest-neighbour setting runs: `reference` (the authors': 20 training
    /// images from index 1337, Euclidean) or `cosine-sample` (sampled test images, cosine).
    pub augment_nn: crate::eval::augment_nn::AugmentNnSetting,
    /// Identity-preservation repeats, each with a freshly trained linear probe (the authors: 20).
    pub identity_repeats: usize,
    /// Test images queried by the `cosine-sample` augmentation-nearest-neighbour setting.
    pub augment_nn_queries: usize,
    /// Use only the first this many training images for every protocol (0: all).
    pub max_train: usize,
    /// Use only the first this many test images for every protocol (0: all).
    pub max_test: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            linear_epochs: 500,
            semisup_trials: 50,
            semisup_iterations: 10_000,
            semisup_hidden: 2048,
            kmeans_rows: 5000,
            identity_repeats: 20,
            augment_nn: crate::eval::augment_nn::AugmentNnSetting::Reference,
            augment_nn_queries: 1000,
            max_train: 0,
            max_test: 0,
        }
    }
}

/// Data settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Dataset name: `cifar10`, `stl10` or `tiny-imagenet`.
    pub dataset: String,
    /// Folder holding the dataset's official files (`mclr data fetch` writes them there).
    pub dir: PathBuf,
    /// Train on only the first N images of the SSL split (0 = all): for CPU-sized runs.
    pub subset: usize,
    /// Batches prepared ahead of the model.
    pub prefetch: usize,
}

/// Network settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// ResNet-18 base width: 64 is the paper's (512-d features); 16 fits a CPU.
    pub base_width: usize,
    /// Whether the contrastive loss sees an MLP projection head (512→1024→128) or raw features.
    pub projection_head: bool,
    /// Projection head hidden width.
    pub projection_hidden: usize,
    /// Projection head output width.
    pub projection_dim: usize,
    /// "Ghost" batch norm: in training, every BatchNorm normalises groups of this many images
    /// (0: the whole batch). The `-thresh` configs set 256: the reference trained them on two
    /// GPUs with `torch.nn.DataParallel`, so each replica's BatchNorm saw 256 of the 512 images.
    pub bn_group: usize,
}

/// Which self-supervised method trains the backbone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// SimCLR: NT-Xent between the two augmented views.
    Simclr,
    /// ManifoldCLR: learned operators, variational coefficients, feature augmentation.
    Manifoldclr,
    /// The paper's Gaussian feature-augmentation ablation (reference
    /// `config/simclr_*_gaussaug.yaml`): z_aug = z0 + Gaussian noise of std
    /// `feature_noise_scale · sqrt(‖z0 − z1‖₂)`, contrasted as ManifoldCLR's z_aug
    /// (MSE Lie-InfoNCE with z1 positive and z0 an extra negative), no other term.
    #[serde(rename = "simclr-gaussian")]
    SimclrGaussian,
    /// The paper's mixup feature-augmentation ablation (reference
    /// `config/simclr_*_mixup.yaml`): z_aug = λ z1 + (1 − λ) z0 with λ ~ U[0, 1), contrasted
    /// as [`Method::SimclrGaussian`]'s.
    #[serde(rename = "simclr-mixup")]
    SimclrMixup,
}

impl Method {
    /// The method's name as configs spell it (`method.kind`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Simclr => "simclr",
            Self::Manifoldclr => "manifoldclr",
            Self::SimclrGaussian => "simclr-gaussian",
            Self::SimclrMixup => "simclr-mixup",
        }
    }

    /// Whether the method is one of the feature-augmentation ablations (`simclr-gaussian`,
    /// `simclr-mixup`).
    pub fn is_feature_augmentation(self) -> bool {
        matches!(self, Self::SimclrGaussian | Self::SimclrMixup)
    }
}

/// Method settings (the operator fields only matter for ManifoldCLR, the `feature_*` ones only for
/// the feature-augmentation ablations).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MethodConfig {
    /// `simclr`, `manifoldclr`, `simclr-gaussian` or `simclr-mixup`.
    pub kind: Method,
    /// Number of operators M.
    pub operators: usize,
    /// Operator block size n; the feature dimension must be a multiple of it (K = d / n blocks).
    pub block_size: usize,
    /// Soft threshold ζ on the Laplace deviation (0 = off).
    pub threshold: f32,
    /// Best-of-J sampling: draws per pair (1 = off).
    pub best_of_j: usize,
    /// Iteration from which best-of-J is used.
    pub best_of_j_start: u64,
    /// Iterations W of the prior warm-up.
    pub prior_warmup_iters: u64,
    /// `simclr-gaussian`: the noise std of sample i is this times sqrt(‖z0_i − z1_i‖₂) (the
    /// distance detached). The reference has no such parameter: its std is exactly
    /// sqrt(‖z0 − z1‖₂), i.e. 1.0 here.
    pub feature_noise_scale: f32,
    /// `simclr-gaussian`, `simclr-mixup`: draw the noise / λ per feature dimension (one value per
    /// column, shared by every row) as the reference's broadcast does by accident, instead of
    /// per sample. Needs `optim.batch_size` = d (512 = 512 in the reference).
    pub feature_aug_per_dimension: bool,
}

/// How the KL weight is warmed up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KlWarmup {
    /// Full weight from the first step.
    None,
    /// (5e-3)^(1 − k/5000) over the first 5000 loss calls (the no-head configs).
    Exponential,
}

/// Loss settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossConfig {
    /// Temperature τ of both contrastive terms.
    pub temperature: f32,
    /// Weight w_m of the manifold-matching term.
    pub manifold_weight: f32,
    /// Weight of KL(q‖p).
    pub kl_weight: f32,
    /// Warm-up of the KL weight.
    pub kl_warmup: KlWarmup,
    /// Weight of the encoder-location L2 term (0 = off).
    pub shift_weight: f32,
}

/// One optimiser parameter group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// Peak learning rate.
    pub lr: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Learning rate the cosine anneals to.
    pub floor: f64,
    /// Gradient-norm clip of the group (0 = none).
    pub clip: f64,
}

/// Optimisation settings (docs/method.md §7).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    /// Training epochs.
    pub epochs: u64,
    /// Image pairs per step.
    pub batch_size: usize,
    /// Linear warm-up length in epochs, then cosine.
    pub warmup_epochs: f64,
    /// Backbone and projection head.
    pub backbone: GroupConfig,
    /// Operators Ψ.
    pub operators: GroupConfig,
    /// Coefficient encoder and prior.
    pub coefficients: GroupConfig,
}

/// Run settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Seed of every random stream (init, shuffling, augmentation, sampling).
    pub seed: u64,
    /// Write a `metrics.jsonl` line every this many steps.
    pub log_every: u64,
    /// Checkpoint every this many epochs (and at the end).
    pub checkpoint_every: u64,
    /// Checkpoints kept besides the best one.
    pub keep_last: usize,
    /// Write a live bundle (`RUN/live.mclr`, for `mclr view`) at every this many checkpoints,
    /// and at the run's last; 0: never (`mclr train --live-every N`, `--no-live`). Not a
    /// training setting: a resumed run may change it.
    pub live_every: u64,
    /// Images in a live bundle's gallery: the first this many of the test split (fewer if the
    /// split is smaller).
    pub live_gallery: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            name: "cifar10-manifoldclr".into(),
            data: DataConfig::default(),
            model: ModelConfig::default(),
            method: MethodConfig::default(),
            loss: LossConfig::default(),
            optim: OptimConfig::default(),
            run: RunConfig::default(),
            eval: EvalConfig::default(),
        }
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dataset: "cifar10".into(),
            dir: PathBuf::from("data/cifar10"),
            subset: 0,
            prefetch: 4,
        }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            base_width: resnet::PAPER_BASE_WIDTH,
            projection_head: false,
            projection_hidden: projection::PAPER_HIDDEN_DIM,
            projection_dim: projection::PAPER_OUTPUT_DIM,
            bn_group: 0,
        }
    }
}

impl Default for MethodConfig {
    fn default() -> Self {
        Self {
            kind: Method::Manifoldclr,
            operators: 16,
            block_size: 64,
            threshold: 0.0,
            best_of_j: 1,
            best_of_j_start: 5000,
            prior_warmup_iters: 5000,
            feature_noise_scale: 1.0,
            feature_aug_per_dimension: false,
        }
    }
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            temperature: 0.5,
            manifold_weight: 1.0,
            kl_weight: 1e-5,
            kl_warmup: KlWarmup::Exponential,
            shift_weight: 0.0,
        }
    }
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            epochs: 1000,
            batch_size: 512,
            warmup_epochs: 10.0,
            backbone: GroupConfig {
                lr: 3e-3,
                weight_decay: 1e-5,
                floor: 1e-5,
                clip: 0.0,
            },
            operators: GroupConfig {
                lr: 1e-3,
                weight_decay: 1e-3,
                floor: 1e-6,
                clip: 0.1,
            },
            coefficients: GroupConfig {
                lr: 1e-4,
                weight_decay: 1e-5,
                floor: 1e-6,
                clip: 1.0,
            },
        }
    }
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            log_every: 50,
            checkpoint_every: 10,
            keep_last: 3,
            live_every: 1,
            live_gallery: 2000,
        }
    }
}

impl Config {
    /// Loads a built-in configuration by name, or a TOML file by path, applies `overrides`
    /// (`key=value` with dotted keys, values in TOML syntax or bare strings) and validates.
    pub fn resolve(name_or_path: &str, overrides: &[String]) -> Result<Self> {
        let (source, text) = match BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            Some((n, text)) => ((*n).to_owned(), (*text).to_owned()),
            None => {
                let path = Path::new(name_or_path);
                if !path.exists() {
                    return Err(Error::UnknownConfig {
                        name: name_or_path.to_owned(),
                        valid: BUILTIN
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
                let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
                    action: "reading config",
                    path: path.to_owned(),
                    source,
                })?;
                (path.display().to_string(), text)
            }
        };
        let file: toml::Table = toml::from_str(&text).map_err(|e| Error::Config {
            source_name: source.clone(),
            action: "parsing",
            source: Box::new(e),
        })?;
        // Start from the defaults and lay the file over them, so a file may set any single key
        // (`optim.operators.weight_decay = 1e-4`) and the defaults live only in `Config::default`.
        let mut table = default_table();
        let stem = Path::new(&source)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(&source);
        table.insert("name".into(), toml::Value::String(stem.to_owned()));
        merge(&mut table, file);
        for o in overrides {
            apply_override(&mut table, o)?;
        }
        let config: Self = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| Error::Config {
                source_name: source,
                action: "reading the settings of",
                source: Box::new(e),
            })?;
        config.validate()?;
        Ok(config)
    }

    /// The dataset as a typed name.
    pub fn dataset(&self) -> Result<DatasetName> {
        self.data.dataset.parse()
    }

    /// Backbone feature dimension d (8 × base width for ResNet-18).
    pub fn feature_dim(&self) -> usize {
        self.backbone(0).feature_dim()
    }

    /// The backbone's architecture for `image_px`-pixel inputs (the stem depends on the size).
    pub fn backbone(&self, image_px: usize) -> resnet::ResNetConfig {
        resnet::ResNetConfig {
            base_width: self.model.base_width,
            stem: resnet::Stem::for_image_size(image_px),
        }
    }

    /// The config as TOML, complete (every key), as saved in the run directory.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| Error::Config {
            source_name: self.name.clone(),
            action: "serialising",
            source: Box::new(e),
        })
    }
}
