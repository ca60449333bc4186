//! Training curves read from a run's `metrics.jsonl`: every number the trainer logs, as one series
//! per name against the optimiser step.
//!
//! The trainer writes one JSON object per logged step (`step`, `epoch`, the loss terms, learning
//! rates and gradient norms per parameter group, throughput and the diagnostics of
//! docs/method.md §11). This module does not know those names: it flattens each object into dotted
//! paths (`loss.total`, `lr.backbone`, `manifold.operator_norms[3]`), so a term added to the log
//! later shows up in the viewer without a change here. The viewer's curves panel and its tests
//! read logs through this one parser, from a served run, a dropped file or a bundle's
//! [`crate::bundle::RunRecord`].

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{Error, Result};

/// The x axis of every series: the optimiser step of the record.
pub const STEP_KEY: &str = "step";

/// One named curve: `(step, value)` points in the order of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Dotted path of the value in each record, e.g. `loss.kl` or `grad_norm.operators`.
    pub name: String,
    /// The points, one per record that holds a finite number at `name`.
    pub points: Vec<(u64, f64)>,
}

impl Series {
    /// Smallest and largest value, or `None` for an empty series.
    pub fn range(&self) -> Option<(f64, f64)> {
        self.points.iter().fold(None, |acc, &(_, v)| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
    }

    /// Whether the series is best read on a log scale: every value is positive and the largest
    /// is at least 100 times the smallest (two decades), as the KL weight's warm-up and the KL
    /// term itself are.
    pub fn spans_decades(&self) -> bool {
        match self.range() {
            Some((lo, hi)) => lo > 0.0 && hi >= 100.0 * lo,
            None => false,
        }
    }

    /// The first part of the dotted name (`loss` for `loss.kl`), which the viewer groups by.
    pub fn group(&self) -> &str {
        let end = self.name.find(['.', '[']).unwrap_or(self.name.len());
        self.name.get(..end).unwrap_or(&self.name)
    }
}

/// Every series of one log, sorted by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Curves {
    /// The series, sorted by [`Series::name`].
    pub series: Vec<Series>,
    /// Number of records read.
    pub records: usize,
    /// Step of the last record, if any.
    pub last_step: Option<u64>,
}

impl Curves {
    /// The series called `name`.
    pub fn get(&self, name: &str) -> Option<&Series> {
        self.series
            .binary_search_by(|s| s.name.as_str().cmp(name))
            .ok()
            .and_then(|i| self.series.get(i))
    }
}

/// Reads a `metrics.jsonl` text.
///
/// Blank lines are skipped. A last line without its newline that does not parse is skipped too:
/// a log read while the trainer is appending to it may end in half a record. Any other line that
/// is not a JSON object with a non-negative integer `step` is [`Error::TrainingLog`] naming the
/// line (1-based). Non-numeric values (strings, booleans, `null` for a non-finite number) are
/// left out of the series.
pub fn parse(jsonl: &str) -> Result<Curves> {
    let mut by_name: BTreeMap<String, Vec<(u64, f64)>> = BTreeMap::new();
    let mut records = 0;
    let mut last_step = None;
    let complete = jsonl.ends_with('\n');
    let lines: Vec<&str> = jsonl.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let line_no = i.saturating_add(1);
        if line.trim().is_empty() {
            continue;
        }
        let partial_tail = !complete && line_no == lines.len();
        let object = match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(object)) => object,
            Ok(_) if partial_tail => continue,
            Ok(_) => return Err(log_error(line_no, "is not a JSON object")),
            Err(_) if partial_tail => continue,
            Err(e) => {
                return Err(log_error(
                    line_no,
                    format!("is not valid JSON (column {})", e.column()),
                ));
            }
        };
        let Some(step) = object.get(STEP_KEY).and_then(Value::as_u64) else {
            return Err(log_error(
                line_no,
                format!("has no non-negative integer `{STEP_KEY}`"),
            ));
        };
        for (key, value) in &object {
            if key != STEP_KEY {
                flatten(key.clone(), value, step, &mut by_name);
            }
        }
        records += 1;
        last_step = Some(step);
    }
    Ok(Curves {
        series: by_name
            .into_iter()
            .map(|(name, points)| Series { name, points })
            .collect(),
        records,
        last_step,
    })
}

