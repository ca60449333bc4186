//! The SVG charts' shared axes, and the inspect charts: the eigenvalues of the inspected operator's blocks in the
//! complex plane, its coordinate sweep, the class × operator heatmap with its colour scale, and
//! the operators' norms and usage. Axis arithmetic lives in `crate::chart` (tested natively).
//! Clicking an operator in the heatmap or the bar chart inspects it.

use leptos::prelude::*;

use super::signals::Ui;
use crate::chart::{Scale, Tick, heat_colour, nice_ticks, placed_ticks, tick_label};
use crate::viewport::class_colour;

/// Plot area margins: left, right, top, bottom (CSS pixels).
const MARGIN: (f64, f64, f64, f64) = (48.0, 12.0, 12.0, 36.0);

/// Draws x and y axes with `x_ticks` and `y_ticks` (grid lines and labels) and the axis
/// `labels` over a `w × h` chart with plot-area `margin` (left, right, top, bottom).
pub fn axes(
    x_ticks: &[Tick],
    y_ticks: &[Tick],
    labels: (String, String),
    (w, h): (f64, f64),
    margin: (f64, f64, f64, f64),
) -> impl IntoView + use<> {
    let (left, right, top, bottom) = margin;
    let x_marks = x_ticks
        .iter()
        .map(|tick| {
            let px = tick.at;
            view! {
                <line class="grid" x1=px x2=px y1=top y2=h - bottom></line>
                <text class="tick" x=px y=h - bottom + 14.0 text-anchor="middle">
                    {tick.label.clone()}
                </text>
            }
        })
        .collect_view();
    let y_marks = y_ticks
        .iter()
        .map(|tick| {
            let py = tick.at;
            view! {
                <line class="grid" x1=left x2=w - right y1=py y2=py></line>
                <text class="tick" x=left - 6.0 y=py + 4.0 text-anchor="end">
                    {tick.label.clone()}
                </text>
            }
        })
        .collect_view();
    view! {
        <g class="axes">
            {x_marks}
            {y_marks}
            <line class="axis" x1=left x2=w - right y1=h - bottom y2=h - bottom></line>
            <line class="axis" x1=left x2=left y1=top y2=h - bottom></line>
            <text class="axis-label" x=0.5 * (left + w - right) y=h - 4.0 text-anchor="middle">
                {labels.0}
            </text>
            <text
                class="axis-label"
                x=12.0
                y=0.5 * (top + h - bottom)
                text-anchor="middle"
                transform=format!("rotate(-90 12 {})", 0.5 * (top + h - bottom))
            >
                {labels.1}
            </text>
        </g>
    }
}

/// Scales and ticks for data in [lo, hi] along a pixel range, widened to whole ticks.
fn fitted(lo: f64, hi: f64, range: (f64, f64), count: usize) -> (Scale, (Vec<f64>, f64)) {
    let ticks = nice_ticks(lo, hi, count);
    let first = ticks.0.first().copied().unwrap_or(lo);
    let last = ticks.0.last().copied().unwrap_or(hi);
    (Scale::new((first, last), range), ticks)
}

/// Eigenvalues of each block of the inspected operator as points in the complex plane, one
/// colour per block.
#[component]
pub fn EigenPlot(ui: Ui) -> impl IntoView {
    const W: f64 = 340.0;
    const H: f64 = 280.0;
    move || {
        ui.spectrum.with(|spectrum| {
            let Some(spectrum) = spectrum.as_ref() else {
                return view! { <svg id="eigen-plot" class="chart" width=W height=H></svg> }
                    .into_any();
            };
            let all = spectrum.blocks.iter().flatten();
            let (mut re_lo, mut re_hi, mut im_hi) = (0.0_f64, 0.0_f64, 0.0_f64);
            for &(re, im) in all {
                re_lo = re_lo.min(re);
                re_hi = re_hi.max(re);
                im_hi = im_hi.max(im.abs());
            }
            // Rotation speeds dwarf growth rates; pad the real axis so both read.
            let pad = 0.1 * (re_hi - re_lo).max(im_hi).max(1e-6);
            let (left, right, top, bottom) = MARGIN;
            let (x, x_ticks) = fitted(re_lo - pad, re_hi + pad, (left, W - right), 4);
            let (y, y_ticks) = fitted(-im_hi - pad, im_hi + pad, (H - bottom, top), 6);
            let points = spectrum
                .blocks
                .iter()
                .enumerate()
                .flat_map(|(k, values)| values.iter().map(move |&(re, im)| (k, re, im)))
                .map(|(k, re, im)| {
                    view! {
                        <circle
                            class="eig"
                            data-block=k
                            data-re=format!("{re:.6}")
                            data-im=format!("{im:.6}")
                            cx=x.map(re)
                            cy=y.map(im)
                            r=4.0
                            fill=class_colour(k)
                        ></circle>
                    }
                })
                .collect_view();
            let zero_x = x.map(0.0);
            let zero_y = y.map(0.0);
            let count: usize = spectrum.blocks.iter().map(Vec::len).sum();
            view! {
                <svg
                    id="eigen-plot"
                    class="chart"
                    width=W
                    height=H
                    data-count=count
                >
                    {axes(
                        &placed_ticks(&x, &x_ticks),
                        &placed_ticks(&y, &y_ticks),
                        ("Re λ (growth rate)".to_owned(), "Im λ (angular speed)".to_owned()),
                        (W, H),
                        MARGIN,
                    )}
                    <line class="zero" x1=zero_x x2=zero_x y1=top y2=H - bottom></line>
                    <line class="zero" x1=left x2=W - right y1=zero_y y2=zero_y></line>
                    {points}
                </svg>
            }
            .into_any()
        })
    }
}

