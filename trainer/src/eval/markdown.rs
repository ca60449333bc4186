//! `results.md`: the evaluation results as one Markdown table, one column per evaluated model
//! (e.g. the trained run next to its random-initialisation baseline), percentages with one
//! decimal, `mean ± std` where there are trials, `–` where a protocol was not run.

use std::fmt::Write as _;

use super::suite::EvalResults;

/// How a row reads its cell from one column's results.
type Cell = Box<dyn Fn(&EvalResults) -> Option<String>>;

/// One table row: its label and how to read its value.
struct Row {
    label: String,
    value: Cell,
}

impl Row {
    fn new(
        label: impl Into<String>,
        value: impl Fn(&EvalResults) -> Option<String> + 'static,
    ) -> Self {
        Self {
            label: label.into(),
            value: Box::new(value),
        }
    }
}

/// The results of `columns` as a Markdown document: a heading, what was evaluated, the table and
/// the time each step took.
pub fn results_table(columns: &[&EvalResults]) -> String {
    let mut out = String::new();
    let Some(first) = columns.first() else {
        return out;
    };
    // Writing to a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(
        out,
        "# Evaluation of `{}` on {}\n\n{} training and {} test images, d = {} (frozen backbone \
         features, eval transform).\n",
        first.run, first.dataset, first.train_rows, first.test_rows, first.feature_dim
    );
    let header: Vec<String> = columns.iter().map(|c| column_name(c)).collect();
    let _ = writeln!(out, "| protocol | {} |", header.join(" | "));
    let _ = writeln!(out, "|---|{}", "---:|".repeat(columns.len()));
    for row in rows(first) {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| (row.value)(c).unwrap_or_else(|| "–".to_owned()))
            .collect();
        if cells.iter().all(|c| c == "–") {
            continue;
        }
        let _ = writeln!(out, "| {} | {} |", row.label, cells.join(" | "));
    }
    let _ = writeln!(out);
    for column in columns {
        let times: Vec<String> = column
            .seconds
            .iter()
            .map(|(step, s)| format!("{step} {s:.0} s"))
            .collect();
        let _ = writeln!(out, "Time ({}): {}.", column.weights, times.join(", "));
        for (protocol, reason) in &column.skipped {
            let _ = writeln!(out, "Skipped `{protocol}` ({}): {reason}.", column.weights);
        }
    }
    out
}

