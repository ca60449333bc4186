//! What the cross-crate tests share: a static server for the built site ([`site`]), the
//! project's headless Chromium setup ([`chromium`]) and a blocking W3C WebDriver client
//! ([`webdriver`]). The tests themselves live in this crate's `tests/` folder; `cargo xtask
//! serve` reuses [`site`].

pub mod chromium;
pub mod error;
pub mod site;
pub mod webdriver;

pub use error::{Error, Result};
