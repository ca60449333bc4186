//! The neighbour strip: the nearest gallery images of the path's current point (or of the first
//! prior samples); a click makes one the anchor.

use leptos::html::Canvas;
use leptos::prelude::*;

use super::THUMB_PX;
use crate::state::Mode;
use crate::web::controller::{Controller, STRIP_LEN};
use crate::web::signals::Ui;

#[component]
pub fn NeighbourStrip(ui: Ui) -> impl IntoView {
    let ctl = Controller::expect();
    let refs: [NodeRef<Canvas>; STRIP_LEN] = std::array::from_fn(|_| NodeRef::new());
    Effect::new(move |_| {
        let indices = ui.nn.get();
        ui.sprites_version.track();
        for (slot, node) in refs.iter().enumerate() {
            if let Some(canvas) = node.get() {
                ctl.paint_thumbnail(&canvas, indices.get(slot).copied());
            }
        }
    });
    let tiles = refs
        .into_iter()
        .enumerate()
        .map(|(slot, node)| {
            let index = move || ui.nn.with(|v| v.get(slot).copied());
            view! {
                <canvas
                    class="nn-tile"
                    width=THUMB_PX
                    height=THUMB_PX
                    node_ref=node
                    hidden=move || index().is_none()
                    data-index=move || index().map(|i| i.to_string())
                    title=move || index().map(|i| format!("image {i} (click to make it the anchor)"))
                    on:click=move |_| {
                        if let Some(i) = index().and_then(|i| u32::try_from(i).ok()) {
                            ctl.pick_anchor(i);
                        }
                    }
                ></canvas>
            }
        })
        .collect_view();
    view! {
        <div class="panel strip-panel">
            <h2>
                {move || {
                    if ui.state.with(|s| s.mode == Mode::Prior) {
                        "Nearest gallery image of each prior sample "
                    } else {
                        "Nearest gallery images of z(t) "
                    }
                }}
                <span class="sub">"cosine, first 8"</span>
            </h2>
            <div
                id="nn-strip"
                data-indices=move || {
                    ui.nn.with(|v| v.iter().map(ToString::to_string).collect::<Vec<_>>().join(","))
                }
            >
                {tiles}
            </div>
        </div>
    }
}
