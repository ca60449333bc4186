//! The mclr trainer as a library: datasets, augmentations and (later) models, training,
//! evaluation and export. The `mclr` binary is a thin command line over it.
//!
//! * [`data`]: dataset constants (SPEC §8), fetching and verifying the official files, reading
//!   them into an in-memory [`data::ImageSet`], and the batch loaders;
//! * [`augment`]: the SSL augmentation recipe and the evaluation transform.
//!
//! Errors are one enum, [`Error`], whose messages say what was expected and where.

pub mod augment;
pub mod config;
pub mod data;
mod error;
pub mod expm;
pub mod losses;
pub mod model;
pub mod optim;
pub mod sampling;
pub mod schedule;
pub mod train;

pub use error::{Error, Result};