/// Adds every finite number under `value` to `out`, named by its dotted path from `name`.
fn flatten(name: String, value: &Value, step: u64, out: &mut BTreeMap<String, Vec<(u64, f64)>>) {
    match value {
        Value::Number(n) => {
            if let Some(v) = n.as_f64().filter(|v| v.is_finite()) {
                out.entry(name).or_default().push((step, v));
            }
        }
        Value::Object(object) => {
            for (key, inner) in object {
                flatten(format!("{name}.{key}"), inner, step, out);
            }
        }
        Value::Array(items) => {
            for (i, inner) in items.iter().enumerate() {
                flatten(format!("{name}[{i}]"), inner, step, out);
            }
        }
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
}

/// An [`Error::TrainingLog`] at 1-based `line`.
fn log_error(line: usize, reason: impl Into<String>) -> Error {
    Error::TrainingLog {
        line,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const LOG: &str = concat!(
        r#"{"step":0,"epoch":0,"loss":{"total":4.5,"kl":56.0},"lr":{"backbone":0.0},"manifold":{"operator_norms":[1.5,2.5]}}"#,
        "\n",
        r#"{"step":10,"epoch":0,"loss":{"total":4.0,"kl":0.2},"lr":{"backbone":0.001},"manifold":{"operator_norms":[1.0,3.0]},"note":"x","gap":null}"#,
        "\n",
    );

    #[test]
    fn nested_values_become_dotted_series_against_the_step() {
        let curves = parse(LOG).unwrap();
        assert_eq!(curves.records, 2);
        assert_eq!(curves.last_step, Some(10));
        assert_eq!(
            curves.get("loss.total").unwrap().points,
            vec![(0, 4.5), (10, 4.0)]
        );
        assert_eq!(
            curves.get("manifold.operator_norms[1]").unwrap().points,
            vec![(0, 2.5), (10, 3.0)]
        );
        assert_eq!(
            curves.get("epoch").unwrap().points,
            vec![(0, 0.0), (10, 0.0)]
        );
        assert!(curves.get("note").is_none() && curves.get("gap").is_none());
        assert!(curves.get("step").is_none());
        let names: Vec<&str> = curves.series.iter().map(|s| s.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
    }

    #[test]
    fn log_scale_is_chosen_only_for_positive_series_spanning_two_decades() {
        let curves = parse(LOG).unwrap();
        assert!(curves.get("loss.kl").unwrap().spans_decades());
        assert!(!curves.get("loss.total").unwrap().spans_decades());
        // Zero rules out a log axis however wide the range.
        assert!(!curves.get("lr.backbone").unwrap().spans_decades());
        assert_eq!(
            curves.get("manifold.operator_norms[0]").unwrap().group(),
            "manifold"
        );
        assert_eq!(curves.get("loss.kl").unwrap().group(), "loss");
        assert_eq!(curves.get("epoch").unwrap().group(), "epoch");
    }

    #[test]
    fn a_half_written_last_line_is_skipped_but_a_broken_middle_line_is_an_error() {
        let partial = format!("{LOG}{{\"step\":20,\"loss\":{{\"to");
        assert_eq!(parse(&partial).unwrap(), parse(LOG).unwrap());
        let broken = format!("{{\"step\":1,\"x\n{LOG}");
        let err = parse(&broken).unwrap_err();
        assert!(matches!(err, Error::TrainingLog { line: 1, .. }), "{err}");
        let no_step = "{\"loss\":1.0}\n";
        let err = parse(no_step).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        assert!(err.to_string().contains("`step`"), "{err}");
    }
}
