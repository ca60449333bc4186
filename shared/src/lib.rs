//! What the mclr trainer and viewer must agree on: the versioned `.mclr` bundle format and the
//! reference math of ManifoldCLR's Lie group operators (matrix exponential, block-diagonal
//! transport, Laplace sampling, the prior and encoder heads, PCA and nearest neighbours), and the
//! percent codec of share links and request paths.
//!
//! The crate has no candle and no web-sys, so it builds for native targets and for
//! `wasm32-unknown-unknown` alike. Numbers computed here are the CPU reference that the trainer's
//! differentiable ops and the viewer's WGSL shaders are tested against.

pub mod bundle;
pub mod curves;
mod error;
pub mod expm;
pub mod geometry;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod operators;
pub mod percent;

pub use error::{Cause, Error, Result, error_chain};
