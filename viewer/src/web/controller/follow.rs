//! Follow mode in the page (`follow=1`): a loop that polls the bundle and the `metrics.jsonl`
//! beside it every [`POLL_INTERVAL_MS`](crate::follow::POLL_INTERVAL_MS), and swaps a changed
//! bundle in place. The decisions (what to ask, whether the answer is new, what the view keeps,
//! the back-off) are `crate::follow`'s; this module does the fetching and the swapping.
//!
//! A swap decodes and digests the new bundle in the poll's task, between animation frames, and
//! installs it only when that succeeded: a network error, a file caught mid-write or a bundle
//! that does not decode leaves the model in use, shows a warning in `#live-status` and is
//! retried. The view (anchor, operators and coefficients, T, t, mode, seed, playing) carries
//! over, range-checked against the new bundle.

use std::rc::Rc;

use leptos::prelude::*;
use mclr_shared::bundle::limits::MAX_TRAINING_LOG_BYTES;
use mclr_shared::error_chain;
use wasm_bindgen_futures::spawn_local;

use super::load::{live_status, summarise};
use super::{Controller, Loaded};
use crate::follow::{self, Fingerprint, Validators, Watched, carry_over, poll_delay_ms};
use crate::session::Session;
use crate::viewport::Viewport;
use crate::web::loader::{self, MAX_DOWNLOAD, Polled};
use crate::web::page;

/// What the follow loop keeps between polls.
pub(super) struct Following {
    /// Which loop this is: a newer bundle (or another follow) ends older loops.
    generation: u64,
    /// The bundle's address.
    url: String,
    /// The bundle in use.
    bundle: Watched,
    /// `metrics.jsonl` beside it.
    log_url: String,
    /// The log in use.
    log: Watched,
}

/// The file name of a run's training log, beside its bundle.
const LOG_FILE: &str = "metrics.jsonl";

impl Controller {
    /// Starts following the bundle at `url`, whose version in use came with `validators` and
    /// has `fingerprint`: reads the log beside it now, then polls both.
    pub(super) fn start_following(
        self,
        url: String,
        validators: Validators,
        fingerprint: Option<Fingerprint>,
    ) {
        let log_url = follow::beside(&url, LOG_FILE);
        let generation = self.with_core(|core| {
            core.follow_generation += 1;
            core.following = Some(Following {
                generation: core.follow_generation,
                url,
                bundle: Watched::new(validators, fingerprint),
                log_url,
                log: Watched::default(),
            });
            core.follow_generation
        });
        if let Some(generation) = generation {
            spawn_local(self.follow_loop(generation));
        }
    }

    /// Stops any follow loop and forgets the followed log.
    pub(super) fn stop_following(self) {
        let was = self
            .with_core(|core| {
                core.follow_generation += 1;
                core.following.take().is_some()
            })
            .unwrap_or(false);
        if was {
            self.ui.curves.update(|runs| runs.clear_followed());
        }
    }

    /// Whether loop `generation` is still the one to run.
    fn following(self, generation: u64) -> bool {
        self.with_core(|core| {
            core.following
                .as_ref()
                .is_some_and(|f| f.generation == generation)
        })
        .unwrap_or(false)
    }

    async fn follow_loop(self, generation: u64) {
        self.poll_log(generation).await;
        loop {
            let failures = self
                .with_core(|core| {
                    core.following
                        .as_ref()
                        .filter(|f| f.generation == generation)
                        .map(|f| f.bundle.failures().max(f.log.failures()))
                })
                .flatten();
            let Some(failures) = failures else {
                return;
            };
            page::sleep_ms(poll_delay_ms(failures)).await;
            if !self.following(generation) {
                return;
            }
            self.poll_bundle(generation).await;
            self.poll_log(generation).await;
        }
    }

    /// Runs `f` on the loop's bookkeeping if loop `generation` is still current.
    fn with_following<R>(self, generation: u64, f: impl FnOnce(&mut Following) -> R) -> Option<R> {
        self.with_core(|core| {
            core.following
                .as_mut()
                .filter(|following| following.generation == generation)
                .map(f)
        })
        .flatten()
    }

    /// One poll of the bundle: nothing on a 304 or the same bytes, a swap on a new version, a
    /// warning on a failure.
    async fn poll_bundle(self, generation: u64) {
        let Some((url, condition, current)) = self.with_following(generation, |f| {
            (f.url.clone(), f.bundle.condition(), f.bundle.clone())
        }) else {
            return;
        };
        let (polled, plain) = loader::poll_or_plain(
            &url,
            condition,
            MAX_DOWNLOAD,
            Fingerprint::BUNDLE_PREFIX,
            |head| Fingerprint::of_bundle(head).is_some_and(|print| current.is_current(&print)),
        )
        .await;
        if plain {
            self.with_following(generation, |f| f.bundle.ask_plainly());
        }
        let outcome = match polled {
            Ok(Polled::NotModified) => Ok(None),
            Ok(Polled::Same(validators)) => {
                // The same bytes under new validators (a rewrite with equal content).
                self.with_following(generation, |f| f.bundle.revalidated(validators));
                Ok(None)
            }
            Ok(Polled::Body(bytes, validators)) => {
                self.swap(generation, &url, bytes, validators).await
            }
            Ok(Polled::Status(status, text)) => Err(format!("the server answered {status} {text}")),
            Err(error) => Err(error_chain(&error)),
        };
        match outcome {
            Ok(problem) => {
                self.with_following(generation, |f| f.bundle.unchanged());
                self.set_live_warning(problem);
            }
            Err(reason) => {
                let reason = reason.trim_end_matches('.');
                let Some(failures) = self.with_following(generation, |f| f.bundle.fail()) else {
                    return;
                };
                let retry_s = poll_delay_ms(failures) / 1000;
                self.set_live_warning(Some(format!(
                    "Could not update from the run: {reason}. Still showing the model above; \
                     retrying in {retry_s} s."
                )));
            }
        }
    }

