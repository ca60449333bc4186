//! The animation loop: play and pause, one `requestAnimationFrame` callback at a time, and a frame
//! that steps the path, finds the neighbours and draws.

use leptos::prelude::*;
use mclr_shared::error_chain;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use wasm_bindgen_futures::spawn_local;

use super::Controller;
use super::view::STRIP_LEN;
use crate::state::Mode;
use crate::web::page;

impl Controller {
    /// Starts or stops the animation. Stopping writes the current t into the state (and the
    /// link).
    pub fn toggle_play(self) {
        let ui = self.ui;
        if ui.playing.get_untracked() {
            ui.playing.set(false);
            let t = ui.live_t.get_untracked();
            ui.state.update(|s| s.t = s.clamp_t(t));
        } else if self.engine_and_bundle().is_some()
            && ui.state.with_untracked(|s| s.mode != Mode::Prior)
        {
            ui.playing.set(true);
            self.schedule_frame();
        }
    }

    /// Asks for an animation frame unless one is already asked for.
    pub(super) fn schedule_frame(self) {
        let Some(window) = web_sys::window() else {
            return;
        };
        self.with_core(|core| {
            if core.frame_pending {
                return;
            }
            let callback = core.frame_callback.get_or_insert_with(|| {
                Closure::new(move |_timestamp: f64| spawn_local(self.frame()))
            });
            if window
                .request_animation_frame(callback.as_ref().unchecked_ref())
                .is_ok()
            {
                core.frame_pending = true;
            }
        });
    }

    /// One animation frame: step the path, find the neighbours, time both, draw, and ask for the
    /// next.
    async fn frame(self) {
        let ui = self.ui;
        self.with_core(|core| core.frame_pending = false);
        if !ui.playing.get_untracked() {
            return;
        }
        let Some((engine, loaded)) = self.engine_and_bundle() else {
            return;
        };
        let Some((player, generation)) = self
            .with_core(|core| core.player.take().map(|p| (p, core.path_generation)))
            .flatten()
        else {
            // The path is being restarted; try again next frame.
            self.schedule_frame();
            return;
        };
        let mut player = player;
        let started = page::now_ms();
        let stepped = player
            .advance(&engine, &loaded.session, &loaded.gallery, STRIP_LEN)
            .await;
        let elapsed = page::now_ms() - started;
        let t = player.t();
        let current = self
            .with_core(|core| {
                let current = core.path_generation == generation;
                if current {
                    core.player = Some(player);
                }
                current
            })
            .unwrap_or(false);
        // Paused or restarted while this frame computed: its result is not shown. A pause has
        // written the time it saw into the state, so the path goes back there; a restart (a new
        // coefficient, a followed bundle swapped in) goes on playing from the new path.
        if !current || !ui.playing.get_untracked() {
            if current {
                spawn_local(self.refresh());
            } else if ui.playing.get_untracked() {
                self.schedule_frame();
            }
            return;
        }
        let neighbours = match stepped {
            Ok(neighbours) => neighbours.into_iter().map(|n| n.index).collect(),
            Err(error) => {
                ui.playing.set(false);
                ui.error.set(Some(error_chain(&error)));
                return;
            }
        };
        ui.frame_ms.set(Some(elapsed));
        ui.live_t.set(t);
        self.show_neighbours(Ok(neighbours));
        self.draw();
        self.schedule_frame();
    }
}