/// The rows, labelled with the settings of `first` (semi-supervised rows per method it has).
fn rows(first: &EvalResults) -> Vec<Row> {
    let mut rows = vec![
        Row::new("linear probe, top-1", |r| {
            r.report.linear.map(|p| pct(p.top1))
        }),
        Row::new("linear probe, top-5", |r| {
            r.report.linear.map(|p| pct(p.top5))
        }),
        Row::new("kNN, k = 5 cosine majority", |r| {
            r.report.knn.map(|k| pct(k.top1))
        }),
        Row::new("kNN, k = 200 τ = 0.1 weighted", |r| {
            r.report.weighted_knn.map(|k| pct(k.top1))
        }),
        Row::new("k-means purity", |r| r.report.kmeans.map(|k| pct(k.purity))),
    ];
    for s in &first.report.semi_supervised {
        let label = format!(
            "semi-supervised ({} labels/class, {} trials × {} iterations): {}",
            s.labels_per_class,
            s.trials.len(),
            s.iterations,
            s.method
        );
        let method = s.method.clone();
        rows.push(Row::new(label, move |r| semi_cell(r, &method)));
    }
    for s in first
        .report
        .semi_supervised
        .iter()
        .filter(|s| s.pseudo_labels.is_some())
    {
        let label = format!(
            "semi-supervised {}: confident share (pseudo-labels right), first → last tenth of the iterations",
            s.method
        );
        let method = s.method.clone();
        rows.push(Row::new(label, move |r| pseudo_label_cell(r, &method)));
    }
    let augment_nn_label = match &first.report.augmentation_nn {
        Some(a) if !a.setting.is_empty() => {
            format!("augmentation NN ({}): label agreement (unmoved)", a.setting)
        }
        _ => "augmentation NN: label agreement (unmoved)".to_owned(),
    };
    let repeats = first.report.identity.map_or(0, |i| i.repeats);
    rows.extend([
        Row::new(
            format!(
                "identity (authors' protocol, {repeats} repeats): probe on clean test features"
            ),
            |r| r.report.identity.as_ref().map(|i| mean_std(i.clean)),
        ),
        Row::new(
            "identity (authors' protocol): moved by learned-prior samples",
            |r| {
                r.report
                    .identity
                    .as_ref()
                    .map(|i| mean_std(i.learned_prior))
            },
        ),
        Row::new(
            "identity (authors' protocol): moved by fixed-prior (hyperprior) samples",
            |r| r.report.identity.as_ref().map(|i| mean_std(i.fixed_prior)),
        ),
        Row::new(
            "identity (authors' protocol): random moves of norm dist² (their quirk)",
            |r| r.report.identity.as_ref().map(|i| mean_std(i.random)),
        ),
        Row::new(
            "identity, variant: fixed prior at location 0 with the mean learned scale",
            |r| {
                r.report
                    .identity
                    .as_ref()
                    .map(|i| mean_std(i.fixed_prior_mean_scale))
            },
        ),
        Row::new(
            "identity, variant: random moves of matched norm dist",
            |r| {
                r.report
                    .identity
                    .as_ref()
                    .map(|i| mean_std(i.random_matched))
            },
        ),
        Row::new("identity: mean ‖T(c̃)z − z‖ / ‖z‖", |r| {
            r.report
                .identity
                .as_ref()
                .map(|i| format!("{:.3}", i.mean_relative_shift))
        }),
        Row::new(augment_nn_label, |r| {
            r.report
                .augmentation_nn
                .as_ref()
                .map(|a| format!("{} ({})", pct(a.agreement), pct(a.clean_agreement)))
        }),
    ]);
    rows
}

/// The semi-supervised cell of `method` in `r`, as `mean ± std`.
fn semi_cell(r: &EvalResults, method: &str) -> Option<String> {
    r.report
        .semi_supervised
        .iter()
        .find(|s| s.method == method)
        .map(|s| format!("{} ± {:.1}", pct(s.mean), 100.0 * s.std))
}

/// The pseudo-label trend of `method` in `r`, as `confident (right) → confident (right)`.
fn pseudo_label_cell(r: &EvalResults, method: &str) -> Option<String> {
    let trend = r
        .report
        .semi_supervised
        .iter()
        .find(|s| s.method == method)?
        .pseudo_labels?;
    let window = |c: super::PseudoLabelCounts| {
        let right = c
            .accuracy()
            .map_or_else(|| "none confident".to_owned(), pct);
        format!("{} ({right})", pct(c.confident_share()))
    };
    Some(format!("{} → {}", window(trend.first), window(trend.last)))
}

/// A mean ± std of fractions, as percentages with two decimals (as the paper's figure).
fn mean_std(m: super::MeanStd) -> String {
    format!("{:.2}% ± {:.2}", 100.0 * m.mean, 100.0 * m.std)
}

/// What a column evaluated: the trained run (with its epochs) or the untrained baseline.
fn column_name(results: &EvalResults) -> String {
    match (results.weights.as_str(), results.epochs) {
        ("trained", 1) => "trained, 1 epoch".to_owned(),
        ("trained", epochs) => format!("trained, {epochs} epochs"),
        ("random-init", _) => "random init (untrained)".to_owned(),
        (other, _) => other.to_owned(),
    }
}

/// A fraction as a percentage with one decimal.
fn pct(fraction: f64) -> String {
    format!("{:.1}%", 100.0 * fraction)
}
