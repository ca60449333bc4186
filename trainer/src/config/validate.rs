//! Checking a config's settings against each other, and its name, naming the offending key.

use std::path::Path;

use super::{Config, Method};
use crate::error::{Error, Result};

impl Config {
    /// Checks the settings against each other (shapes, ranges), naming the offending key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &'static str, expected: &str, found: String| {
            Err(Error::InvalidSetting {
                setting: key,
                expected: expected.into(),
                found,
            })
        };
        validate_name(&self.name)?;
        self.dataset()?;
        if self.model.base_width == 0 {
            return bad("model.base_width", "a positive width", "0".into());
        }
        if self.method.kind == Method::Manifoldclr {
            let (d, n) = (self.feature_dim(), self.method.block_size);
            if n == 0 || !d.is_multiple_of(n) {
                return bad(
                    "method.block_size",
                    &format!("a divisor of d = {d}"),
                    n.to_string(),
                );
            }
            if self.method.operators == 0 {
                return bad("method.operators", "at least one operator", "0".into());
            }
            if !(self.method.threshold.is_finite() && self.method.threshold >= 0.0) {
                return bad(
                    "method.threshold",
                    "finite and >= 0",
                    self.method.threshold.to_string(),
                );
            }
            if self.method.best_of_j == 0 {
                return bad("method.best_of_j", "at least 1 draw", "0".into());
            }
        }
        if self.method.kind.is_feature_augmentation() {
            if self.model.projection_head {
                return bad(
                    "model.projection_head",
                    "false: the feature-augmentation ablations contrast backbone features (the \
                     reference's configs disable the head)",
                    "true".into(),
                );
            }
            let scale = self.method.feature_noise_scale;
            if !(scale.is_finite() && scale >= 0.0) {
                return bad(
                    "method.feature_noise_scale",
                    "finite and >= 0",
                    scale.to_string(),
                );
            }
            let d = self.feature_dim();
            if self.method.feature_aug_per_dimension && self.optim.batch_size != d {
                return bad(
                    "optim.batch_size",
                    &format!(
                        "the feature dimension d = {d} with method.feature_aug_per_dimension \
                         (one draw per dimension, broadcast as in the reference)"
                    ),
                    self.optim.batch_size.to_string(),
                );
            }
        }
        if self.optim.batch_size < 2 {
            return bad(
                "optim.batch_size",
                "at least 2 (contrastive pairs)",
                self.optim.batch_size.to_string(),
            );
        }
        if self.optim.epochs == 0 {
            return bad("optim.epochs", "at least 1", "0".into());
        }
        if self.loss.temperature.is_nan() || self.loss.temperature <= 0.0 {
            return bad("loss.temperature", "> 0", self.loss.temperature.to_string());
        }
        Ok(())
    }
}

/// Checks that a run name is a plain folder name: `runs/<name>` must stay inside `runs/`.
fn validate_name(name: &str) -> Result<()> {
    let problem = if name.is_empty() {
        Some("is empty")
    } else if name == "." || name == ".." || name.split(['/', '\\']).any(|part| part == "..") {
        Some("contains `..`")
    } else if Path::new(name).is_absolute() || name.starts_with(['/', '\\']) {
        Some("is an absolute path")
    } else if name.contains(['/', '\\']) {
        Some("contains a path separator")
    } else if name.contains(['\0', ':']) {
        Some("contains `:` or a NUL byte")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(Error::InvalidSetting {
            setting: "name",
            expected: format!(
                "a plain folder name (letters, digits, `-`, `_`, `.`), since runs go to runs/<name>; `{name}` {problem}"
            ),
            found: name.to_owned(),
        }),
        None => Ok(()),
    }
}
