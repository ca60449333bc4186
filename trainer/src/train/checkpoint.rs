//! Checkpoints: everything needed to continue a run bit for bit — weights (with BatchNorm
//! statistics), optimiser moments, the objective's random streams and the data position.
//!
//! A checkpoint is committed as one unit: its files (model, optimiser, state, the config that
//! produced it) are written into a private staging folder `checkpoints/.epoch-NNNN.partial`, each
//! flushed to disk; then `manifest.json` (each file's size and SHA-256, and the length of
//! `metrics.jsonl` at that moment) is written last; then the folder is renamed to
//! `checkpoints/epoch-NNNN` and its parent flushed. A crash at any moment leaves either no
//! `epoch-NNNN` or a complete one; `--resume` verifies the manifest before using it
//! ([`latest`]), and refuses an incomplete or inconsistent checkpoint, naming its files and the
//! last good one.
//!
//! Layout of a run directory:
//! ```text
//! config.toml              the resolved config (every key)
//! model.safetensors        latest weights, with metadata (config name, epoch, step, producer)
//! optimizer.safetensors    latest AdamW moments
//! state.json               latest TrainState (epoch, step, optimiser meta, noise, best loss)
//! manifest.json            the latest checkpoint's manifest
//! metrics.jsonl            the training log
//! checkpoints/epoch-NNNN/  one committed checkpoint per checkpointed epoch (the last `keep_last`):
//!                          the three files above, config.toml and manifest.json
//! checkpoints/best         the checkpoint with the lowest mean epoch loss: a symbolic link,
//!                          replaced atomically, to a copy `checkpoints/best-NNNN-*` (the
//!                          copy it named before is kept until the next promotion)
//! live.mclr                ManifoldCLR: a light viewer bundle of the latest live checkpoint,
//! live-thumbs.png          and its thumbnail sheet (`crate::export::live`; `mclr view` serves them)
//! ```
//!
//! The top-level model, optimiser, state and manifest files are copies of the newest checkpoint
//! for `mclr eval` and `mclr export`; they are refreshed after each commit and when a run resumes.
//! Resuming reads only `checkpoints/epoch-NNNN`.

use std::collections::{BTreeMap, HashMap};
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
/// Manifest file name: written last, it commits a checkpoint.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Name of the link to the best checkpoint, inside [`CHECKPOINT_DIR`].
pub const BEST: &str = "best";
/// Lock file that keeps two `mclr train` processes out of one run directory.
pub const LOCK_FILE: &str = ".mclr-train.lock";
/// The files of a checkpoint that its manifest lists.
pub const CHECKPOINT_FILES: [&str; 4] = [MODEL_FILE, OPTIMIZER_FILE, STATE_FILE, CONFIG_FILE];
/// Version of the manifest layout.
pub const MANIFEST_FORMAT: u32 = 1;

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

/// Writes `bytes` to `path` atomically and durably (see [`crate::durable::write_atomic`]).
pub use crate::durable::write_atomic;

/// The record that commits a checkpoint: what it holds and how to check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Layout version ([`MANIFEST_FORMAT`]).
    pub format: u32,
    /// Epochs completed at the checkpoint.
    pub epochs_done: u64,
    /// Global iterations completed at the checkpoint.
    pub step: u64,
    /// Length of `metrics.jsonl` in bytes when the checkpoint was taken; a resume cuts the log
    /// back to it.
    pub metrics_bytes: u64,
    /// Each file of the checkpoint, by name.
    pub files: BTreeMap<String, FileDigest>,
}

/// Size and SHA-256 of one checkpoint file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Length in bytes.
    pub bytes: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

impl FileDigest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(bytes);
        Self {
            bytes: bytes.len() as u64,
            sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

/// Serialises named tensors as safetensors bytes with string metadata.
fn safetensors_bytes(
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
    path: &Path,
) -> Result<Vec<u8>> {
    let views: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    safetensors::tensor::serialize(views, Some(metadata)).map_err(|e| Error::CheckpointData {
        path: path.to_owned(),
        action: "encode the tensors as safetensors",
        source: Box::new(e),
    })
}

/// Everything one checkpoint holds, ready to commit.
pub struct Checkpoint<'a> {
    /// Model variables by name.
    pub model: Vec<(String, Tensor)>,
    /// Optimiser state tensors by name.
    pub optimizer: Vec<(String, Tensor)>,
    /// The training state.
    pub state: &'a TrainState,
    /// The resolved config the run trains (`config.toml`'s text).
    pub config_toml: &'a str,
    /// Length of `metrics.jsonl` (flushed to disk) at this checkpoint.
    pub metrics_bytes: u64,
}

