//! The training-curves panel without the browser: which runs it shows ([`RunLogs`]: the bundle's
//! logs, the followed run's `metrics.jsonl`, dropped files), how their series are grouped into
//! charts ([`layout`]), and each chart's geometry ([`Frame`]: step on x, value on y, log10 when
//! the chart's values span decades), so that the SVG the panel draws is tested natively.
//!
//! Logs are read by [`mclr_shared::curves::parse`], the one parser; this module only arranges
//! what it returns. Every series is drawn, so every number the trainer logs is reachable: the
//! series of a group (`loss`, `lr`, `grad_norm`, `manifold`, then the diagnostics) get one chart
//! each, an array's elements (`manifold.operator_norms[0]`, `[1]`, …) share one chart, and the
//! runs are overlaid in every chart, one colour each.

use mclr_shared::bundle::TrainingLog;
use mclr_shared::curves::{self, Curves, Series};

use crate::chart::{Scale, Tick, nice_ticks, tick_label};
use crate::follow::thousands;

/// Most points drawn per line: longer series are thinned for drawing (the lowest and highest
/// value of each stretch kept, in order); the path's `data-points` still lists every point.
pub const MAX_DRAWN_POINTS: usize = 4096;

/// Groups in display order; others follow alphabetically.
const GROUP_ORDER: [&str; 4] = ["loss", "lr", "grad_norm", "manifold"];

/// Where a run's log came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The bundle's `run.training_logs`.
    Bundle,
    /// `metrics.jsonl` beside a followed bundle.
    Followed,
    /// A `.jsonl` file the person dropped or opened.
    File,
}

/// One run's log as the panel holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunLog {
    /// The legend's name for the run.
    pub label: String,
    /// Where the log came from.
    pub origin: Origin,
    /// The parsed log, or why it could not be read (shown instead of its curves).
    pub curves: Result<Curves, String>,
}

impl RunLog {
    /// Parses `jsonl` as the run `label`.
    pub fn parse(label: &str, origin: Origin, jsonl: &str) -> Self {
        Self {
            label: label.to_owned(),
            origin,
            curves: curves::parse(jsonl).map_err(|e| e.to_string()),
        }
    }
}

/// The runs the panel shows, in legend order: the run's own log (the followed `metrics.jsonl`
/// when there is one, else the bundle's first log), the bundle's other logs (runs compared with
/// it), then dropped files in the order they came.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunLogs {
    bundle: Vec<RunLog>,
    followed: Option<RunLog>,
    files: Vec<RunLog>,
}

impl RunLogs {
    /// Replaces the bundle's logs (a new bundle, or a followed one swapped in).
    pub fn set_bundle(&mut self, logs: &[TrainingLog]) {
        self.bundle = logs
            .iter()
            .map(|log| RunLog::parse(&log.label, Origin::Bundle, &log.jsonl))
            .collect();
    }

    /// Sets the followed run's log, read from `metrics.jsonl` beside the bundle; it stands in
    /// for the bundle's own log.
    pub fn set_followed(&mut self, label: &str, jsonl: &str) {
        self.followed = Some(RunLog::parse(label, Origin::Followed, jsonl));
    }

    /// Forgets the followed log (another bundle was opened).
    pub fn clear_followed(&mut self) {
        self.followed = None;
    }

    /// Adds a dropped or opened file as another run, labelled by its name; a file of the same
    /// name replaces the earlier one.
    pub fn add_file(&mut self, name: &str, jsonl: &str) {
        let log = RunLog::parse(name, Origin::File, jsonl);
        if let Some(slot) = self.files.iter_mut().find(|f| f.label == name) {
            *slot = log;
        } else {
            self.files.push(log);
        }
    }

    /// Every run in legend order.
    pub fn all(&self) -> Vec<&RunLog> {
        let own = self.followed.as_ref().or_else(|| self.bundle.first());
        own.into_iter()
            .chain(self.bundle.iter().skip(1))
            .chain(&self.files)
            .collect()
    }