/// Every coordinate of T(t·e_m) z0 against t, one thin line each.
#[component]
pub fn SweepPlot(ui: Ui) -> impl IntoView {
    const W: f64 = 420.0;
    const H: f64 = 280.0;
    move || {
        ui.sweep.with(|sweep| {
            let Some(sweep) = sweep.as_ref() else {
                return view! { <svg id="sweep-plot" class="chart" width=W height=H></svg> }
                    .into_any();
            };
            let d = sweep.dim.max(1);
            let steps = sweep.times.len();
            let (t_lo, t_hi) = (
                f64::from(sweep.times.first().copied().unwrap_or(-1.0)),
                f64::from(sweep.times.last().copied().unwrap_or(1.0)),
            );
            let (v_lo, v_hi) = sweep
                .positions
                .iter()
                .fold((0.0_f64, 0.0_f64), |(lo, hi), &v| {
                    (lo.min(f64::from(v)), hi.max(f64::from(v)))
                });
            let (left, right, top, bottom) = MARGIN;
            let x = Scale::new((t_lo, t_hi), (left, W - right));
            let x_ticks = nice_ticks(t_lo, t_hi, 6);
            let x_ticks = (
                x_ticks
                    .0
                    .into_iter()
                    .filter(|t| (t_lo..=t_hi).contains(t))
                    .collect(),
                x_ticks.1,
            );
            let (y, y_ticks) = fitted(v_lo, v_hi, (H - bottom, top), 5);
            let lines = (0..d)
                .map(|i| {
                    let points: String = (0..steps)
                        .filter_map(|s| {
                            let t = f64::from(*sweep.times.get(s)?);
                            let v = f64::from(*sweep.positions.get(s * d + i)?);
                            Some(format!("{:.1},{:.1} ", x.map(t), y.map(v)))
                        })
                        .collect();
                    view! {
                        <polyline
                            class="coord"
                            points=points
                            stroke=format!("hsl({}, 70%, 62%)", (i * 137) % 360)
                        ></polyline>
                    }
                })
                .collect_view();
            let zero = x.map(0.0);
            view! {
                <svg id="sweep-plot" class="chart" width=W height=H data-lines=d>
                    {axes(
                        &placed_ticks(&x, &x_ticks),
                        &placed_ticks(&y, &y_ticks),
                        ("t".to_owned(), "coordinate of T(t·e_m) z0".to_owned()),
                        (W, H),
                        MARGIN,
                    )}
                    <line class="zero" x1=zero x2=zero y1=top y2=H - bottom></line>
                    {lines}
                </svg>
            }
            .into_any()
        })
    }
}

