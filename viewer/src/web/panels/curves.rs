//! The training-curves panel: every series of every run's `metrics.jsonl` against the step, as
//! SVG charts like the inspect panel's — loss terms (the KL weight among them), learning rates,
//! gradient norms, the operators' norms and usage, then the diagnostics — with the runs overlaid
//! in one colour each, a log axis where a chart spans decades, and the values under the pointer.
//! The runs come from the bundle, from the followed run's log, and from dropped `.jsonl` files
//! (`crate::curve_plot` arranges them; this module draws).
//!
//! Each line is a `<path>` that carries its data for tests and tools: `data-run` (the run's
//! label), `data-series` (the dotted name), and `data-points`, every `(step, value)` of the series
//! in the log's order, exactly as parsed; `data-drawn` counts the points the line is drawn with
//! (fewer than in `data-points` only past `curve_plot::MAX_DRAWN_POINTS`).

use std::sync::Arc;

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use crate::curve_plot::{
    Chart, Frame, MAX_DRAWN_POINTS, Plot, RunLogs, drawn, layout, nearest, points_attribute,
    value_label,
};
use crate::follow::thousands;
use crate::viewport::class_colour;
use crate::web::charts::axes;
use crate::web::signals::Ui;

/// Size and margins of one chart.
const PLOT: Plot = Plot {
    width: 330.0,
    height: 190.0,
    margin: (52.0, 12.0, 10.0, 30.0),
};

/// Most lines the hover box lists.
const HOVER_ROWS: usize = 8;

/// The section titles of the groups that get their own; every other group is a diagnostic.
const SECTIONS: [(&str, &str); 4] = [
    ("loss", "Loss terms (the KL weight among them)"),
    ("lr", "Learning rates"),
    ("grad_norm", "Gradient norms before clipping"),
    ("manifold", "Operators and coefficients"),
];

/// One line of a chart, owned by the chart.
struct LineData {
    /// The run's place in the legend (its colour).
    legend: usize,
    /// The run's label.
    run: String,
    /// The series' dotted name.
    series: String,
    /// Every point, in the log's order.
    points: Vec<(u64, f64)>,
}

/// One chart's title, axis kind and lines.
struct ChartData {
    group: String,
    title: String,
    log: bool,
    lines: Vec<LineData>,
}

/// The panel; hidden while there is no log.
#[component]
pub fn CurvesPanel(ui: Ui) -> impl IntoView {
    view! {
        <section class="panel curves" id="curves" hidden=move || ui.curves.with(RunLogs::is_empty)>
            <h2>
                "Training curves "
                <span class="sub">
                    "every logged series against the step · one colour per run · log scale where a chart spans decades · hover for values"
                </span>
            </h2>
            {move || ui.curves.with(render)}
        </section>
    }
}

/// The legend and every chart of `runs`.
fn render(runs: &RunLogs) -> AnyView {
    let all = runs.all();
    let legend = all
        .iter()
        .enumerate()
        .map(|(i, run)| {
            let (status, detail) = match &run.curves {
                Ok(curves) => (
                    "ok",
                    format!(
                        "{} records{}",
                        thousands(u64::try_from(curves.records).unwrap_or(u64::MAX)),
                        curves
                            .last_step
                            .map(|s| format!(" · last step {}", thousands(s)))
                            .unwrap_or_default()
                    ),
                ),
                Err(error) => ("error", error.clone()),
            };
            view! {
                <li class="curve-run" data-run=run.label.clone() data-status=status>
                    <span class="swatch" style:background=class_colour(i)></span>
                    <span class="curve-run-label">{run.label.clone()}</span>
                    <span class="sub">{format!(" {detail}")}</span>
                </li>
            }
        })
        .collect_view();
    // Runs whose log parsed, with their legend index.
    let parsed: Vec<(usize, &mclr_shared::curves::Curves)> = all
        .iter()
        .enumerate()
        .filter_map(|(i, run)| run.curves.as_ref().ok().map(|c| (i, c)))
        .collect();
    let refs: Vec<&mclr_shared::curves::Curves> = parsed.iter().map(|(_, c)| *c).collect();
    let groups = layout(&refs);
    let owned = |group: &str, chart: &Chart<'_>| ChartData {
        group: group.to_owned(),
        title: chart.title.clone(),
        log: chart.log,
        lines: chart
            .lines
            .iter()
            .filter_map(|line| {
                let &(legend, _) = parsed.get(line.run)?;
                Some(LineData {
                    legend,
                    run: all.get(legend)?.label.clone(),
                    series: line.series.name.clone(),
                    points: line.series.points.clone(),
                })
            })
            .collect(),
    };
    // The named groups in their sections, then every other group under one heading.
    let mut sections: Vec<(String, Vec<ChartData>)> = Vec::new();
    let mut diagnostics: Vec<ChartData> = Vec::new();
    for group in &groups {
        let charts = group.charts.iter().map(|c| owned(&group.name, c));
        match SECTIONS.iter().find(|(name, _)| *name == group.name) {
            Some((_, title)) => sections.push(((*title).to_owned(), charts.collect())),
            None => diagnostics.extend(charts),
        }
    }
    if !diagnostics.is_empty() {
        sections.push(("Diagnostics and throughput".to_owned(), diagnostics));
    }
    let sections = sections
        .into_iter()
        .map(|(title, charts)| {
            let charts = charts
                .into_iter()
                .map(|data| view! { <CurveChart data=Arc::new(data) /> })
                .collect_view();
            view! {
                <div class="curve-section">
                    <h3>{title}</h3>
                    <div class="curve-charts">{charts}</div>
                </div>
            }
        })
        .collect_view();
    view! {
        <ul id="curve-runs" class="curve-legend">{legend}</ul>
        {sections}
    }
    .into_any()
}