impl Checkpoint<'_> {
    /// Commits the checkpoint as one unit into `checkpoints/epoch-NNNN` of `run_dir` (see the
    /// module docs) and returns that folder. An existing checkpoint of the same epoch is replaced.
    pub fn commit(&self, run_dir: &Path) -> Result<PathBuf> {
        let root = run_dir.join(CHECKPOINT_DIR);
        std::fs::create_dir_all(&root).map_err(|e| Error::io("creating", &root, e))?;
        let target = epoch_dir(run_dir, self.state.epochs_done);
        let name = dir_name(&target);
        let staging = root.join(format!(".{name}.partial"));
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|e| Error::io("removing", &staging, e))?;
        }
        std::fs::create_dir(&staging).map_err(|e| Error::io("creating", &staging, e))?;
        let meta = HashMap::from([
            ("config".to_owned(), self.state.config_name.clone()),
            ("epochs_done".to_owned(), self.state.epochs_done.to_string()),
            ("step".to_owned(), self.state.step.to_string()),
            (
                "producer".to_owned(),
                format!("mclr {}", env!("CARGO_PKG_VERSION")),
            ),
        ]);
        let state_json =
            serde_json::to_vec_pretty(self.state).map_err(|e| Error::CheckpointData {
                path: staging.join(STATE_FILE),
                action: "encode the training state",
                source: Box::new(e),
            })?;
        let contents: [(&str, Vec<u8>); 4] = [
            (
                MODEL_FILE,
                safetensors_bytes(&self.model, meta.clone(), &staging.join(MODEL_FILE))?,
            ),
            (
                OPTIMIZER_FILE,
                safetensors_bytes(&self.optimizer, meta, &staging.join(OPTIMIZER_FILE))?,
            ),
            (STATE_FILE, state_json),
            (CONFIG_FILE, self.config_toml.as_bytes().to_vec()),
        ];
        let mut files = BTreeMap::new();
        for (file, bytes) in &contents {
            crate::durable::write_new(&staging.join(file), bytes)?;
            files.insert((*file).to_owned(), FileDigest::of(bytes));
        }
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            epochs_done: self.state.epochs_done,
            step: self.state.step,
            metrics_bytes: self.metrics_bytes,
            files,
        };
        let manifest_json =
            serde_json::to_vec_pretty(&manifest).map_err(|e| Error::CheckpointData {
                path: staging.join(MANIFEST_FILE),
                action: "encode the manifest",
                source: Box::new(e),
            })?;
        // The manifest is written last: a folder without one was never committed.
        crate::durable::write_new(&staging.join(MANIFEST_FILE), &manifest_json)?;
        crate::durable::sync_dir(&staging)?;
        if target.exists() {
            let old = root.join(format!(".{name}.old"));
            crate::durable::rename(&target, &old)?;
            crate::durable::rename(&staging, &target)?;
            std::fs::remove_dir_all(&old).map_err(|e| Error::io("removing", &old, e))?;
        } else {
            crate::durable::rename(&staging, &target)?;
        }
        Ok(target)
    }
}

/// Copies the committed checkpoint in `from` to the top level of `run_dir` (model, optimiser,
/// state, manifest; each replaced atomically), for the tools that read a run's latest weights.
pub fn publish(run_dir: &Path, from: &Path) -> Result<()> {
    for file in [MODEL_FILE, OPTIMIZER_FILE, STATE_FILE, MANIFEST_FILE] {
        let (src, dst) = (from.join(file), run_dir.join(file));
        let tmp = run_dir.join(format!("{}{file}", crate::durable::PARTIAL_PREFIX));
        let _ = std::fs::remove_file(&tmp);
        link_or_copy(&src, &tmp)?;
        std::fs::rename(&tmp, &dst).map_err(|e| Error::io("renaming into", &dst, e))?;
    }
    crate::durable::sync_dir(run_dir)
}

/// Hard-links `src` to `dst` (checkpoint files are never rewritten in place), or copies it where
/// links are not possible; the copy is flushed to disk.
fn link_or_copy(src: &Path, dst: &Path) -> Result<()> {
    if std::fs::hard_link(src, dst).is_ok() {
        return Ok(());
    }
    std::fs::copy(src, dst).map_err(|e| Error::io("copying", src, e))?;
    std::fs::File::open(dst)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io("syncing", dst, e))
}

