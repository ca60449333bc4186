//! What the cross-crate tests share: the server the browser tests load the built site from
//! ([`site`], which is `mclr-serve`, also behind `cargo xtask serve` and `mclr view`), the
//! project's headless Chromium setup ([`chromium`]) and a blocking W3C WebDriver client
//! ([`webdriver`]). The tests themselves live in this crate's `tests/` folder.

pub mod chromium;
pub mod error;
pub mod webdriver;

/// The site server (`mclr-serve`), under the name the tests have always used.
pub use mclr_serve as site;

pub use error::{Error, Result};