    /// Whether there is nothing to show.
    pub fn is_empty(&self) -> bool {
        self.bundle.is_empty() && self.followed.is_none() && self.files.is_empty()
    }
}

/// One series of one run in a chart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line<'a> {
    /// Index of the run in the legend (its colour).
    pub run: usize,
    /// The series.
    pub series: &'a Series,
}

/// One chart: a series name (an array's elements together) over every run.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart<'a> {
    /// The series name, or the array's name with `[·]` for its elements.
    pub title: String,
    /// Every run's series of this name, run by run.
    pub lines: Vec<Line<'a>>,
    /// Whether the y axis is log10: the chart's values, all runs together, span decades
    /// ([`Series::spans_decades`]).
    pub log: bool,
}

/// The charts of one group (the first part of the series names).
#[derive(Debug, Clone, PartialEq)]
pub struct Group<'a> {
    /// The group, e.g. `loss`.
    pub name: String,
    /// Its charts, by title.
    pub charts: Vec<Chart<'a>>,
}

/// An array element's name with its indices replaced by `[·]`: the chart it is drawn in.
pub fn family(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_index = false;
    for c in name.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push_str("[·");
            }
            ']' => {
                in_index = false;
                out.push(']');
            }
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

/// Arranges the series of `runs` (legend order) into groups of charts: groups in the order
/// loss, lr, grad_norm, manifold, then alphabetical; within a group one chart per [`family`],
/// alphabetical; in a chart, the runs in legend order, each run's series by name.
pub fn layout<'a>(runs: &[&'a Curves]) -> Vec<Group<'a>> {
    let mut charts: std::collections::BTreeMap<(usize, String, String), Vec<Line<'a>>> =
        std::collections::BTreeMap::new();
    for (run, curves) in runs.iter().enumerate() {
        for series in &curves.series {
            let group = series.group();
            let rank = GROUP_ORDER
                .iter()
                .position(|g| *g == group)
                .unwrap_or(GROUP_ORDER.len());
            charts
                .entry((rank, group.to_owned(), family(&series.name)))
                .or_default()
                .push(Line { run, series });
        }
    }
    let mut groups: Vec<Group<'a>> = Vec::new();
    for ((_, group, title), lines) in charts {
        let log = lines_span_decades(&lines);
        let chart = Chart { title, lines, log };
        match groups.last_mut() {
            Some(last) if last.name == group => last.charts.push(chart),
            _ => groups.push(Group {
                name: group,
                charts: vec![chart],
            }),
        }
    }
    groups
}

/// Whether the points of all `lines` together span decades, by the shared rule.
fn lines_span_decades(lines: &[Line<'_>]) -> bool {
    let all = Series {
        name: String::new(),
        points: lines
            .iter()
            .flat_map(|line| line.series.points.iter().copied())
            .collect(),
    };
    all.spans_decades()
}

/// A chart's size and plot-area margins, CSS pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plot {
    /// Width of the whole chart.
    pub width: f64,
    /// Height of the whole chart.
    pub height: f64,
    /// Margins: left, right, top, bottom.
    pub margin: (f64, f64, f64, f64),
}

/// Where a chart's data lands: step → x, value (or log10 value) → y, with the axes' ticks.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Step to x.
    pub x: Scale,
    /// Value (log10 of it on a log axis) to y.
    pub y: Scale,
    /// Whether y is log10.
    pub log: bool,
    /// Ticks along x (whole steps).
    pub x_ticks: Vec<Tick>,
    /// Ticks along y (round values, or powers of ten).
    pub y_ticks: Vec<Tick>,
}

