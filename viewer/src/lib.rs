//! The mclr viewer: a browser explorer of learned Lie group operators.
//!
//! Placeholder until the viewer issue lands: it only proves that the browser build of
//! `mclr-shared` links into a wasm32 crate.

pub use mclr_shared::bundle;
