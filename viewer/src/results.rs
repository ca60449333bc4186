//! The results table: the headline evaluation figures a bundle carries (its run's `results.json`,
//! flattened by `mclr export`), for the bundle's own run and for every run recorded beside it
//! (`compare.<label>.<metric>`, e.g. SimCLR at the same budget), one column per run. It is what
//! lets a person judge the operators they are exploring against the method without them.

use std::collections::BTreeMap;

use mclr_shared::bundle::COMPARE_PREFIX;

/// The rows the table can show, in order: (label, metric key). A row is shown when at least one
/// run has its metric; every value is a fraction shown as a percentage.
pub const ROWS: [(&str, &str); 13] = [
    ("linear probe top-1", "linear.top1"),
    ("kNN top-1", "knn.top1"),
    ("weighted kNN top-1", "weighted_knn.top1"),
    ("k-means purity", "kmeans.purity"),
    (
        "semi-supervised, learned operators",
        "semi_supervised.learned-operators.mean",
    ),
    (
        "semi-supervised, pseudo-labels",
        "semi_supervised.pseudo-label.mean",
    ),
    ("semi-supervised, mixup", "semi_supervised.mixup.mean"),
    (
        "semi-supervised, FeatMatch",
        "semi_supervised.featmatch.mean",
    ),
    (
        "semi-supervised, labels only",
        "semi_supervised.supervised-only.mean",
    ),
    ("identity: probe on clean features", "identity.clean.mean"),
    (
        "identity: probe after prior moves",
        "identity.learned_prior.mean",
    ),
    (
        "identity: probe after random moves of equal norm",
        "identity.random_matched.mean",
    ),
    (
        "augmentation nearest neighbours agree",
        "augmentation_nn.agreement",
    ),
];

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRow {
    /// What the row measures.
    pub label: &'static str,
    /// The metric key (in the bundle's own metrics).
    pub key: &'static str,
    /// Each run's value as a fraction, in the order of [`ResultsTable::runs`].
    pub values: Vec<Option<f64>>,
}

/// The table: a column per run, the bundle's own first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResultsTable {
    /// Column headings: the bundle's method (e.g. `manifoldclr`), then each compared run's label
    /// in name order.
    pub runs: Vec<String>,
    /// The rows at least one run has a value for.
    pub rows: Vec<ResultRow>,
}

impl ResultsTable {
    /// The table of `metrics` (a bundle's), whose own run is called `own`. Empty (no rows) when
    /// the bundle carries no evaluation, as a live snapshot does.
    pub fn from_metrics(own: &str, metrics: &BTreeMap<String, f64>) -> Self {
        let mut compared: Vec<&str> = metrics
            .keys()
            .filter_map(|key| key.strip_prefix(COMPARE_PREFIX)?.strip_prefix('.'))
            .filter_map(|rest| rest.split_once('.').map(|(label, _)| label))
            .collect();
        compared.dedup();
        let mut runs = vec![own.to_owned()];
        runs.extend(compared.iter().map(|label| (*label).to_owned()));
        let rows = ROWS
            .iter()
            .map(|&(label, key)| ResultRow {
                label,
                key,
                values: std::iter::once(metrics.get(key).copied())
                    .chain(compared.iter().map(|run| {
                        metrics
                            .get(&format!("{COMPARE_PREFIX}.{run}.{key}"))
                            .copied()
                    }))
                    .collect(),
            })
            .filter(|row| row.values.iter().any(Option::is_some))
            .collect();
        Self { runs, rows }
    }

    /// Whether there is nothing to show.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// A fraction as the table shows it: `61.2 %`, or `–` when the run has no such figure.
pub fn format_value(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{:.1} %", 100.0 * v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|&(k, v)| (k.to_owned(), v)).collect()
    }

    #[test]
    fn own_and_compared_runs_become_columns_in_row_order() {
        let m = metrics(&[
            ("linear.top1", 0.61),
            ("identity.clean.mean", 0.6),
            ("compare.simclr.linear.top1", 0.58),
            ("compare.simclr.semi_supervised.pseudo-label.mean", 0.3),
            ("compare.seed-2.linear.top1", 0.6),
            ("epochs", 5.0),
        ]);
        let t = ResultsTable::from_metrics("manifoldclr", &m);
        assert_eq!(t.runs, ["manifoldclr", "seed-2", "simclr"]);
        let keys: Vec<&str> = t.rows.iter().map(|r| r.key).collect();
        assert_eq!(
            keys,
            [
                "linear.top1",
                "semi_supervised.pseudo-label.mean",
                "identity.clean.mean"
            ]
        );
        assert_eq!(t.rows[0].values, [Some(0.61), Some(0.6), Some(0.58)]);
        assert_eq!(t.rows[1].values, [None, None, Some(0.3)]);
        assert_eq!(t.rows[2].values, [Some(0.6), None, None]);
    }

    #[test]
    fn a_bundle_without_evaluation_has_an_empty_table() {
        let t = ResultsTable::from_metrics("manifoldclr", &metrics(&[("epochs", 3.0)]));
        assert!(t.is_empty());
        assert_eq!(t.runs, ["manifoldclr"]);
    }

    #[test]
    fn values_are_percentages_with_one_decimal() {
        assert_eq!(format_value(Some(0.6123)), "61.2 %");
        assert_eq!(format_value(None), "–");
    }
}
