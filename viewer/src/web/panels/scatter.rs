//! The scatter panel's canvas with its mouse handling, and the hover card with the hovered
//! image's thumbnail.

use leptos::html::Canvas;
use leptos::prelude::*;
use web_sys::MouseEvent;

use super::THUMB_PX;
use crate::web::controller::Controller;
use crate::web::signals::Ui;

fn offset(e: &MouseEvent) -> [f32; 2] {
    // Offsets are small pixel counts.
    #[allow(clippy::cast_precision_loss)]
    let at = [e.offset_x() as f32, e.offset_y() as f32];
    at
}

#[component]
pub fn Scatter(ui: Ui) -> impl IntoView {
    let ctl = Controller::expect();
    let hover_ref: NodeRef<Canvas> = NodeRef::new();
    Effect::new(move |_| {
        let index = ui.hover.with(|h| h.as_ref().map(|h| h.index));
        ui.sprites_version.track();
        if let Some(canvas) = hover_ref.get() {
            ctl.paint_thumbnail(&canvas, index);
        }
    });
    view! {
        <div class="scatter-wrap">
            <canvas
                id="scatter"
                data-points="0"
                data-trail="0"
                on:mousedown=move |e| ctl.pointer_down(offset(&e))
                on:mousemove=move |e| ctl.pointer_move(offset(&e))
                on:mouseup=move |e| ctl.pointer_up(offset(&e), e.shift_key())
                on:mouseleave=move |_| ctl.pointer_leave()
                on:wheel=move |e| {
                    e.prevent_default();
                    ctl.wheel(offset(&e), e.delta_y());
                }
            ></canvas>
            <div
                id="hover-card"
                hidden=move || ui.hover.with(Option::is_none)
                style:left=move || ui.hover.with(|h| h.as_ref().map(|h| format!("{}px", h.at[0] + 14.0)))
                style:top=move || ui.hover.with(|h| h.as_ref().map(|h| format!("{}px", h.at[1] + 14.0)))
            >
                <canvas width=THUMB_PX height=THUMB_PX node_ref=hover_ref></canvas>
                <span>{move || ui.hover.with(|h| h.as_ref().map(|h| h.label.clone()))}</span>
            </div>
        </div>
    }
}
