//! The library's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the trainer library, grouped by concern. Each message says what
/// was expected and where (a path, a URL, a field), so that the person reading it knows what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- names and settings ----
    /// A dataset name that this build does not know.
    #[error("unknown dataset `{name}` (expected one of: {valid})")]
    UnknownDataset {
        /// The name as given.
        name: String,
        /// The accepted names, comma separated.
        valid: String,
    },
    /// A split name that this build does not know.
    #[error("unknown split `{name}` (expected one of: {valid})")]
    UnknownSplit {
        /// The name as given.
        name: String,
        /// The accepted names, comma separated.
        valid: String,
    },
    /// A setting outside its valid range (batch size 0, a probability above 1, ...).
    #[error("invalid setting `{setting}`: expected {expected}, found {found}")]
    InvalidSetting {
        /// Which setting.
        setting: &'static str,
        /// What is allowed.
        expected: String,
        /// What was given.
        found: String,
    },

    /// A `--config` that is neither a built-in name nor an existing file.
    #[error("unknown config `{name}`: not a file, and not a built-in config (one of: {valid})")]
    UnknownConfig {
        /// The name or path as given.
        name: String,
        /// The built-in config names, comma separated.
        valid: String,
    },
    /// A `--set` key that the config does not have.
    #[error("unknown config key `{key}` (valid keys: {valid})")]
    UnknownConfigKey {
        /// The dotted key as given.
        key: String,
        /// Every valid dotted key, comma separated.
        valid: String,
    },
    /// A config file that is not valid TOML or does not fit the config's structure, or a config
    /// that cannot be written as TOML.
    #[error("{action} config {source_name}")]
    Config {
        /// The built-in name or the file path.
        source_name: String,
        /// What was being done ("parsing", "reading the keys of", "serialising").
        action: &'static str,
        /// The TOML library's error (it names the offending key).
        #[source]
        source: Cause,
    },

    // ---- training ----
    /// A tensor operation failed (shape, dtype, device or backend error).
    #[error("tensor operation failed")]
    Candle(#[from] candle_core::Error),
    /// A loss term became NaN or infinite; training stopped at the next logging step or epoch
    /// end (where the loop reads its losses back), before any checkpoint was written.
    #[error(
        "step {step}: loss term `{term}` is {value}; training stopped and the last checkpoint in {} is intact",
        run_dir.display()
    )]
    NonFiniteLoss {
        /// Global iteration at which it happened.
        step: u64,
        /// Which term ("contrastive", "manifold", "kl", "shift", "total").
        term: &'static str,
        /// Its value.
        value: f64,
        /// The run directory holding the last good checkpoint.
        run_dir: PathBuf,
    },
    /// A training step failed with a backend error.
    #[error(
        "step {step} failed; training stopped and the last checkpoint in {} is intact",
        run_dir.display()
    )]
    Step {
        /// Global iteration at which it happened.
        step: u64,
        /// The backend's error (without the backtrace candle attaches when `RUST_BACKTRACE` is
        /// set).
        #[source]
        source: candle_core::Error,
        /// The run directory holding the last good checkpoint.
        run_dir: PathBuf,
    },
    /// A parameter group's gradient norm became NaN or infinite (with finite loss terms), found
    /// when the loop read its steps back.
    #[error(
        "step {step}: parameter group `{group}`: gradient norm is {value}; training stopped and the last checkpoint in {} is intact",
        run_dir.display()
    )]
    NonFiniteGradient {
        /// Global iteration at which it happened.
        step: u64,
        /// The parameter group.
        group: String,
        /// Its gradient norm.
        value: f64,
        /// The run directory holding the last good checkpoint.
        run_dir: PathBuf,
    },
    /// A checkpoint or run directory that cannot be written or resumed from.
    #[error("checkpoint {}: {reason}", path.display())]
    Checkpoint {
        /// The file or directory at fault.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A checkpoint file whose contents cannot be encoded or decoded (safetensors, JSON).
    #[error("checkpoint {}: cannot {action}", path.display())]
    CheckpointData {
        /// The file at fault.
        path: PathBuf,
        /// What could not be done ("decode the training state", "load the tensors", ...).
        action: &'static str,
        /// The underlying error.
        #[source]
        source: Cause,
    },
    /// A checkpoint that is incomplete or inconsistent with its manifest.
    #[error("checkpoint {} is incomplete or inconsistent: {problems}; {advice}", dir.display())]
    CorruptCheckpoint {
        /// The checkpoint folder.
        dir: PathBuf,
        /// Each file at fault and what is wrong with it.
        problems: String,
        /// What to do: the last good checkpoint, if any.
        advice: String,
    },
    /// A checkpoint that could not be written (disk full, I/O error); nothing was committed.
    #[error("writing the checkpoint of epoch {epoch} failed; nothing was committed: {last_good}")]
    CheckpointWrite {
        /// The epoch whose checkpoint failed.
        epoch: u64,
        /// What failed.
        #[source]
        source: Box<Error>,
        /// The checkpoint `--resume` continues from, in words.
        last_good: String,
    },
    /// `--resume` with a config (`--config`, `--set`) that differs from the run's.
    #[error(
        "--resume: the config given differs from the run's ({}): {differences}; only optim.epochs may change when resuming (start a new run for other changes)",
        checkpoint.display()
    )]
    ResumeConfigMismatch {
        /// The checkpoint whose config the run was trained with.
        checkpoint: PathBuf,
        /// Each differing key, `key: run's value -> given value`.
        differences: String,
    },
    /// A run's `config.toml` that was changed after the run started.
    #[error(
        "{} was edited after the run started: {differences}; the run's config is {} (restore it, or start a new run)",
        path.display(), checkpoint.display()
    )]
    ConfigEdited {
        /// The edited file.
        path: PathBuf,
        /// The config saved with the newest checkpoint.
        checkpoint: PathBuf,
        /// Each differing key, `key: run's value -> file's value`.
        differences: String,
    },

    // ---- dataset files on disk ----
    /// The dataset directory does not exist.
    #[error("dataset directory {path} does not exist; fetch it first with `{hint}`")]
    MissingDirectory {
        /// The directory looked for.
        path: PathBuf,
        /// The command that creates it.
        hint: String,
    },
    /// A file the dataset format requires is absent.
    #[error("{path} is missing: expected {expected}")]
    MissingFile {
        /// The file looked for.
        path: PathBuf,
        /// What it should hold (and how to get it).
        expected: String,
    },
    /// Reading or writing a file failed at the operating-system level.
    #[error("{action} {path}")]
    Io {
        /// What was being done ("reading", "writing", "renaming to", ...).
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A binary file whose length does not fit the format's record size.
    #[error("{path} is {len} bytes: expected {expected}")]
    FileSize {
        /// The file.
        path: PathBuf,
        /// Its length in bytes.
        len: u64,
        /// The rule it breaks, e.g. "a non-zero multiple of 3073 bytes (one CIFAR-10 record)".
        expected: String,
    },
    /// Two files (or a file and a list) that must describe the same number of images do not.
    #[error("{path} holds {found} {what}, but {expected} were expected ({reason})")]
    RecordCount {
        /// The file whose count is off.
        path: PathBuf,
        /// What is counted ("labels", "images", "class names").
        what: &'static str,
        /// The count found.
        found: usize,
        /// The count expected.
        expected: usize,
        /// Where the expected count comes from.
        reason: String,
    },
    /// A label outside the dataset's class range.
    #[error("{path}: record {index} has label {value}, expected {expected}")]
    InvalidLabel {
        /// The file holding the label.
        path: PathBuf,
        /// Record index within the file.
        index: usize,
        /// The label value as stored.
        value: u64,
        /// The valid range, e.g. "0..=9".
        expected: String,
    },
    /// A JSON file that does not parse, or a value that cannot be written as JSON.
    #[error("cannot {action} {}", path.display())]
    Json {
        /// What was being done ("parse the JSON of", "serialise the results for", ...).
        action: &'static str,
        /// The file read or written.
        path: PathBuf,
        /// The JSON library's error (it names the line and column of a parse error).
        #[source]
        source: serde_json::Error,
    },
    /// A text file (label list, annotation, class list) with a malformed line.
    #[error("{path}:{line}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number (0 when the whole file is at fault).
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// An image file that cannot be decoded.
    #[error("cannot decode image {path}")]
    Image {
        /// The image file (or the archive member).
        path: PathBuf,
        /// The decoder's complaint.
        #[source]
        source: image::ImageError,
    },
    /// An image (the export's thumbnail sheet) that cannot be encoded.
    #[error("cannot encode {what}")]
    ImageEncode {
        /// What was being encoded, e.g. "the thumbnail sheet as PNG".
        what: String,
        /// The encoder's error.
        #[source]
        source: image::ImageError,
    },
    /// An image whose dimensions differ from the rest of the dataset.
    #[error(
        "{path} is {found_width}x{found_height} pixels, expected {expected_width}x{expected_height}"
    )]
    ImageSize {
        /// The image file.
        path: PathBuf,
        /// Expected width in pixels.
        expected_width: usize,
        /// Expected height in pixels.
        expected_height: usize,
        /// Width found.
        found_width: usize,
        /// Height found.
        found_height: usize,
    },
    /// An in-memory image set whose buffers disagree with its declared shape.
    #[error("image set: expected {expected} {what}, found {found}")]
    Shape {
        /// Which buffer ("pixel bytes", "labels", ...).
        what: &'static str,
        /// Length implied by the declared shape.
        expected: usize,
        /// Length given.
        found: usize,
    },

    // ---- fetching ----
    /// A file whose MD5 differs from the official one: corrupt, truncated or not the official data.
    #[error(
        "checksum mismatch for {path}: expected md5 {expected}, found {found} (delete the file and fetch again)"
    )]
    ChecksumMismatch {
        /// The file (or archive) checked.
        path: PathBuf,
        /// The official MD5, lowercase hex.
        expected: String,
        /// The MD5 of the bytes on disk, lowercase hex.
        found: String,
    },
    /// An HTTP download failed.
    #[error("downloading {url} failed")]
    Download {
        /// The URL.
        url: String,
        /// Why: the HTTP client's error (connection, HTTP status) or the transfer's I/O error.
        #[source]
        source: Cause,
    },
    /// A download whose body ended before the length the server announced.
    #[error("downloading {url}: the transfer ended after {received} of {announced} bytes")]
    DownloadTruncated {
        /// The URL.
        url: String,
        /// Bytes received.
        received: u64,
        /// Bytes announced by `Content-Length`.
        announced: u64,
    },
    /// A download larger than the official archive: stopped at the cap.
    #[error(
        "downloading {url}: the server {found}, but the official archive is {limit} bytes; the download was stopped (is the URL still the official one?)"
    )]
    DownloadTooLarge {
        /// The URL.
        url: String,
        /// The cap: the official archive's size in bytes.
        limit: u64,
        /// What the server did: "announces N bytes" or "sent more than N bytes".
        found: String,
    },
    /// An installation that would replace something it did not create.
    #[error("refusing to replace {}: {reason}", path.display())]
    WouldReplace {
        /// The existing file or folder.
        path: PathBuf,
        /// Why it is left alone, and what to do.
        reason: String,
    },
    /// An external program the fetch needs is not installed.
    #[error("`{tool}` is required but was not found on PATH; install it with `{install}`")]
    ToolMissing {
        /// The program name.
        tool: &'static str,
        /// How to install it.
        install: &'static str,
    },
    /// An external program ran but failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    ToolFailed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The tail of its standard error.
        stderr: String,
    },
    /// An archive that is unreadable or lacks a member the format requires.
    #[error("archive {path}: {reason}")]
    Archive {
        /// The archive file.
        path: PathBuf,
        /// What is wrong (missing member, bad header, ...).
        reason: String,
    },
    /// An archive (or one of its members) that cannot be read.
    #[error("archive {}: cannot read {what}", path.display())]
    ArchiveRead {
        /// The archive file (or the member, as `archive/member`).
        path: PathBuf,
        /// What could not be read ("its entries", "member X", ...).
        what: String,
        /// The underlying error (I/O, zip, JSON).
        #[source]
        source: Cause,
    },
    /// `--offline` was asked for a dataset that has no offline source.
    #[error(
        "{dataset} has no offline source: download {url} on a machine with network access and extract it into {dir}"
    )]
    OfflineUnavailable {
        /// The dataset.
        dataset: &'static str,
        /// The official archive.
        url: &'static str,
        /// Where its contents belong.
        dir: PathBuf,
    },

    // ---- bundles ----
    /// An error of the shared crate: a viewer bundle that cannot be built, encoded or decoded
    /// (the typed error names the section or field at fault), or a shared computation (PCA,
    /// Laplace sampling, a kNN index) that refused its input.
    #[error(transparent)]
    Bundle(#[from] mclr_shared::Error),

    // ---- loader ----
    /// The loader's worker pool could not be created.
    #[error("cannot start a worker pool of {threads} threads")]
    ThreadPool {
        /// Threads asked for.
        threads: usize,
        /// The error given by rayon or by the thread spawn.
        #[source]
        source: Cause,
    },
}

impl Error {
    /// Wraps an I/O error with the action and the path it concerns.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// The underlying error of a variant whose cause can be of several types (the concrete error,
/// boxed; `downcast_ref` recovers it).
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with the trainer's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
