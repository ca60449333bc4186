//! The scatter's mouse handling: hover (with its card), drag to pan, wheel to zoom, and a click
//! (shift-click) that picks the anchor (image B).

use leptos::prelude::*;

use super::Controller;
use crate::web::signals::Hover;

/// Cursor distance within which a point counts as hovered or clicked, CSS pixels.
const HIT_RADIUS: f32 = 8.0;
/// Drag distance past which a press is a pan, not a click, CSS pixels.
const CLICK_SLOP: f32 = 4.0;

/// A mouse press on the scatter, until it is released.
pub(super) struct Drag {
    start: [f32; 2],
    last: [f32; 2],
    moved: bool,
}

impl Controller {
    /// A class name and index for the hover card.
    fn hover_label(self, index: usize) -> String {
        self.with_core(|core| {
            let session = &core.loaded.as_ref()?.session;
            let label = usize::from(*session.labels.get(index)?);
            Some(format!(
                "#{index} · {}",
                session.class_names.get(label).map_or("", String::as_str)
            ))
        })
        .flatten()
        .unwrap_or_default()
    }

    /// Mouse button pressed on the scatter at `at` (CSS pixels).
    pub fn pointer_down(self, at: [f32; 2]) {
        self.with_core(|core| {
            core.drag = Some(Drag {
                start: at,
                last: at,
                moved: false,
            });
        });
    }

    /// Mouse moved over the scatter: pans while dragging, otherwise updates the hovered point.
    pub fn pointer_move(self, at: [f32; 2]) {
        let ui = self.ui;
        let hovered = self
            .with_core(|core| {
                if let Some(drag) = core.drag.as_mut() {
                    let delta = [at[0] - drag.last[0], at[1] - drag.last[1]];
                    drag.last = at;
                    if (at[0] - drag.start[0]).hypot(at[1] - drag.start[1]) > CLICK_SLOP {
                        drag.moved = true;
                    }
                    if drag.moved {
                        if let Some(viewport) = core.viewport.as_mut() {
                            viewport.pan_by(delta);
                        }
                        if let Some(layer) = core.layer.as_mut() {
                            layer.invalidate();
                        }
                    }
                    return None;
                }
                let loaded = core.loaded.as_ref()?;
                core.viewport
                    .as_ref()?
                    .hit(&loaded.session.points, at, HIT_RADIUS)
            })
            .flatten();
        let hover = hovered.map(|index| Hover {
            index,
            at,
            label: self.hover_label(index),
        });
        if ui.hover.with_untracked(|old| *old != hover) {
            ui.hover.set(hover);
        }
        self.draw();
    }

    /// Mouse released: a press without a drag picks the point under the cursor as the anchor, or
    /// (with shift held) as image B of a transport.
    pub fn pointer_up(self, at: [f32; 2], shift: bool) {
        let click = self
            .with_core(|core| {
                let drag = core.drag.take()?;
                if drag.moved {
                    return None;
                }
                let loaded = core.loaded.as_ref()?;
                core.viewport
                    .as_ref()?
                    .hit(&loaded.session.points, at, HIT_RADIUS)
            })
            .flatten();
        if let Some(index) = click.and_then(|i| u32::try_from(i).ok()) {
            if shift {
                self.pick_target(index);
            } else {
                self.pick_anchor(index);
            }
        }
        self.draw();
    }

    /// Mouse left the scatter.
    pub fn pointer_leave(self) {
        self.with_core(|core| core.drag = None);
        self.ui.hover.set(None);
        self.draw();
    }

    /// Wheel over the scatter: zoom about the cursor.
    pub fn wheel(self, at: [f32; 2], delta_y: f64) {
        #[allow(clippy::cast_possible_truncation)]
        let factor = (-delta_y * 0.0015).exp() as f32;
        self.with_core(|core| {
            if let Some(viewport) = core.viewport.as_mut() {
                viewport.zoom_at(at, factor);
            }
            if let Some(layer) = core.layer.as_mut() {
                layer.invalidate();
            }
        });
        self.draw();
    }
}
