//! Drawing: the scatter with its overlay (anchor, trail, neighbours, hover, prior cloud, image B),
//! and gallery thumbnails from the loaded sprite sheet.

use leptos::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::HtmlCanvasElement;

use super::Controller;
use crate::player::PathPlayer;
use crate::state::Mode;
use crate::web::scatter::{self, Overlay};

fn scatter_canvas() -> Option<HtmlCanvasElement> {
    web_sys::window()?
        .document()?
        .get_element_by_id("scatter")?
        .dyn_into::<HtmlCanvasElement>()
        .ok()
}

impl Controller {
    /// Redraws the scatter.
    pub fn draw(self) {
        let ui = self.ui;
        let Some(canvas) = scatter_canvas() else {
            return;
        };
        let anchor = ui
            .state
            .with_untracked(|s| s.anchor.and_then(|a| usize::try_from(a).ok()));
        let neighbours = ui.nn.get_untracked();
        let hover = ui.hover.with_untracked(|h| h.as_ref().map(|h| h.index));
        let target = ui.state.with_untracked(|s| {
            (s.mode == Mode::Transport)
                .then_some(s.b)
                .flatten()
                .and_then(|b| usize::try_from(b).ok())
        });
        self.with_core(|core| {
            let Some(loaded) = core.loaded.clone() else {
                return;
            };
            let (Some(viewport), Some(layer)) = (core.viewport.as_mut(), core.layer.as_mut())
            else {
                return;
            };
            // With no operator selected there is no path, only the anchor.
            let trail = core
                .player
                .as_ref()
                .filter(|p| p.key().coefficients.iter().any(|&c| c != 0.0))
                .map_or(&[][..], PathPlayer::trail);
            let cloud = core.cloud.as_ref().map_or(&[][..], |c| c.points.as_slice());
            let overlay = Overlay {
                anchor,
                trail,
                neighbours: &neighbours,
                hover,
                cloud,
                target,
            };
            scatter::render(
                &canvas,
                &loaded.session,
                &loaded.by_class,
                viewport,
                layer,
                &overlay,
            );
        });
    }

    /// Redraws the points after the canvas's size may have changed.
    pub fn resized(self) {
        self.draw();
    }

    /// Paints the thumbnail of gallery image `index` into `canvas`.
    pub fn paint_thumbnail(self, canvas: &HtmlCanvasElement, index: Option<usize>) {
        self.with_core(|core| {
            if let Some(sprites) = core.loaded.as_ref().and_then(|l| l.sprites.as_ref()) {
                sprites.paint(canvas, index);
            }
        });
    }
}
