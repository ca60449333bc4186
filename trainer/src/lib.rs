//! The mclr trainer as a library: datasets, augmentations, models, training, evaluation and
//! export. The `mclr` binary is a thin command line over it.
//!
//! * [`data`]: dataset constants (docs/method.md §8), fetching and verifying the official files, reading
//!   them into an in-memory [`data::ImageSet`], and the batch loaders;
//! * [`augment`]: the SSL augmentation recipe and the evaluation transform;
//! * [`model`], [`expm`]: ResNet-18, projection head, operators with a differentiable matrix
//!   exponential, coefficient encoder and prior (docs/method.md §2–4);
//! * [`losses`], [`sampling`]: the objective of docs/method.md §5–6;
//! * [`feature_aug`]: the paper's feature-space Gaussian-noise and mixup ablations;
//! * [`optim`], [`schedule`], [`config`], [`train`]: AdamW with parameter groups, the learning-rate
//!   schedule, the paper's configs and the training loop with checkpoints (docs/method.md §7, §9);
//! * [`readback`]: the training loop's counted device-to-host reads;
//! * [`eval`]: the protocols of docs/method.md §10 on frozen features;
//! * [`run`]: a run directory opened for evaluation or export;
//! * [`export`]: a run as a `.mclr` bundle for the viewer.
//!
//! Errors are one enum, [`Error`], whose messages say what was expected and where; the error that
//! caused one (an OS error, a parser's complaint) is its `source()`, not part of its message, and
//! [`error_chain`] prints an error with its causes on one line.

pub mod augment;
pub mod config;
pub mod data;
pub mod durable;
mod error;
pub mod eval;
pub mod expm;
pub mod export;
pub mod feature_aug;
pub mod losses;
pub mod model;
pub mod optim;
pub mod readback;
pub mod run;
pub mod sampling;
pub mod schedule;
pub mod train;

pub use error::{Cause, Error, Result};
pub use mclr_shared::error_chain;

/// The environment variable that sizes candle's own CPU thread pool (its elementwise ops).
pub const CANDLE_THREADS_VAR: &str = "CANDLE_NUM_THREADS";

/// Gives candle's own CPU thread pool a single thread, unless the user set [`CANDLE_THREADS_VAR`].
///
/// candle 0.11 runs its elementwise ops on a pool of spinning threads, separate from rayon's pool
/// where this crate's kernels (convolutions, batch norm, expm) and the GEMMs run. With both pools
/// sized to every core, their threads spin against each other: on 2 cores the `demo` step took
/// 2.5× longer. With one candle thread, the small elementwise ops run inline and the cores belong
/// to rayon.
///
/// # Safety
/// Sets an environment variable, so it must run before any other thread exists: first thing in
/// `main`.
#[allow(unsafe_code)]
pub unsafe fn prefer_rayon_threads() {
    if std::env::var_os(CANDLE_THREADS_VAR).is_none() {
        // SAFETY: the caller guarantees that no other thread exists yet (see above).
        unsafe { std::env::set_var(CANDLE_THREADS_VAR, "1") };
    }
}