impl Frame {
    /// The frame that holds every point of `lines` in `plot`, y on log10 when `log` (then every
    /// value must be positive; others are left out of the fit and of the path).
    pub fn fit(lines: &[&[(u64, f64)]], log: bool, plot: Plot) -> Self {
        let (left, right, top, bottom) = plot.margin;
        let (x_range, y_range) = ((left, plot.width - right), (plot.height - bottom, top));
        let points = || lines.iter().flat_map(|l| l.iter().copied());
        let (mut s_lo, mut s_hi) = (u64::MAX, 0_u64);
        let (mut v_lo, mut v_hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for (step, value) in points() {
            let Some(v) = transform(value, log) else {
                continue;
            };
            s_lo = s_lo.min(step);
            s_hi = s_hi.max(step);
            v_lo = v_lo.min(v);
            v_hi = v_hi.max(v);
        }
        if s_lo > s_hi {
            (s_lo, s_hi) = (0, 1);
        }
        // Steps are far below 2^53.
        #[allow(clippy::cast_precision_loss)]
        let (x_lo, x_hi) = (s_lo as f64, s_hi as f64);
        let x = Scale::new((x_lo, x_hi), x_range);
        let (x_lo, x_hi) = x.domain;
        let (step_ticks, step) = nice_ticks(x_lo, x_hi, 4);
        let x_ticks = step_ticks
            .into_iter()
            .filter(|&t| t >= x_lo - 1e-9 && t <= x_hi + 1e-9 && t >= 0.0 && t.fract() == 0.0)
            .map(|t| Tick {
                at: x.map(t),
                // Whole, non-negative and below 2^53 (filtered above).
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                label: if step >= 1.0 {
                    thousands(t as u64)
                } else {
                    tick_label(t, step)
                },
            })
            .collect();
        if v_lo > v_hi {
            (v_lo, v_hi) = (0.0, 1.0);
        }
        let (y, y_ticks) = if log {
            let (lo, hi) = (v_lo.floor(), v_hi.ceil());
            let hi = if hi <= lo { lo + 1.0 } else { hi };
            let y = Scale::new((lo, hi), y_range);
            // At most about six labelled decades.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let every = (((hi - lo) / 6.0).ceil() as usize).max(1);
            #[allow(clippy::cast_possible_truncation)]
            let ticks = ((lo as i32)..=(hi as i32))
                .step_by(every)
                .map(|k| Tick {
                    at: y.map(f64::from(k)),
                    label: decade_label(k),
                })
                .collect();
            (y, ticks)
        } else {
            let (values, step) = nice_ticks(v_lo, v_hi, 4);
            let lo = values.first().copied().unwrap_or(v_lo);
            let hi = values.last().copied().unwrap_or(v_hi);
            let y = Scale::new((lo, hi), y_range);
            let ticks = values
                .iter()
                .map(|&v| Tick {
                    at: y.map(v),
                    label: tick_label(v, step),
                })
                .collect();
            (y, ticks)
        };
        Self {
            x,
            y,
            log,
            x_ticks,
            y_ticks,
        }
    }

    /// The pixel position of one point; `None` for a value a log axis cannot show.
    pub fn px(&self, step: u64, value: f64) -> Option<(f64, f64)> {
        let v = transform(value, self.log)?;
        // Steps are far below 2^53.
        #[allow(clippy::cast_precision_loss)]
        let step = step as f64;
        Some((self.x.map(step), self.y.map(v)))
    }

    /// The SVG path data of `points` in order (`M x,y L x,y …`, to 0.1 px), skipping what a log
    /// axis cannot show.
    pub fn path(&self, points: &[(u64, f64)]) -> String {
        let mut d = String::new();
        for &(step, value) in points {
            if let Some((x, y)) = self.px(step, value) {
                let command = if d.is_empty() { 'M' } else { 'L' };
                d.push_str(&format!("{command}{x:.1},{y:.1}"));
            }
        }
        d
    }

    /// The step under pixel column `x`.
    pub fn step_at(&self, x: f64) -> f64 {
        let (lo, hi) = self.x.domain;
        let (a, b) = self.x.range;
        if b == a {
            lo
        } else {
            lo + (x - a) / (b - a) * (hi - lo)
        }
    }
}

/// The value a y axis plots: itself, or its log10 on a log axis (`None` unless positive and
/// finite).
fn transform(value: f64, log: bool) -> Option<f64> {
    if !value.is_finite() {
        None
    } else if log {
        (value > 0.0).then(|| value.log10())
    } else {
        Some(value)
    }
}

/// The label of 10^k: plain from 0.001 to 1000, else `1e<k>`.
pub fn decade_label(k: i32) -> String {
    match k {
        -3..=-1 => {
            let decimals = usize::try_from(-k).unwrap_or(0);
            format!("{:.decimals$}", 10f64.powi(k))
        }
        0..=3 => format!("{}", 10_u32.pow(k.unsigned_abs())),
        _ => format!("1e{k}"),
    }
}

/// `points` thinned to at most about `max` for drawing: split into stretches, each contributing
/// its lowest and highest value in their original order, so spikes survive. Unchanged when
/// short enough.
pub fn drawn(points: &[(u64, f64)], max: usize) -> Vec<(u64, f64)> {
    if points.len() <= max || max < 2 {
        return points.to_vec();
    }
    let stretch = points.len().div_ceil(max / 2);
    let mut out = Vec::with_capacity(max);
    for chunk in points.chunks(stretch) {
        let lowest = chunk
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.1.total_cmp(&b.1.1))
            .map(|(i, _)| i);
        let highest = chunk
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.1.total_cmp(&b.1.1))
            .map(|(i, _)| i);
        let (Some(lo), Some(hi)) = (lowest, highest) else {
            continue;
        };
        let (first, second) = (lo.min(hi), lo.max(hi));
        out.extend(chunk.get(first).copied());
        if second != first {
            out.extend(chunk.get(second).copied());
        }
    }
    out
}