/// The class × operator heatmap (mean |c_m| under the prior per class) with a colour scale.
#[component]
pub fn HeatmapChart(ui: Ui) -> impl IntoView {
    move || {
        let inspected = ui.spectrum.with(|s| s.as_ref().map(|s| s.operator));
        ui.summary.with(|summary| {
            let Some(summary) = summary.as_ref() else {
                return ().into_any();
            };
            let m = summary.num_operators.max(1);
            let c = summary.classes.len();
            let cell = (560.0 / m as f64).clamp(10.0, 28.0);
            let row = 18.0;
            let (left, top) = (110.0, 8.0);
            let grid_w = cell * m as f64;
            let legend_x = left + grid_w + 24.0;
            let w = legend_x + 70.0;
            let h = top + row * c as f64 + 44.0;
            let max = summary
                .heatmap
                .iter()
                .copied()
                .filter(|v| v.is_finite())
                .fold(0.0_f32, f32::max)
                .max(1e-12);
            let cells = (0..c)
                .flat_map(|class| (0..m).map(move |op| (class, op)))
                .map(|(class, op)| {
                    let value = summary.heatmap.get(class * m + op).copied().unwrap_or(0.0);
                    let label = summary.classes.get(class).map_or("", |e| e.name.as_str());
                    view! {
                        <rect
                            class="cell"
                            data-class=class
                            data-operator=op
                            data-value=format!("{value:.5}")
                            aria-label=format!("{label}, Ψ{op}: {value:.4}")
                            x=left + cell * op as f64
                            y=top + row * class as f64
                            width=cell - 1.0
                            height=row - 1.0
                            fill=heat_colour(value / max)
                            on:click=move |_| inspect(ui, op)
                        ></rect>
                    }
                })
                .collect_view();
            let class_labels = summary
                .classes
                .iter()
                .enumerate()
                .map(|(class, entry)| {
                    view! {
                        <text class="tick" x=left - 6.0 y=top + row * class as f64 + 13.0 text-anchor="end">
                            {entry.name.clone()}
                        </text>
                    }
                })
                .collect_view();
            let every = (m / 16).max(1);
            let op_labels = (0..m)
                .filter(|op| op % every == 0)
                .map(|op| {
                    view! {
                        <text
                            class="tick"
                            x=left + cell * (op as f64 + 0.5)
                            y=top + row * c as f64 + 14.0
                            text-anchor="middle"
                        >
                            {op.to_string()}
                        </text>
                    }
                })
                .collect_view();
            let highlight = inspected.filter(|&op| op < m).map(|op| {
                view! {
                    <rect
                        class="inspected"
                        x=left + cell * op as f64 - 1.0
                        y=top - 1.0
                        width=cell + 1.0
                        height=row * c as f64 + 1.0
                    ></rect>
                }
            });
            let legend_h = row * c as f64;
            // The colour scale as stacked bands (bottom: 0, top: the largest value).
            let bands = 32;
            let band_h = legend_h / f64::from(bands);
            let stops = (0..bands)
                .map(|i| {
                    let v = (f64::from(i) + 0.5) / f64::from(bands);
                    view! {
                        <rect
                            class="band"
                            x=legend_x
                            y=top + legend_h - band_h * f64::from(i + 1)
                            width=12.0
                            height=band_h + 0.5
                            fill=heat_colour(v as f32)
                        ></rect>
                    }
                })
                .collect_view();
            let (legend_scale, legend_ticks) = (
                Scale::new((0.0, f64::from(max)), (top + legend_h, top)),
                nice_ticks(0.0, f64::from(max), 4),
            );
            let legend_marks = legend_ticks
                .0
                .iter()
                .filter(|&&v| v <= f64::from(max) * 1.0001)
                .map(|&v| {
                    view! {
                        <text class="tick" x=legend_x + 18.0 y=legend_scale.map(v) + 4.0>
                            {tick_label(v, legend_ticks.1)}
                        </text>
                    }
                })
                .collect_view();
            view! {
                <svg
                    id="heatmap"
                    class="chart"
                    width=w
                    height=h
                    data-classes=c
                    data-operators=m
                >
                    {cells}
                    {highlight}
                    {class_labels}
                    {op_labels}
                    <text
                        class="axis-label"
                        x=left + 0.5 * grid_w
                        y=h - 6.0
                        text-anchor="middle"
                    >
                        "operator m (click to inspect)"
                    </text>
                    {stops}
                    <rect class="legend" x=legend_x y=top width=12.0 height=legend_h></rect>
                    {legend_marks}
                    <text class="axis-label" x=legend_x y=top + legend_h + 16.0>
                        "mean |c_m|"
                    </text>
                </svg>
            }
            .into_any()
        })
    }
}

