//! The mclr viewer: a browser app (Leptos, client-side rendered, compiled to wasm32) that opens a
//! `.mclr` bundle and shows what the learned operators do — the gallery in a PCA scatter, the
//! operators by norm, and animated paths z(t) = T(t·c) z0 with the nearest gallery images of the
//! moving point — and keeps the whole view in a share link.
//!
//! The modules outside `web` are plain Rust and tested natively: the share-link state, the
//! compute engine's CPU path and its choice, the digest of a bundle, the path player, prior
//! sampling, transport A → B, operator analytics, the results table, chart axes, the training curves' layout, follow
//! mode's decisions and the first view's picks. `web` is the browser app and only exists on
//! wasm32.

pub mod chart;
pub mod curve_plot;
pub mod engine;
pub mod error;
pub mod first_view;
pub mod follow;
pub mod inspect;
/// The share link's percent codec, which lives in `mclr-shared` so that the site server
/// decodes request paths with the same code.
pub use mclr_shared::percent;
pub mod player;
pub mod prior;
pub mod results;
pub mod session;
pub mod state;
pub mod transport;
pub mod viewport;
#[cfg(target_arch = "wasm32")]
mod web;

pub use error::{Result, ViewerError};
