//! The mclr trainer as a library: datasets, augmentations, models, training, evaluation and
//! export. The `mclr` binary is a thin command line over it.
//!
//! * [`data`]: dataset constants (SPEC §8), fetching and verifying the official files, reading
//!   them into an in-memory [`data::ImageSet`], and the batch loaders;
//! * [`augment`]: the SSL augmentation recipe and the evaluation transform;
//! * [`model`], [`expm`]: ResNet-18, projection head, operators with a differentiable matrix
//!   exponential, coefficient encoder and prior (SPEC §2–4);
//! * [`losses`], [`sampling`]: the objective of SPEC §5–6;
//! * [`optim`], [`schedule`], [`config`], [`train`]: AdamW with parameter groups, the learning-rate
//!   schedule, the paper's configs and the training loop with checkpoints (SPEC §7, §9);
//! * [`eval`]: the protocols of SPEC §10 on frozen features;
//! * [`run`]: a run directory opened for evaluation or export;
//! * [`export`]: a run as a `.mclr` bundle for the viewer.
//!
//! Errors are one enum, [`Error`], whose messages say what was expected and where.

pub mod augment;
pub mod config;
pub mod data;
mod error;
pub mod eval;
pub mod expm;
pub mod export;
pub mod losses;
pub mod model;
pub mod optim;
pub mod run;
pub mod sampling;
pub mod schedule;
pub mod train;

pub use error::{Error, Result};