    /// Decodes a new version of the followed bundle and swaps it in, returning a problem with
    /// its thumbnails if there is one (the swap is done); the reason in words when it cannot be
    /// used (the model in use then stays).
    async fn swap(
        self,
        generation: u64,
        url: &str,
        bytes: Vec<u8>,
        validators: Validators,
    ) -> Result<Option<String>, String> {
        let Some(fingerprint) = Fingerprint::of_bundle(&bytes) else {
            return Err(format!(
                "the file is {} bytes, too short for a bundle (it may be being written)",
                bytes.len()
            ));
        };
        let session = Session::from_bytes(&bytes, &loader::name_from_url(url))
            .map_err(|error| error_chain(&error))?;
        drop(bytes);
        let previous = self.with_core(|core| core.loaded.clone()).flatten();
        let (sprites, sheet, sheet_problem) = self
            .sprites_for(&session, Some(url), previous.as_deref())
            .await;
        let loaded = self
            .digest(session, sprites, sheet)
            .await
            .map_err(|error| error_chain(&error))?;
        if !self.following(generation) {
            // Another bundle was opened meanwhile; this one is not wanted any more.
            return Ok(None);
        }
        self.install_swap(loaded);
        self.with_following(generation, |f| f.bundle.accept(validators, fingerprint));
        Ok(sheet_problem)
    }

    /// Makes a followed bundle's new version the current one, keeping the view.
    fn install_swap(self, loaded: Loaded) {
        let ui = self.ui;
        let session = &loaded.session;
        let summary = summarise(session, &loaded.by_class);
        let (gallery, operators) = (session.len(), session.num_operators());
        let viewport = Viewport::fit(&session.points, [800.0, 600.0]);
        let logs = session.run.training_logs.clone();
        let status = live_status(session);
        self.with_core(|core| {
            core.loaded = Some(Rc::new(loaded));
            core.viewport = Some(viewport);
            core.player = None;
            core.cloud = None;
            core.path_generation += 1;
            if let Some(layer) = core.layer.as_mut() {
                layer.invalidate();
            }
        });
        let current = ui.state.get_untracked();
        let (mut state, warnings) = carry_over(&current, gallery, operators);
        if state.anchor.is_none() && gallery > 0 {
            state.anchor = Some(0);
        }
        ui.warnings
            .update(|list| list.extend(warnings.iter().map(ToString::to_string)));
        ui.spectrum.set(None);
        ui.transport.set(None);
        ui.summary.set(Some(summary));
        ui.sprites_version.update(|v| *v += 1);
        ui.curves.update(|runs| runs.set_bundle(&logs));
        ui.live.update(|live| {
            if let Some(live) = live {
                live.status = status;
            }
        });
        if state == current {
            spawn_local(self.refresh());
        } else {
            // What the new bundle lacks is not the person's doing: the first view, if untouched,
            // stays untouched.
            ui.first_view.update(|first| {
                if let Some(first) = first.as_mut().filter(|f| f.state == current) {
                    first.state = state.clone();
                }
            });
            ui.state.set(state);
        }
        if ui.playing.get_untracked() {
            self.schedule_frame();
        }
    }

    /// One poll of `metrics.jsonl` beside the bundle; a change replaces the run's own curves.
    /// No log there is no problem (a run may not have logged yet); other failures only slow
    /// the polls down, since the curves in use stay right up to their last step.
    async fn poll_log(self, generation: u64) {
        let Some((url, condition, current)) = self.with_following(generation, |f| {
            (f.log_url.clone(), f.log.condition(), f.log.clone())
        }) else {
            return;
        };
        let limit = u64::try_from(MAX_TRAINING_LOG_BYTES).unwrap_or(u64::MAX);
        let (polled, plain) = loader::poll_or_plain(&url, condition, limit, 0, |_| false).await;
        if plain {
            self.with_following(generation, |f| f.log.ask_plainly());
        }
        match polled {
            Ok(Polled::NotModified | Polled::Same(_) | Polled::Status(404 | 410, _)) => {
                self.with_following(generation, |f| f.log.unchanged());
            }
            Ok(Polled::Body(bytes, validators)) => {
                let print = Fingerprint::of_text(&bytes);
                if !current.is_current(&print) {
                    let label = self
                        .with_core(|core| {
                            core.loaded
                                .as_ref()
                                .map(|l| format!("{} (live)", l.session.metadata.method))
                        })
                        .flatten()
                        .unwrap_or_else(|| "this run (live)".to_owned());
                    let text = String::from_utf8_lossy(&bytes);
                    if !self.following(generation) {
                        return;
                    }
                    self.ui
                        .curves
                        .update(|runs| runs.set_followed(&label, &text));
                }
                self.with_following(generation, |f| f.log.accept(validators, print));
            }
            Ok(Polled::Status(..)) | Err(_) => {
                self.with_following(generation, |f| f.log.fail());
            }
        }
    }

    /// Shows (or clears) the follow loop's warning in `#live-status`.
    fn set_live_warning(self, warning: Option<String>) {
        let ui = self.ui;
        if ui
            .live
            .with_untracked(|live| live.as_ref().is_some_and(|l| l.warning != warning))
        {
            ui.live.update(|live| {
                if let Some(live) = live {
                    live.warning = warning;
                }
            });
        }
    }
}
