//! Prior mode: the sample count, seed and resample controls with the fraction of samples that
//! keep the anchor's class, and the grid of each sample's nearest gallery image.

use leptos::html::Canvas;
use leptos::prelude::*;

use super::THUMB_PX;
use crate::prior::PRIOR_SAMPLES;
use crate::state::{MAX_SAMPLES, Mode};
use crate::web::controller::Controller;
use crate::web::signals::Ui;

#[component]
pub fn PriorControls(ui: Ui) -> impl IntoView {
    let seed = move || ui.state.with(|s| s.seed.unwrap_or(0));
    let samples = move || {
        ui.state
            .with(|s| s.samples.map_or(PRIOR_SAMPLES, |s| s as usize))
    };
    view! {
        <div class="panel controls" hidden=move || ui.state.with(|s| s.mode != Mode::Prior)>
            <span>"c ~ p(c | z0) at the anchor"</span>
            <label>
                "S "
                <input
                    id="samples-input"
                    type="number"
                    min="1"
                    max=MAX_SAMPLES
                    prop:value=move || samples().to_string()
                    on:change=move |e| {
                        match event_target_value(&e).trim().parse::<u32>() {
                            Ok(value) if (1..=MAX_SAMPLES).contains(&value) => {
                                ui.state.update(|s| s.samples = (value as usize != PRIOR_SAMPLES).then_some(value));
                            }
                            _ => {
                                ui.error
                                    .set(Some(format!("S is the number of samples, from 1 to {MAX_SAMPLES}.")));
                            }
                        }
                    }
                />
            </label>
            <label>
                "Seed "
                <input
                    id="seed-input"
                    type="number"
                    min="0"
                    prop:value=move || seed().to_string()
                    on:change=move |e| {
                        if let Ok(value) = event_target_value(&e).trim().parse::<u64>() {
                            ui.state.update(|s| s.seed = Some(value));
                        }
                    }
                />
            </label>
            <button
                id="resample"
                on:click=move |_| ui.state.update(|s| s.seed = Some(s.seed.unwrap_or(0).wrapping_add(1)))
            >
                "Resample"
            </button>
            <span
                id="prior-keep"
                data-fraction=move || ui.prior.get().map(|p| format!("{:.4}", p.keep_label))
            >
                {move || {
                    ui.prior
                        .get()
                        .map(|p| {
                            format!(
                                "{}/{} = {:.0}% keep the anchor's class ({})",
                                p.kept,
                                p.samples,
                                p.keep_label * 100.0,
                                p.class_name
                            )
                        })
                }}
            </span>
            <span class="frame">
                <span>{move || ui.frame_ms.get().map(|ms| format!("{ms:.1}"))}</span>
                " ms"
            </span>
        </div>
    }
}

/// The nearest gallery image of every prior sample, as in the paper's augmentation figure; a
/// tile whose class differs from the anchor's is outlined.
///
/// Each tile paints itself once its canvas is in the page and again whenever the sprite sheet
/// changes: the tiles are rebuilt (blank) on every new cloud or anchor, so one effect painting
/// the grid could run before the new canvases exist and leave them black.
#[component]
pub fn PriorGrid(ui: Ui) -> impl IntoView {
    let ctl = Controller::expect();
    let anchor_label = move || ui.state.with(|s| s.anchor);
    let tiles = move || {
        let nearest = ui
            .prior
            .with(|p| p.as_ref().map(|p| p.nearest.clone()).unwrap_or_default());
        let _ = anchor_label();
        nearest
            .into_iter()
            .enumerate()
            .map(|(s, index)| {
                let same = ctl.same_class_as_anchor(index);
                let node: NodeRef<Canvas> = NodeRef::new();
                Effect::new(move |_| {
                    ui.sprites_version.track();
                    if let Some(canvas) = node.get() {
                        ctl.paint_thumbnail(&canvas, Some(index));
                    }
                });
                view! {
                    <canvas
                        class="prior-tile"
                        node_ref=node
                        class:other-class=!same
                        width=THUMB_PX
                        height=THUMB_PX
                        data-sample=s
                        data-index=index
                        title=format!("sample {s}: nearest image {index} (click to make it the anchor)")
                        on:click=move |_| {
                            if let Ok(i) = u32::try_from(index) {
                                ctl.pick_anchor(i);
                            }
                        }
                    ></canvas>
                }
            })
            .collect_view()
    };
    view! {
        <div class="panel prior-panel" hidden=move || ui.state.with(|s| s.mode != Mode::Prior)>
            <h2>
                "Nearest gallery image of each prior sample T(c̃) z0 "
                <span class="sub">"outlined: a different class from the anchor's"</span>
            </h2>
            <div id="prior-grid" data-count=move || ui.prior.with(|p| p.as_ref().map_or(0, |p| p.nearest.len()))>
                {tiles}
            </div>
        </div>
    }
}