/// The value of a path's `data-points` attribute: every `(step, value)` as `step,value`,
/// space-separated, in the log's order; values in Rust's shortest exact form, so parsing them
/// back gives the same `f64`s the log parser read.
pub fn points_attribute(points: &[(u64, f64)]) -> String {
    let mut out = String::with_capacity(points.len() * 12);
    for (i, (step, value)) in points.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&format!("{step},{value}"));
    }
    out
}

/// The point of `points` whose step is nearest `step` (the first of equals); `None` when empty.
pub fn nearest(points: &[(u64, f64)], step: f64) -> Option<(u64, f64)> {
    points.iter().copied().min_by(|a, b| {
        // Steps are far below 2^53.
        #[allow(clippy::cast_precision_loss)]
        let (da, db) = ((a.0 as f64 - step).abs(), (b.0 as f64 - step).abs());
        da.total_cmp(&db)
    })
}

/// A value as the tooltip shows it: four significant digits, scientific when tiny or huge.
pub fn value_label(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    let magnitude = value.abs().log10().floor();
    if !(-3.0..5.0).contains(&magnitude) {
        return format!("{value:.3e}");
    }
    // A small whole number of decimals (0 to 6).
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let decimals = (3.0 - magnitude).max(0.0) as usize;
    format!("{value:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = concat!(
        r#"{"step":0,"epoch":0,"loss":{"total":4.5,"kl":56.0,"kl_weight":0.001},"lr":{"backbone":0.0},"manifold":{"operator_norms":[1.5,2.5]},"collapse":0.1}"#,
        "\n",
        r#"{"step":10,"epoch":0,"loss":{"total":4.0,"kl":0.2,"kl_weight":0.5},"lr":{"backbone":0.001},"manifold":{"operator_norms":[1.0,3.0]},"collapse":0.2}"#,
        "\n",
        r#"{"step":20,"epoch":1,"loss":{"total":3.25,"kl":0.1,"kl_weight":1.0},"lr":{"backbone":0.002},"manifold":{"operator_norms":[0.5,3.5]},"collapse":0.3}"#,
        "\n",
    );

    const SIMCLR: &str = concat!(
        r#"{"step":0,"loss":{"total":5.0},"lr":{"backbone":0.0}}"#,
        "\n",
        r#"{"step":30,"loss":{"total":4.0},"lr":{"backbone":0.003}}"#,
        "\n",
    );

    const PLOT: Plot = Plot {
        width: 300.0,
        height: 160.0,
        margin: (40.0, 10.0, 10.0, 30.0),
    };

    #[test]
    fn every_series_lands_in_one_chart_grouped_and_ordered() {
        let (a, b) = (curves::parse(LOG).unwrap(), curves::parse(SIMCLR).unwrap());
        let groups = layout(&[&a, &b]);
        let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["loss", "lr", "manifold", "collapse", "epoch"]);
        let loss: Vec<&str> = groups[0].charts.iter().map(|c| c.title.as_str()).collect();
        assert_eq!(loss, ["loss.kl", "loss.kl_weight", "loss.total"]);
        // Both runs overlaid where both logged the series, in legend order.
        let total = &groups[0].charts[2];
        let runs: Vec<usize> = total.lines.iter().map(|l| l.run).collect();
        assert_eq!(runs, [0, 1]);
        // An array's elements share a chart.
        let manifold = &groups[2].charts;
        assert_eq!(manifold.len(), 1);
        assert_eq!(manifold[0].title, "manifold.operator_norms[·]");
        assert_eq!(manifold[0].lines.len(), 2);
        // Every series of every run is drawn exactly once.
        let drawn: usize = groups
            .iter()
            .flat_map(|g| &g.charts)
            .map(|c| c.lines.len())
            .sum();
        assert_eq!(drawn, a.series.len() + b.series.len());
    }

    #[test]
    fn charts_spanning_decades_get_a_log_axis() {
        let a = curves::parse(LOG).unwrap();
        let groups = layout(&[&a]);
        let chart = |title: &str| {
            groups
                .iter()
                .flat_map(|g| &g.charts)
                .find(|c| c.title == title)
                .unwrap()
        };
        assert!(chart("loss.kl").log);
        assert!(chart("loss.kl_weight").log);
        assert!(!chart("loss.total").log);
        // A zero rules out a log axis.
        assert!(!chart("lr.backbone").log);
    }

    #[test]
    fn the_frame_maps_the_data_into_the_plot_and_paths_follow_the_points() {
        let a = curves::parse(LOG).unwrap();
        let total = &a.get("loss.total").unwrap().points;
        let frame = Frame::fit(&[total], false, PLOT);
        let (left, right, top, bottom) = PLOT.margin;
        for &(step, value) in total {
            let (x, y) = frame.px(step, value).unwrap();
            assert!((left..=PLOT.width - right).contains(&x), "{x}");
            assert!((top..=PLOT.height - bottom).contains(&y), "{y}");
        }
        assert_eq!(frame.px(0, 4.5).unwrap().0, left);
        assert_eq!(frame.px(20, 3.25).unwrap().0, PLOT.width - right);
        // Higher values are higher up.
        assert!(frame.px(0, 4.5).unwrap().1 < frame.px(20, 3.25).unwrap().1);
        let d = frame.path(total);
        assert!(d.starts_with('M') && d.matches('L').count() == 2, "{d}");
        assert!((frame.step_at(frame.px(10, 4.0).unwrap().0) - 10.0).abs() < 1e-9);
        assert!(frame.x_ticks.iter().all(|t| !t.label.contains('.')));
    }

    #[test]
    fn a_log_frame_ticks_at_powers_of_ten() {
        let a = curves::parse(LOG).unwrap();
        let kl = &a.get("loss.kl").unwrap().points;
        let frame = Frame::fit(&[kl], true, PLOT);
        let labels: Vec<&str> = frame.y_ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["0.1", "1", "10", "100"]);
        // 56 sits between the 10 and 100 ticks, at its log position.
        let (_, y) = frame.px(0, 56.0).unwrap();
        let (t10, t100) = (frame.y_ticks[2].at, frame.y_ticks[3].at);
        let expected = t10 + (t100 - t10) * (56f64.log10() - 1.0);
        assert!((y - expected).abs() < 1e-9);
        assert_eq!(frame.px(0, 0.0), None);
        assert_eq!(decade_label(-3), "0.001");
        assert_eq!(decade_label(3), "1000");
        assert_eq!(decade_label(-5), "1e-5");
        assert_eq!(decade_label(7), "1e7");
    }

    #[test]
    fn data_points_give_back_the_parsed_values_exactly() {
        let text = "{\"step\":0,\"x\":0.1}\n{\"step\":7,\"x\":1e-7}\n{\"step\":9,\"x\":123456789.125}\n\
                    {\"step\":12,\"x\":-2.5e300}\n";
        let parsed = curves::parse(text).unwrap();
        let points = &parsed.get("x").unwrap().points;
        let attribute = points_attribute(points);
        let back: Vec<(u64, f64)> = attribute
            .split(' ')
            .map(|pair| {
                let (s, v) = pair.split_once(',').unwrap();
                (s.parse().unwrap(), v.parse().unwrap())
            })
            .collect();
        assert_eq!(&back, points);
        assert!(
            attribute.starts_with("0,0.1 7,0.0000001 9,123456789.125 "),
            "{attribute}"
        );
    }

    #[test]
    fn long_series_are_thinned_for_drawing_keeping_extremes_in_order() {
        let points: Vec<(u64, f64)> = (0..10_000)
            .map(|i| (i, if i == 5_001 { 100.0 } else { (i % 7) as f64 }))
            .collect();
        let thin = drawn(&points, 1000);
        assert!(thin.len() <= 1000, "{}", thin.len());
        assert!(thin.contains(&(5_001, 100.0)));
        assert!(thin.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(drawn(&points[..10], 1000), points[..10].to_vec());
    }

    #[test]
    fn hover_finds_the_nearest_step_and_labels_the_value() {
        let points = [(0, 1.0), (10, 2.0), (20, 3.0)];
        assert_eq!(nearest(&points, 12.0), Some((10, 2.0)));
        assert_eq!(nearest(&points, 15.0), Some((10, 2.0)));
        assert_eq!(nearest(&points, 99.0), Some((20, 3.0)));
        assert_eq!(nearest(&[], 1.0), None);
        assert_eq!(value_label(4.5), "4.500");
        assert_eq!(value_label(0.012_345), "0.01235");
        assert_eq!(value_label(1234.56), "1235");
        assert_eq!(value_label(2.5e-7), "2.500e-7");
        assert_eq!(value_label(0.0), "0");
    }

    #[test]
    fn the_followed_log_stands_in_for_the_bundle_s_own_and_files_add_runs() {
        let mut runs = RunLogs::default();
        assert!(runs.is_empty());
        runs.set_bundle(&[
            TrainingLog {
                label: "manifoldclr".to_owned(),
                jsonl: LOG.to_owned(),
            },
            TrainingLog {
                label: "simclr".to_owned(),
                jsonl: SIMCLR.to_owned(),
            },
        ]);
        let labels = |runs: &RunLogs| -> Vec<(String, Origin)> {
            runs.all()
                .iter()
                .map(|r| (r.label.clone(), r.origin))
                .collect()
        };
        assert_eq!(
            labels(&runs),
            [
                ("manifoldclr".to_owned(), Origin::Bundle),
                ("simclr".to_owned(), Origin::Bundle)
            ]
        );
        runs.set_followed("manifoldclr (live)", SIMCLR);
        runs.add_file("other.jsonl", LOG);
        runs.add_file("broken.jsonl", "{\"no_step\":1}\n");
        runs.add_file("other.jsonl", SIMCLR);
        let all = runs.all();
        assert_eq!(all.len(), 4);
        assert_eq!(all[0].origin, Origin::Followed);
        assert_eq!(all[1].label, "simclr");
        assert_eq!(all[2].label, "other.jsonl");
        assert_eq!(all[2].curves, Ok(curves::parse(SIMCLR).unwrap()));
        assert!(all[3].curves.as_ref().is_err_and(|e| e.contains("line 1")));
        runs.clear_followed();
        runs.set_bundle(&[]);
        assert_eq!(runs.all().len(), 2);
    }

    #[test]
    fn families_hide_array_indices() {
        assert_eq!(
            family("manifold.operator_norms[12]"),
            "manifold.operator_norms[·]"
        );
        assert_eq!(family("a[1].b[2]"), "a[·].b[·]");
        assert_eq!(family("loss.total"), "loss.total");
    }
}
