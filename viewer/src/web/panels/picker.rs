//! The anchor panel: a thumbnail and number field for the anchor A and, in transport mode, for
//! image B.

use leptos::html::Canvas;
use leptos::prelude::*;
use web_sys::HtmlInputElement;

use super::THUMB_PX;
use crate::state::{Mode, ViewState};
use crate::web::controller::Controller;
use crate::web::signals::Ui;

/// Which gallery image an [`ImagePicker`] chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pick {
    /// The anchor A: where paths, prior samples and transport start.
    Anchor,
    /// Image B, the transport target.
    Target,
}

impl Pick {
    /// The picked image in `state`.
    fn current(self, state: &ViewState) -> Option<u32> {
        match self {
            Self::Anchor => state.anchor,
            Self::Target => state.b,
        }
    }

    /// Picks gallery image `index`; false when the gallery has no such image.
    fn set(self, ctl: Controller, index: u32) -> bool {
        match self {
            Self::Anchor => ctl.pick_anchor(index),
            Self::Target => ctl.pick_target(index),
        }
    }
}

#[component]
pub fn AnchorPanel(ui: Ui) -> impl IntoView {
    view! {
        <ImagePicker
            ui=ui
            pick=Pick::Anchor
            canvas_id="anchor-thumb"
            input_id="anchor-input"
            label="Anchor image"
            hint="Click a point in the scatter to pick it."
            hidden=Signal::derive(|| false)
        />
        <ImagePicker
            ui=ui
            pick=Pick::Target
            canvas_id="b-thumb"
            input_id="b-input"
            label="Image B"
            hint="Shift-click a point to pick B. The path uses the encoder's coefficients for A → B: t = 1 is its estimate of B."
            hidden=Signal::derive(move || ui.state.with(|s| s.mode != Mode::Transport))
        />
    }
}

/// A thumbnail and a number field for one gallery image (A or B); a number outside the gallery
/// is refused with a message that says the valid range.
#[component]
fn ImagePicker(
    ui: Ui,
    pick: Pick,
    canvas_id: &'static str,
    input_id: &'static str,
    label: &'static str,
    hint: &'static str,
    hidden: Signal<bool>,
) -> impl IntoView {
    let ctl = Controller::expect();
    let thumb_ref: NodeRef<Canvas> = NodeRef::new();
    Effect::new(move |_| {
        let picked = ui.state.with(|s| pick.current(s));
        ui.sprites_version.track();
        if let Some(canvas) = thumb_ref.get() {
            ctl.paint_thumbnail(&canvas, picked.and_then(|i| usize::try_from(i).ok()));
        }
    });
    let commit = move |input: HtmlInputElement| {
        let text = input.value();
        if text.trim().is_empty() {
            // Cleared on the way to typing a new index.
            return;
        }
        let gallery = ui
            .summary
            .with_untracked(|s| s.as_ref().map_or(0, |s| s.gallery));
        let picked = text.trim().parse::<u32>().is_ok_and(|i| pick.set(ctl, i));
        if !picked {
            ui.error.set(Some(format!(
                "There is no image {}: the gallery has {gallery} images, numbered 0 to {}.",
                text.trim(),
                gallery.saturating_sub(1)
            )));
        }
    };
    view! {
        <div class="panel anchor" hidden=move || hidden.get()>
            <canvas id=canvas_id width=THUMB_PX height=THUMB_PX node_ref=thumb_ref></canvas>
            <label>
                {label}
                <input
                    id=input_id
                    type="number"
                    min="0"
                    max=move || ui.summary.with(|s| s.as_ref().map(|s| s.gallery.saturating_sub(1)))
                    prop:value=move || {
                        ui.state.with(|s| pick.current(s).map(|i| i.to_string()).unwrap_or_default())
                    }
                    on:change=move |e| commit(event_target(&e))
                    on:keydown=move |e| {
                        if e.key() == "Enter" {
                            commit(event_target(&e));
                        }
                    }
                />
            </label>
            <p class="hint">{hint}</p>
        </div>
    }
}
