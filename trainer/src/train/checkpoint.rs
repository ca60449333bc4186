//! Checkpoints: everything needed to continue a run bit for bit — weights (with BatchNorm
//! statistics), optimiser moments, the objective's random streams and the data position — written
//! atomically (temporary name, then rename) so an interrupted write never replaces a good one.
//!
//! Layout of a run directory:
//! ```text
//! config.toml              the resolved config (every key)
//! model.safetensors        latest weights, with metadata (config name, epoch, step, producer)
//! optimizer.safetensors    latest AdamW moments
//! state.json               latest TrainState (epoch, step, optimiser meta, noise, best loss)
//! metrics.jsonl            the training log
//! checkpoints/epoch-NNNN/  the same three files per checkpointed epoch (the last `keep_last`)
//! checkpoints/best/        the checkpoint with the lowest mean epoch loss
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::step::ObjectiveState;
use crate::error::{Error, Result};
use crate::optim::OptimizerMeta;

/// Weights file name.
pub const MODEL_FILE: &str = "model.safetensors";
/// Optimiser state file name.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// Training state file name.
pub const STATE_FILE: &str = "state.json";
/// Resolved config file name.
pub const CONFIG_FILE: &str = "config.toml";
/// Metrics log file name.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// Folder of per-epoch checkpoints.
pub const CHECKPOINT_DIR: &str = "checkpoints";

/// Where training stands after a completed epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Name of the config the run trains.
    pub config_name: String,
    /// Epochs completed; training resumes at this epoch.
    pub epochs_done: u64,
    /// Global iterations completed.
    pub step: u64,
    /// Optimiser step counts and learning rates.
    pub optimizer: OptimizerMeta,
    /// Random streams and counters of the objective.
    pub objective: ObjectiveState,
    /// Mean loss of each completed epoch.
    pub epoch_losses: Vec<f64>,
    /// Epoch (1-based count) of the best checkpoint so far, and its mean loss.
    pub best: Option<(u64, f64)>,
    /// Seconds spent training so far.
    pub elapsed_secs: f64,
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    std::fs::write(&tmp, bytes).map_err(|source| Error::Io {
        action: "writing",
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, path).map_err(|source| Error::Io {
        action: "renaming to",
        path: path.to_owned(),
        source,
    })
}

fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.partial"))
}

/// Serialises named tensors as safetensors bytes with string metadata.
fn safetensors_bytes(
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
    path: &Path,
) -> Result<Vec<u8>> {
    let views: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    safetensors::tensor::serialize(views, Some(metadata)).map_err(|e| Error::Checkpoint {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Everything one checkpoint holds, ready to write.
pub struct Checkpoint<'a> {
    /// Model variables by name.
    pub model: Vec<(String, Tensor)>,
    /// Optimiser state tensors by name.
    pub optimizer: Vec<(String, Tensor)>,
    /// The training state.
    pub state: &'a TrainState,
}

impl Checkpoint<'_> {
    /// Writes the checkpoint into `dir` (created if needed), each file atomically.
    pub fn write_to(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            action: "creating",
            path: dir.to_owned(),
            source,
        })?;
        let meta = HashMap::from([
            ("config".to_owned(), self.state.config_name.clone()),
            ("epochs_done".to_owned(), self.state.epochs_done.to_string()),
            ("step".to_owned(), self.state.step.to_string()),
            (
                "producer".to_owned(),
                format!("mclr {}", env!("CARGO_PKG_VERSION")),
            ),
        ]);
        let model_path = dir.join(MODEL_FILE);
        write_atomic(
            &model_path,
            &safetensors_bytes(&self.model, meta.clone(), &model_path)?,
        )?;
        let opt_path = dir.join(OPTIMIZER_FILE);
        write_atomic(
            &opt_path,
            &safetensors_bytes(&self.optimizer, meta, &opt_path)?,
        )?;
        let state_path = dir.join(STATE_FILE);
        let json = serde_json::to_vec_pretty(self.state).map_err(|e| Error::Checkpoint {
            path: state_path.clone(),
            reason: e.to_string(),
        })?;
        // The state is written last: a checkpoint counts only once its state file exists.
        write_atomic(&state_path, &json)
    }
}

/// Tensors by name, as read from a safetensors file.
pub type NamedTensors = HashMap<String, Tensor>;

/// Reads the three checkpoint files of `dir` (a run directory or a checkpoint folder): model
/// weights, optimiser state and training state.
pub fn read(dir: &Path, device: &Device) -> Result<(NamedTensors, NamedTensors, TrainState)> {
    let state_path = dir.join(STATE_FILE);
    let json = std::fs::read(&state_path).map_err(|source| Error::Io {
        action: "reading",
        path: state_path.clone(),
        source,
    })?;
    let state: TrainState = serde_json::from_slice(&json).map_err(|e| Error::Checkpoint {
        path: state_path,
        reason: e.to_string(),
    })?;
    let load = |name: &str| -> Result<NamedTensors> {
        let path = dir.join(name);
        if !path.exists() {
            return Err(Error::Checkpoint {
                path,
                reason: "missing".into(),
            });
        }
        candle_core::safetensors::load(&path, device).map_err(|e| Error::Checkpoint {
            path: path.clone(),
            reason: e.to_string(),
        })
    };
    Ok((load(MODEL_FILE)?, load(OPTIMIZER_FILE)?, state))
}

/// Folder of the checkpoint after `epochs_done` epochs.
pub fn epoch_dir(run_dir: &Path, epochs_done: u64) -> PathBuf {
    run_dir
        .join(CHECKPOINT_DIR)
        .join(format!("epoch-{epochs_done:04}"))
}

/// Deletes all but the newest `keep` epoch checkpoints.
pub fn prune(run_dir: &Path, keep: usize) -> Result<()> {
    let root = run_dir.join(CHECKPOINT_DIR);
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Ok(());
    };
    let mut epochs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("epoch-"))
        })
        .collect();
    epochs.sort();
    let excess = epochs.len().saturating_sub(keep);
    for old in epochs.into_iter().take(excess) {
        std::fs::remove_dir_all(&old).map_err(|source| Error::Io {
            action: "removing",
            path: old.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Replaces `checkpoints/best` with a copy of the checkpoint in `from`.
pub fn promote_best(run_dir: &Path, from: &Path) -> Result<()> {
    let root = run_dir.join(CHECKPOINT_DIR);
    let staging = root.join(".best.partial");
    let best = root.join("best");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|source| Error::Io {
        action: "creating",
        path: staging.clone(),
        source,
    })?;
    for name in [MODEL_FILE, OPTIMIZER_FILE, STATE_FILE] {
        let (src, dst) = (from.join(name), staging.join(name));
        std::fs::copy(&src, &dst).map_err(|source| Error::Io {
            action: "copying",
            path: src.clone(),
            source,
        })?;
    }
    let old = root.join(".best.old");
    let _ = std::fs::remove_dir_all(&old);
    if best.exists() {
        std::fs::rename(&best, &old).map_err(|source| Error::Io {
            action: "renaming",
            path: best.clone(),
            source,
        })?;
    }
    std::fs::rename(&staging, &best).map_err(|source| Error::Io {
        action: "renaming to",
        path: best.clone(),
        source,
    })?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}