/// The file name of `dir` as text.
fn dir_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Checks the checkpoint folder `dir` against its manifest: every listed file present with its
/// size and SHA-256, the state's epoch and step equal to the manifest's. Returns the manifest, or
/// every problem found (one line per file at fault, with the error that revealed it and its causes:
/// several problems, so text rather than one `source()`).
pub fn verify(dir: &Path) -> std::result::Result<Manifest, Vec<String>> {
    verify_files(dir, &CHECKPOINT_FILES)
}

/// [`verify`] for the files `required` (the run directory's top-level copy has no config of its
/// own in the manifest's sense: `config.toml` there may carry a longer `optim.epochs`).
fn verify_files(dir: &Path, required: &[&str]) -> std::result::Result<Manifest, Vec<String>> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest: Manifest = match std::fs::read(&manifest_path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(m) => m,
            Err(e) => {
                return Err(vec![format!(
                    "{MANIFEST_FILE}: unreadable ({})",
                    crate::error_chain(&e)
                )]);
            }
        },
        Err(e) => {
            return Err(vec![format!(
                "{MANIFEST_FILE}: {} (the checkpoint was never committed)",
                crate::error_chain(&e)
            )]);
        }
    };
    let mut problems = Vec::new();
    for file in CHECKPOINT_FILES {
        if !manifest.files.contains_key(file) {
            problems.push(format!("{file}: not listed in {MANIFEST_FILE}"));
        }
    }
    if manifest.format != MANIFEST_FORMAT {
        problems.push(format!(
            "{MANIFEST_FILE}: format {} (this build reads {MANIFEST_FORMAT})",
            manifest.format
        ));
    }
    for &file in required {
        let Some(expected) = manifest.files.get(file) else {
            continue;
        };
        match std::fs::read(dir.join(file)) {
            Err(e) => problems.push(format!("{file}: {}", crate::error_chain(&e))),
            Ok(bytes) => {
                let found = FileDigest::of(&bytes);
                if found != *expected {
                    problems.push(format!(
                        "{file}: {} bytes with sha256 {}, the manifest records {} bytes with sha256 {}",
                        found.bytes, found.sha256, expected.bytes, expected.sha256
                    ));
                } else if file == STATE_FILE {
                    match serde_json::from_slice::<TrainState>(&bytes) {
                        Ok(state)
                            if state.epochs_done == manifest.epochs_done
                                && state.step == manifest.step => {}
                        Ok(state) => problems.push(format!(
                            "{file}: epoch {} step {}, the manifest records epoch {} step {}",
                            state.epochs_done, state.step, manifest.epochs_done, manifest.step
                        )),
                        Err(e) => problems
                            .push(format!("{file}: unreadable ({})", crate::error_chain(&e))),
                    }
                }
            }
        }
    }
    if let Some(n) = epoch_number(&dir_name(dir))
        && n != manifest.epochs_done
    {
        problems.push(format!(
            "{MANIFEST_FILE}: records epoch {}, but the folder is epoch {n}",
            manifest.epochs_done
        ));
    }
    if problems.is_empty() {
        Ok(manifest)
    } else {
        Err(problems)
    }
}

/// The newest committed checkpoint of `run_dir` and its manifest, verified; `None` when the run
/// has none yet.
///
/// # Errors
/// [`Error::CorruptCheckpoint`] when the newest checkpoint fails [`verify`]: the message lists the
/// files at fault and names the last good checkpoint, if any.
pub fn latest(run_dir: &Path) -> Result<Option<(PathBuf, Manifest)>> {
    let epochs = epoch_dirs(run_dir)?;
    let Some((_, newest)) = epochs.last() else {
        return Ok(None);
    };
    match verify(newest) {
        Ok(manifest) => Ok(Some((newest.clone(), manifest))),
        Err(problems) => {
            let last_good = epochs
                .iter()
                .rev()
                .skip(1)
                .find(|(_, dir)| verify(dir).is_ok())
                .map(|(_, dir)| dir.clone());
            let advice = match &last_good {
                Some(good) => format!(
                    "the last good checkpoint is {}; move {} out of {} to resume from it",
                    good.display(),
                    newest.display(),
                    run_dir.join(CHECKPOINT_DIR).display()
                ),
                None => "there is no earlier good checkpoint; start the run again".to_owned(),
            };
            Err(Error::CorruptCheckpoint {
                dir: newest.clone(),
                problems: problems.join("; "),
                advice,
            })
        }
    }
}

