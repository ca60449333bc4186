//! A finished (or checkpointed) run directory, opened for evaluation or export: its resolved
//! config, its training state, and the model rebuilt with its trained weights, or with the same
//! architecture's seeded random initialisation as the baseline every evaluation is compared with.

use std::path::{Path, PathBuf};

use candle_core::Device;

use crate::augment::SslAugment;
use crate::config::Config;
use crate::data::DatasetName;
use crate::error::{Error, Result};
use crate::model::ssl::SslModel;
use crate::train::checkpoint::{self, TrainState};
use crate::train::load_weights;

/// Which weights [`Run::model`] loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    /// The run's trained `model.safetensors`.
    Trained,
    /// The run's architecture at its seeded initialisation: the "random backbone" baseline.
    RandomInit,
}

/// A run directory holding `config.toml`, `state.json` and `model.safetensors`.
#[derive(Debug, Clone)]
pub struct Run {
    /// The directory.
    pub dir: PathBuf,
    /// The resolved config, with any overrides applied.
    pub config: Config,
    /// `config.toml` exactly as the run wrote it (the bundle records it verbatim).
    pub config_toml: String,
    /// The dataset the run trained on.
    pub dataset: DatasetName,
}

impl Run {
    /// Opens the run in `dir`, applying `overrides` (`key=value`, as `mclr train --set`) to its
    /// config.
    ///
    /// Only the config is read here, so that a caller can refuse a run for what it is (e.g. a
    /// SimCLR run has nothing to export) before anything else about it is required.
    ///
    /// # Errors
    /// [`Error::Io`] if `config.toml` cannot be read, config errors for a bad config or override.
    pub fn open(dir: &Path, overrides: &[String]) -> Result<Self> {
        let config_path = dir.join(checkpoint::CONFIG_FILE);
        let config_toml = std::fs::read_to_string(&config_path)
            .map_err(|source| Error::io("reading", &config_path, source))?;
        let config = Config::resolve(&config_path.to_string_lossy(), overrides)?;
        let dataset = config.dataset()?;
        Ok(Self {
            dir: dir.to_owned(),
            config,
            config_toml,
            dataset,
        })
    }

    /// Epochs and steps completed (`state.json`).
    ///
    /// # Errors
    /// [`Error::CheckpointData`] if `state.json` is missing or unreadable.
    pub fn state(&self) -> Result<TrainState> {
        let path = self.dir.join(checkpoint::STATE_FILE);
        let json = std::fs::read(&path).map_err(|e| Error::CheckpointData {
            path: path.clone(),
            action: "read the training state",
            source: Box::new(e),
        })?;
        serde_json::from_slice(&json).map_err(|e| Error::CheckpointData {
            path,
            action: "decode the training state",
            source: Box::new(e),
        })
    }

    /// The model as training built it (the stem depends on the SSL crop size) on `device`, with
    /// `weights`.
    ///
    /// # Errors
    /// [`Error::CheckpointData`] if the trained weights are missing or unreadable;
    /// [`Error::Checkpoint`] if they do not fit the architecture.
    pub fn model(&self, weights: Weights, device: &Device) -> Result<SslModel> {
        let model = SslModel::new(
            &self.config,
            SslAugment::for_dataset(self.dataset).size(),
            device,
        )?;
        if weights == Weights::Trained {
            let path = self.dir.join(checkpoint::MODEL_FILE);
            let tensors = candle_core::safetensors::load(&path, device).map_err(|e| {
                Error::CheckpointData {
                    path: path.clone(),
                    action: "load the trained weights",
                    source: Box::new(e),
                }
            })?;
            load_weights(&model, &tensors, &path)?;
        }
        Ok(model)
    }
}
