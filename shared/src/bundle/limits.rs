//! The largest bundle this crate decodes and validates. Every cap is checked before the work or the
//! memory it bounds: counts and lengths while decoding (before allocating), sizes in
//! [`super::validate`] (before any consumer runs expm, eigenvalues or a PNG decoder on them).
//!
//! The caps are far above what `mclr export` writes (d = 512 with n = 64, a 10 000-image gallery
//! of 32–64 px tiles, ten to two hundred classes) and far below what would exhaust a browser tab.
//! ARCHITECTURE.md (bundle section) lists them; RELIABILITY.md says how they are tested.

/// n: largest operator block. The CPU engine runs an n×n expm per block per step.
pub const MAX_BLOCK_SIZE: usize = 256;

/// K: most blocks per operator.
pub const MAX_BLOCKS: usize = 1024;

/// d = K·n: largest feature dimension.
pub const MAX_FEATURE_DIM: usize = 4096;

/// M: most operators.
pub const MAX_OPERATORS: usize = 1024;

/// M·K·n²: most operator coefficients in all (64 Mi floats, 256 MiB as f32).
pub const MAX_OPERATOR_ELEMENTS: usize = 1 << 26;

/// N: most gallery rows.
pub const MAX_GALLERY: usize = 200_000;

/// C: most classes.
pub const MAX_CLASSES: usize = 4096;

/// Longest class name, in bytes of UTF-8.
pub const MAX_CLASS_NAME_BYTES: usize = 256;

/// Longest short string (dataset, method, producer, split, metric name), in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// Longest configuration text (`metadata.config_toml`), in bytes.
pub const MAX_CONFIG_BYTES: usize = 1 << 20;

/// Most evaluation metrics.
pub const MAX_METRICS: usize = 1024;

/// Most trunk layers of the prior or the encoder MLP.
pub const MAX_LAYERS: usize = 64;

/// Highest array rank on the wire (the format's arrays have rank 1, 2 or 4).
pub const MAX_RANK: usize = 8;

/// Most pixels of the decoded thumbnail sheet (8192 × 8192, 256 MiB as RGBA), read from the
/// PNG or JPEG header before anything decodes it.
pub const MAX_SHEET_PIXELS: u64 = 1 << 26;

/// Longest file name a bundle may reference beside itself (`thumbnails.sheet_file`), in bytes.
pub const MAX_FILE_NAME_BYTES: usize = 255;

/// Most training logs in one bundle (the run's own and the runs it is compared with).
pub const MAX_TRAINING_LOGS: usize = 16;

/// Longest training log (`metrics.jsonl`), in bytes: a long run logged every few steps.
pub const MAX_TRAINING_LOG_BYTES: usize = 16 << 20;
