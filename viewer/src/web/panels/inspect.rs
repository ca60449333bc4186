//! Inspect mode: one operator's sweep through the anchor (nearest-image tiles and coordinate
//! lines), its block eigenvalues, every operator's norm and usage, and the class × operator
//! heatmap.

use leptos::html::Canvas;
use leptos::prelude::*;

use super::THUMB_PX;
use crate::inspect::SWEEP_STEPS;
use crate::state::Mode;
use crate::web::charts::{EigenPlot, HeatmapChart, OperatorBars, SweepPlot};
use crate::web::controller::Controller;
use crate::web::signals::Ui;

#[component]
pub fn InspectPanel(ui: Ui) -> impl IntoView {
    let ctl = Controller::expect();
    let refs: [NodeRef<Canvas>; SWEEP_STEPS] = std::array::from_fn(|_| NodeRef::new());
    Effect::new(move |_| {
        let tiles = ui
            .sweep
            .with(|s| s.as_ref().map(|s| s.tiles.clone()).unwrap_or_default());
        ui.sprites_version.track();
        for (slot, node) in refs.iter().enumerate() {
            if let Some(canvas) = node.get() {
                ctl.paint_thumbnail(&canvas, tiles.get(slot).map(|&(_, i)| i));
            }
        }
    });
    let tile = move |slot: usize| {
        ui.sweep
            .with(|s| s.as_ref().and_then(|s| s.tiles.get(slot).copied()))
    };
    let tiles = refs
        .into_iter()
        .enumerate()
        .map(|(slot, node)| {
            view! {
                <figure class="sweep-tile" hidden=move || tile(slot).is_none()>
                    <canvas
                        class="nn-tile"
                        width=THUMB_PX
                        height=THUMB_PX
                        node_ref=node
                        data-index=move || tile(slot).map(|(_, i)| i.to_string())
                    ></canvas>
                    <figcaption>{move || tile(slot).map(|(t, _)| format!("t = {t:+.2}"))}</figcaption>
                </figure>
            }
        })
        .collect_view();
    view! {
        <div class="panel inspect" id="inspect" hidden=move || ui.state.with(|s| s.mode != Mode::Inspect)>
            <h2>
                {move || {
                    ui.sweep
                        .with(|s| s.as_ref().map(|s| format!("Sweep of Ψ{} through the anchor ", s.operator)))
                }}
                <span class="sub">"nearest image of T(t·e_m) z0"</span>
            </h2>
            <label class="inspect-pick">
                "Inspect operator "
                <select
                    id="inspect-op"
                    on:change=move |e| {
                        if let Ok(m) = event_target_value(&e).parse::<u32>() {
                            ui.state.update(|s| s.inspect = Some(m));
                        }
                    }
                >
                    {move || {
                        let m = ui.summary.with(|s| s.as_ref().map_or(0, |s| s.num_operators));
                        let current = ui.spectrum.with(|s| s.as_ref().map(|s| s.operator));
                        (0..m)
                            .map(|op| {
                                view! {
                                    <option value=op.to_string() selected=current == Some(op)>
                                        {format!("Ψ{op}")}
                                    </option>
                                }
                            })
                            .collect_view()
                    }}
                </select>
                <span class="sub">" (or click a heatmap column or a bar; by default the first selected operator, else the largest)"</span>
            </label>
            <div id="sweep" class="sweep">{tiles}</div>
            <div class="charts">
                <figure class="chart-box">
                    <figcaption>
                        {move || {
                            ui.spectrum
                                .with(|s| {
                                    s.as_ref()
                                        .map(|s| {
                                            format!(
                                                "Eigenvalues of Ψ{}'s {} blocks",
                                                s.operator,
                                                s.blocks.len()
                                            )
                                        })
                                })
                        }}
                        <span class="sub">" one colour per block"</span>
                    </figcaption>
                    <EigenPlot ui=ui />
                </figure>
                <figure class="chart-box">
                    <figcaption>
                        "Coordinates of T(t·e_m) z0 " <span class="sub">"every coordinate, t ∈ [−T, T]"</span>
                    </figcaption>
                    <SweepPlot ui=ui />
                </figure>
                <figure class="chart-box">
                    <figcaption>
                        "Norm and usage " <span class="sub">"blue: ‖Ψ_m‖_F (left axis) · yellow: usage (right axis)"</span>
                    </figcaption>
                    <OperatorBars ui=ui />
                </figure>
            </div>
            <h2>"Class × operator " <span class="sub">"mean |c_m| under the prior"</span></h2>
            <HeatmapChart ui=ui />
        </div>
    }
}