/// Verifies and loads every checkpoint of `run_dir` on `device`: each `checkpoints/epoch-NNNN`,
/// `checkpoints/best`, and the top-level copy. Returns each folder with its epoch, or what is wrong
/// with it.
pub fn check_all(
    run_dir: &Path,
    device: &Device,
) -> Result<Vec<(PathBuf, std::result::Result<u64, String>)>> {
    let mut dirs: Vec<PathBuf> = epoch_dirs(run_dir)?.into_iter().map(|(_, d)| d).collect();
    let best = run_dir.join(CHECKPOINT_DIR).join(BEST);
    if best.symlink_metadata().is_ok() {
        dirs.push(best);
    }
    let mut out: Vec<(PathBuf, std::result::Result<u64, String>)> = dirs
        .into_iter()
        .map(|dir| {
            // Resolved once (`best` is a link), so a promotion meanwhile cannot mix two copies' files.
            let source = if dir.is_symlink() {
                std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone())
            } else {
                dir.clone()
            };
            let loaded = read(&source, device)
                .map(|(_, _, state)| state.epochs_done)
                .map_err(|e| crate::error_chain(&e));
            (dir, loaded)
        })
        .collect();
    if run_dir.join(MANIFEST_FILE).exists() {
        let top = verify_files(run_dir, &[MODEL_FILE, OPTIMIZER_FILE, STATE_FILE])
            .map_err(|problems| problems.join("; "))
            .and_then(|manifest| {
                for file in [MODEL_FILE, OPTIMIZER_FILE] {
                    candle_core::safetensors::load(run_dir.join(file), device)
                        .map_err(|e| format!("{file}: {}", crate::error_chain(&e)))?;
                }
                Ok(manifest.epochs_done)
            });
        out.push((run_dir.to_owned(), top));
    }
    Ok(out)
}

/// Tensors by name, as read from a safetensors file.
pub type NamedTensors = HashMap<String, Tensor>;