/// Frobenius norm and usage of every operator, in index order, as paired bars.
#[component]
pub fn OperatorBars(ui: Ui) -> impl IntoView {
    const H: f64 = 200.0;
    move || {
        let inspected = ui.spectrum.with(|s| s.as_ref().map(|s| s.operator));
        ui.summary.with(|summary| {
            let Some(summary) = summary.as_ref() else {
                return ().into_any();
            };
            let m = summary.num_operators.max(1);
            let mut rows: Vec<(usize, f32, f32)> = summary
                .operators
                .iter()
                .filter_map(|r| Some((usize::try_from(r.index).ok()?, r.norm, r.usage)))
                .collect();
            rows.sort_by_key(|r| r.0);
            let slot = (560.0 / m as f64).clamp(10.0, 40.0);
            let (left, right, top, bottom) = MARGIN;
            let w = left + slot * m as f64 + right + 44.0;
            let max_norm = rows.iter().map(|r| f64::from(r.1)).fold(0.0, f64::max);
            let (norm_scale, norm_ticks) = fitted(0.0, max_norm.max(1e-9), (H - bottom, top), 4);
            let usage_scale = Scale::new((0.0, 1.0), (H - bottom, top));
            let bars = rows
                .iter()
                .map(|&(op, norm, usage)| {
                    let x0 = left + slot * op as f64;
                    let bar = (slot * 0.4).max(3.0);
                    let norm_y = norm_scale.map(f64::from(norm));
                    let usage_y = usage_scale.map(f64::from(usage));
                    view! {
                        <g
                            class="bar-pair"
                            class:inspected=inspected == Some(op)
                            data-operator=op
                            on:click=move |_| inspect(ui, op)
                        >
                            <rect class="hit" x=x0 y=top width=slot height=H - bottom - top></rect>
                            <rect class="norm-bar" x=x0 + 0.1 * slot y=norm_y width=bar height=H - bottom - norm_y></rect>
                            <rect class="usage-bar" x=x0 + 0.1 * slot + bar y=usage_y width=bar height=H - bottom - usage_y></rect>
                        </g>
                    }
                })
                .collect_view();
            let every = (m / 16).max(1);
            let op_labels = (0..m)
                .filter(|op| op % every == 0)
                .map(|op| {
                    view! {
                        <text class="tick" x=left + slot * (op as f64 + 0.5) y=H - bottom + 14.0 text-anchor="middle">
                            {op.to_string()}
                        </text>
                    }
                })
                .collect_view();
            let right_axis = left + slot * m as f64;
            let norm_marks = norm_ticks
                .0
                .iter()
                .map(|&v| {
                    let py = norm_scale.map(v);
                    view! {
                        <line class="grid" x1=left x2=right_axis y1=py y2=py></line>
                        <text class="tick" x=left - 6.0 y=py + 4.0 text-anchor="end">
                            {tick_label(v, norm_ticks.1)}
                        </text>
                    }
                })
                .collect_view();
            let usage_marks = [0.0, 0.5, 1.0]
                .into_iter()
                .map(|v| {
                    view! {
                        <text class="tick usage-tick" x=right_axis + 6.0 y=usage_scale.map(v) + 4.0>
                            {format!("{:.0}%", v * 100.0)}
                        </text>
                    }
                })
                .collect_view();
            view! {
                <svg id="operator-bars" class="chart" width=w height=H data-operators=m>
                    {norm_marks}
                    {bars}
                    <line class="axis" x1=left x2=right_axis y1=H - bottom y2=H - bottom></line>
                    <line class="axis" x1=left x2=left y1=top y2=H - bottom></line>
                    <line class="axis" x1=right_axis x2=right_axis y1=top y2=H - bottom></line>
                    {op_labels}
                    {usage_marks}
                    <text class="axis-label" x=left + 0.5 * slot * m as f64 y=H - 4.0 text-anchor="middle">
                        "operator m"
                    </text>
                    <text
                        class="axis-label norm-label"
                        x=12.0
                        y=0.5 * (top + H - bottom)
                        text-anchor="middle"
                        transform=format!("rotate(-90 12 {})", 0.5 * (top + H - bottom))
                    >
                        "‖Ψ_m‖_F"
                    </text>
                    <text class="axis-label usage-label" x=right_axis + 6.0 y=H - 4.0>
                        "usage"
                    </text>
                </svg>
            }
            .into_any()
        })
    }
}

/// Inspects operator `op` (the state, and so the link, follow).
fn inspect(ui: Ui, op: usize) {
    if let Ok(op) = u32::try_from(op) {
        ui.state.update(|s| s.inspect = Some(op));
    }
}
