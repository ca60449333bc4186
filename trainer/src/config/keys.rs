//! The config as dotted keys: `--set key=value` overrides applied to the TOML table, the list of
//! valid keys, and the differences between two configs.

use super::Config;
use crate::error::{Error, Result};

/// One key whose value differs between two configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The dotted key, e.g. `optim.backbone.lr`.
    pub key: String,
    /// Its value in the first config (TOML syntax), or `(absent)`.
    pub left: String,
    /// Its value in the second config (TOML syntax), or `(absent)`.
    pub right: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} -> {}", self.key, self.left, self.right)
    }
}

impl Config {
    /// Every key whose value differs between `self` and `other`, in key order.
    pub fn differences(&self, other: &Config) -> Vec<Difference> {
        let flatten = |c: &Config| -> std::collections::BTreeMap<String, String> {
            let mut out = std::collections::BTreeMap::new();
            if let Ok(value) = toml::Value::try_from(c) {
                flatten_into("", &value, &mut out);
            }
            out
        };
        let (a, b) = (flatten(self), flatten(other));
        let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        keys.into_iter()
            .filter_map(|key| {
                let (l, r) = (a.get(key), b.get(key));
                (l != r).then(|| Difference {
                    key: key.clone(),
                    left: l.cloned().unwrap_or_else(|| "(absent)".into()),
                    right: r.cloned().unwrap_or_else(|| "(absent)".into()),
                })
            })
            .collect()
    }
}

/// Flattens a TOML value into dotted keys and values in TOML syntax.
fn flatten_into(
    prefix: &str,
    value: &toml::Value,
    out: &mut std::collections::BTreeMap<String, String>,
) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_into(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_owned(), other.to_string());
        }
    }
}

/// Sets `key=value` in `table`. The key must exist in the full config (so a typo is an error that
/// lists the valid keys, not a silently ignored setting); the value is parsed as TOML, falling back
/// to a string.
pub(super) fn apply_override(table: &mut toml::Table, assignment: &str) -> Result<()> {
    let Some((key, raw)) = assignment.split_once('=') else {
        return Err(Error::InvalidSetting {
            setting: "--set",
            expected: "key=value".into(),
            found: assignment.to_owned(),
        });
    };
    let key = key.trim();
    let valid = valid_keys();
    if !valid.iter().any(|k| k == key) {
        return Err(Error::UnknownConfigKey {
            key: key.to_owned(),
            valid: valid.join(", "),
        });
    }
    let value = toml::from_str::<toml::Table>(&format!("v = {}", raw.trim()))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.trim().to_owned()));
    let mut node = table;
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            node.insert(part.to_owned(), value);
            break;
        }
        let entry = node
            .entry(part.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(Error::UnknownConfigKey {
                    key: key.to_owned(),
                    valid: valid.join(", "),
                });
            }
        };
    }
    Ok(())
}

/// [`Config::default`] as a TOML table.
pub(super) fn default_table() -> toml::Table {
    match toml::Value::try_from(Config::default()) {
        Ok(toml::Value::Table(t)) => t,
        _ => toml::Table::new(),
    }
}

/// Lays `over` onto `base`, recursing into tables; keys only in `over` are kept so that
/// deserialisation can reject them by name.
pub(super) fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Every dotted key of the full config, e.g. `optim.backbone.lr`.
pub fn valid_keys() -> Vec<String> {
    let mut flat = std::collections::BTreeMap::new();
    flatten_into("", &toml::Value::Table(default_table()), &mut flat);
    flat.into_keys().collect()
}