/// Reads the files of the checkpoint folder `dir`, verified against its manifest: model weights,
/// optimiser state and training state.
pub fn read(dir: &Path, device: &Device) -> Result<(NamedTensors, NamedTensors, TrainState)> {
    verify(dir).map_err(|problems| Error::CorruptCheckpoint {
        dir: dir.to_owned(),
        problems: problems.join("; "),
        advice: "the checkpoint cannot be used".to_owned(),
    })?;
    let state_path = dir.join(STATE_FILE);
    let json = std::fs::read(&state_path).map_err(|e| Error::io("reading", &state_path, e))?;
    let state: TrainState = serde_json::from_slice(&json).map_err(|e| Error::CheckpointData {
        path: state_path,
        action: "decode the training state",
        source: Box::new(e),
    })?;
    let load = |name: &str| -> Result<NamedTensors> {
        let path = dir.join(name);
        candle_core::safetensors::load(&path, device).map_err(|e| Error::CheckpointData {
            path: path.clone(),
            action: "load the tensors",
            source: Box::new(e),
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

/// The epoch of a checkpoint folder name `epoch-N` (any number of digits).
fn epoch_number(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("epoch-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The committed epoch checkpoint folders of `run_dir`, oldest first (ordered by epoch number, not
/// by name: `epoch-10000` comes after `epoch-9999`).
pub fn epoch_dirs(run_dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let root = run_dir.join(CHECKPOINT_DIR);
    let entries = match std::fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("listing", &root, e)),
    };
    let mut epochs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing", &root, e))?;
        if let Some(n) = epoch_number(&entry.file_name().to_string_lossy()) {
            epochs.push((n, entry.path()));
        }
    }
    epochs.sort_by_key(|(n, _)| *n);
    Ok(epochs)
}

/// Deletes all but the newest `keep` epoch checkpoints (by epoch number). Copies of former best
/// checkpoints are left to [`promote_best`], which keeps the one before the current.
pub fn prune(run_dir: &Path, keep: usize) -> Result<()> {
    let epochs = epoch_dirs(run_dir)?;
    let excess = epochs.len().saturating_sub(keep);
    for (_, old) in epochs.into_iter().take(excess) {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io("removing", &old, e))?;
    }
    crate::durable::sync_dir(&run_dir.join(CHECKPOINT_DIR))
}

/// Removes `best-*` copies that the `best` link does not point to, except `also_keep`.
fn remove_stale_best(run_dir: &Path, also_keep: Option<&str>) -> Result<Vec<PathBuf>> {
    let root = run_dir.join(CHECKPOINT_DIR);
    let current = std::fs::read_link(root.join(BEST))
        .ok()
        .map(|t| t.to_string_lossy().into_owned());
    crate::durable::remove_matching(&root, |name| {
        name.starts_with("best-") && current.as_deref() != Some(name) && also_keep != Some(name)
    })
}

/// Removes what an interrupted run left behind: staging folders and temporary files
/// (`checkpoints/.*`, `.mclr-partial-*`, `.*.partial`) and unreferenced best copies. The caller
/// must hold the run directory's lock ([`lock`]). Returns what was removed.
pub fn clean_partials(run_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut removed = crate::durable::remove_matching(run_dir, |name| {
        name.starts_with(crate::durable::PARTIAL_PREFIX)
            || (name.starts_with('.') && name.ends_with(".partial"))
    })?;
    let root = run_dir.join(CHECKPOINT_DIR);
    removed.extend(crate::durable::remove_matching(&root, |name| {
        name.starts_with('.')
    })?);
    removed.extend(remove_stale_best(run_dir, None)?);
    Ok(removed)
}

/// Takes the run directory's lock (released when the returned file is dropped).
///
/// # Errors
/// [`Error::Checkpoint`] when another process holds it.
pub fn lock(run_dir: &Path) -> Result<std::fs::File> {
    let path = run_dir.join(LOCK_FILE);
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("opening", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Checkpoint {
            path: run_dir.to_owned(),
            reason: "another `mclr train` is using this run directory".into(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io("locking", &path, e)),
    }
}

/// Makes the checkpoint in `from` the best one. A copy `checkpoints/best-NNNN-*` is made (hard
/// links where possible) and flushed, then the link `checkpoints/best` is replaced atomically by a
/// rename, so `best` always names a complete checkpoint. The copy it named until now is kept until
/// the next promotion: a reader that resolved `best` just before the rename (a path lookup is not
/// atomic) still finds every file, and one that resolves it once ([`std::fs::canonicalize`]) reads
/// one consistent checkpoint. Older copies are removed.
pub fn promote_best(run_dir: &Path, from: &Path) -> Result<()> {
    let root = run_dir.join(CHECKPOINT_DIR);
    let name = dir_name(from).replacen("epoch-", "best-", 1);
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}-"))
        .tempdir_in(&root)
        .map_err(|e| Error::io("creating a temporary folder in", &root, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| Error::io("listing", from, e))? {
        let entry = entry.map_err(|e| Error::io("listing", from, e))?;
        link_or_copy(&entry.path(), &staging.path().join(entry.file_name()))?;
    }
    crate::durable::sync_dir(staging.path())?;
    let copy_name = dir_name(staging.path()).trim_start_matches('.').to_owned();
    let copy = root.join(&copy_name);
    let staging = staging.keep();
    crate::durable::rename(&staging, &copy)?;
    // Copies older than the current one go before the link moves, so the current one survives it.
    remove_stale_best(run_dir, Some(&copy_name))?;
    replace_best_link(&root, &copy_name)?;
    Ok(())
}

/// Points `root/best` at `target` (a name in `root`) by renaming a new link over it.
#[cfg(unix)]
fn replace_best_link(root: &Path, target: &str) -> Result<()> {
    let best = root.join(BEST);
    if best.is_dir() && !best.is_symlink() {
        // A run directory from before best became a link: the plain folder cannot be replaced by a
        // rename, so it goes first (the new copy is already complete).
        std::fs::remove_dir_all(&best).map_err(|e| Error::io("removing", &best, e))?;
    }
    let tmp = root.join(".best.link.partial");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(|e| Error::io("creating link", &tmp, e))?;
    crate::durable::rename(&tmp, &best)
}

/// Without symbolic links, `best` is a plain folder replaced by two renames.
#[cfg(not(unix))]
fn replace_best_link(root: &Path, target: &str) -> Result<()> {
    let best = root.join(BEST);
    let old = root.join(".best.old");
    let _ = std::fs::remove_dir_all(&old);
    if best.exists() {
        crate::durable::rename(&best, &old)?;
    }
    crate::durable::rename(&root.join(target), &best)?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}