/// One chart: axes, a path per line, and the values at the step under the pointer.
#[component]
fn CurveChart(data: Arc<ChartData>) -> impl IntoView {
    let lists: Vec<&[(u64, f64)]> = data.lines.iter().map(|l| l.points.as_slice()).collect();
    let frame = Frame::fit(&lists, data.log, PLOT);
    let hover: RwSignal<Option<f64>> = RwSignal::new(None);
    let paths = data
        .lines
        .iter()
        .map(|line| {
            let shown = drawn(&line.points, MAX_DRAWN_POINTS);
            view! {
                <path
                    class="curve"
                    data-run=line.run.clone()
                    data-run-index=line.legend
                    data-series=line.series.clone()
                    data-points=points_attribute(&line.points)
                    data-drawn=shown.len()
                    d=frame.path(&shown)
                    stroke=class_colour(line.legend)
                    fill="none"
                >
                    <title>{format!("{} · {}", line.run, line.series)}</title>
                </path>
            }
        })
        .collect_view();
    let (left, right, top, bottom) = PLOT.margin;
    let tooltip = {
        let (data, frame) = (Arc::clone(&data), frame.clone());
        move || {
            let step = hover.get()?;
            let rows: Vec<(usize, String)> = data
                .lines
                .iter()
                .filter_map(|line| {
                    let (s, v) = nearest(&line.points, step)?;
                    Some((
                        line.legend,
                        format!(
                            "{} {}: {} at step {}",
                            line.run,
                            line.series,
                            value_label(v),
                            thousands(s)
                        ),
                    ))
                })
                .collect();
            let more = rows.len().saturating_sub(HOVER_ROWS);
            // The rule at the hovered step, clamped into the plot.
            let x = frame.x.map(step).clamp(left, PLOT.width - right);
            let on_left = x > 0.5 * PLOT.width;
            let (text_x, anchor) = if on_left {
                (x - 6.0, "end")
            } else {
                (x + 6.0, "start")
            };
            let lines = rows
                .into_iter()
                .take(HOVER_ROWS)
                .enumerate()
                .map(|(i, (legend, text))| {
                    // Row offsets are a few lines.
                    #[allow(clippy::cast_precision_loss)]
                    let y = top + 12.0 + 13.0 * i as f64;
                    view! {
                        <text class="hover-row" x=text_x y=y text-anchor=anchor fill=class_colour(legend)>
                            {text}
                        </text>
                    }
                })
                .collect_view();
            let more = (more > 0).then(|| {
                #[allow(clippy::cast_precision_loss)]
                let y = top + 12.0 + 13.0 * HOVER_ROWS as f64;
                view! {
                    <text class="hover-row" x=text_x y=y text-anchor=anchor fill="#98a2b3">
                        {format!("…and {more} more")}
                    </text>
                }
            });
            Some(view! {
                <g class="curve-hover" data-step=format!("{step:.0}")>
                    <line class="hover-rule" x1=x x2=x y1=top y2=PLOT.height - bottom></line>
                    {lines}
                    {more}
                </g>
            })
        }
    };
    let pointer = {
        let frame = frame.clone();
        move |e: web_sys::MouseEvent| {
            // The chart itself, whichever of its children the pointer is over (events are
            // delegated, so `currentTarget` is not the chart).
            let Some(chart) = e
                .target()
                .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
                .and_then(|el| el.closest("svg.curve-chart").ok().flatten())
            else {
                return;
            };
            let x = f64::from(e.client_x()) - chart.get_bounding_client_rect().left();
            hover.set(Some(frame.step_at(x)));
        }
    };
    let caption = if data.log {
        format!("{} (log scale)", data.title)
    } else {
        data.title.clone()
    };
    view! {
        <figure class="chart-box curve-box" data-group=data.group.clone()>
            <figcaption>{caption}</figcaption>
            <svg
                class="chart curve-chart"
                data-chart=data.title.clone()
                data-log=data.log.to_string()
                width=PLOT.width
                height=PLOT.height
                on:mousemove=pointer
                on:mouseleave=move |_| hover.set(None)
            >
                {axes(
                    &frame.x_ticks,
                    &frame.y_ticks,
                    ("step".to_owned(), String::new()),
                    (PLOT.width, PLOT.height),
                    PLOT.margin,
                )}
                {paths}
                {tooltip}
            </svg>
        </figure>
    }
}
