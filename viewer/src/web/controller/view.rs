//! Bringing the view in line with the state: the path (restarted or seeked), the prior sample
//! cloud, the transport A → B, the inspect panel's spectrum and sweep, and the neighbour strip.

use leptos::prelude::*;
use mclr_shared::error_chain;

use super::{Controller, Loaded};
use crate::engine::Engine;
use crate::error::Result;
use crate::inspect::{SWEEP_POINTS, SWEEP_STEPS, Sweep, operator_spectrum};
use crate::player::{PathKey, PathPlayer};
use crate::prior::{PRIOR_SAMPLES, PriorCloud};
use crate::session::Session;
use crate::state::Mode;
use crate::transport::TransportMatch;
use crate::web::page;
use crate::web::signals::{PriorSummary, SpectrumView, SweepView, TransportView};

/// Nearest neighbours shown in the strip.
pub const STRIP_LEN: usize = 8;

impl Controller {
    /// Brings the path in line with the state: restarts it when the anchor, coefficients, T or
    /// speed changed, seeks when only t changed; then updates the neighbours and redraws.
    pub async fn refresh(self) {
        let ui = self.ui;
        let Some((engine, loaded)) = self.engine_and_bundle() else {
            return;
        };
        let session = &loaded.session;
        let state = ui.state.get_untracked();
        let anchor = state
            .anchor
            .and_then(|a| usize::try_from(a).ok())
            .filter(|&a| a < session.len());
        let Some(anchor) = anchor else {
            self.with_core(|core| core.player = None);
            self.draw();
            return;
        };
        if state.mode == Mode::Prior {
            ui.playing.set(false);
            let samples = state
                .samples
                .and_then(|s| usize::try_from(s).ok())
                .unwrap_or(PRIOR_SAMPLES);
            self.refresh_prior(&engine, &loaded, anchor, state.seed.unwrap_or(0), samples)
                .await;
            self.draw();
            return;
        }
        if self
            .with_core(|core| core.cloud.take().is_some())
            .unwrap_or(false)
        {
            ui.prior.set(None);
        }
        if state.mode == Mode::Inspect {
            let operator = state
                .inspect
                .or_else(|| state.operators.first().map(|&(m, _)| m))
                .and_then(|m| usize::try_from(m).ok())
                .filter(|&m| m < session.num_operators())
                .or_else(|| session.order.first().copied())
                .unwrap_or(0);
            self.refresh_spectrum(session, operator);
            self.refresh_sweep(&engine, &loaded, anchor, operator, state.t_range)
                .await;
        }
        let playing = ui.playing.get_untracked();
        let coefficients = match (state.mode, state.b) {
            // Transport A → B: the encoder's coefficients, so that t = 1 is its estimate of B.
            (Mode::Transport, Some(b)) => {
                let b = usize::try_from(b).unwrap_or(usize::MAX);
                match TransportMatch::compute(&engine, session, anchor, b).await {
                    Ok(found) => {
                        self.show_transport(&found);
                        found.coefficients
                    }
                    Err(error) => {
                        ui.transport.set(None);
                        ui.error.set(Some(error_chain(&error)));
                        vec![0.0; session.num_operators()]
                    }
                }
            }
            (Mode::Transport, None) => {
                ui.transport.set(None);
                vec![0.0; session.num_operators()]
            }
            _ => state.coefficients(session.num_operators()),
        };
        // A transport plays t ∈ [0, 1] (t = 0 is A, t = 1 the encoder's estimate of B), holds on
        // B for a moment and starts again from A; a path loops over [−T, T].
        let speed = ui.speed.get_untracked();
        let key = if state.mode == Mode::Transport {
            PathKey::transport(anchor, coefficients, speed)
        } else {
            PathKey::new(anchor, coefficients, state.t_range, speed)
        };
        let started = page::now_ms();
        let Some((existing, generation)) = self.with_core(|core| {
            core.path_generation += 1;
            (core.player.take(), core.path_generation)
        }) else {
            return;
        };
        let result = match existing {
            Some(mut player) if *player.key() == key => {
                if playing || player.t() == state.t {
                    Ok(player)
                } else {
                    player
                        .seek(&engine, session, state.t)
                        .await
                        .map(|()| player)
                }
            }
            _ => {
                let t = if playing {
                    ui.live_t.get_untracked()
                } else {
                    state.t
                };
                PathPlayer::start(&engine, session, key, t).await
            }
        };
        match result {
            Ok(player) => {
                let neighbours = nearest(&engine, &loaded, player.position()).await;
                ui.frame_ms.set(Some(page::now_ms() - started));
                let t = player.t();
                self.with_core(|core| {
                    if core.path_generation == generation {
                        core.player = Some(player);
                    }
                });
                ui.live_t.set(t);
                self.show_neighbours(neighbours);
            }
            Err(error) => ui.error.set(Some(error_chain(&error))),
        }
        self.draw();
    }

    /// Shows the transport panel's numbers for `found`.
    fn show_transport(self, found: &TransportMatch) {
        let norm = found
            .coefficients
            .iter()
            .map(|&c| f64::from(c) * f64::from(c))
            .sum::<f64>()
            .sqrt();
        let mut top: Vec<(usize, f32)> = found.coefficients.iter().copied().enumerate().collect();
        top.sort_by(|x, y| y.1.abs().total_cmp(&x.1.abs()));
        top.truncate(5);
        // The norm is for display.
        #[allow(clippy::cast_possible_truncation)]
        let view = TransportView {
            a: found.a,
            b: found.b,
            error: found.error,
            norm: norm as f32,
            top,
        };
        if self
            .ui
            .transport
            .with_untracked(|old| old.as_ref() != Some(&view))
        {
            self.ui.transport.set(Some(view));
        }
    }

    /// Shows the block eigenvalues of operator `m` unless they already are.
    fn refresh_spectrum(self, session: &Session, m: usize) {
        let ui = self.ui;
        if ui
            .spectrum
            .with_untracked(|s| s.as_ref().is_some_and(|s| s.operator == m))
        {
            return;
        }
        match operator_spectrum(&session.operators, m) {
            Ok(blocks) => ui.spectrum.set(Some(SpectrumView {
                operator: m,
                blocks,
            })),
            Err(error) => ui.error.set(Some(error_chain(&error))),
        }
    }

    /// Samples the prior at the anchor unless the current cloud already is for (anchor, seed, S).
    async fn refresh_prior(
        self,
        engine: &Engine,
        loaded: &Loaded,
        anchor: usize,
        seed: u64,
        samples: usize,
    ) {
        let ui = self.ui;
        let current = self
            .with_core(|core| {
                core.cloud
                    .as_ref()
                    .is_some_and(|c| c.anchor == anchor && c.seed == seed && c.samples == samples)
            })
            .unwrap_or(false);
        if current {
            return;
        }
        let started = page::now_ms();
        let session = &loaded.session;
        match PriorCloud::sample(engine, session, &loaded.gallery, anchor, seed, samples).await {
            Ok(cloud) => {
                ui.frame_ms.set(Some(page::now_ms() - started));
                let class_name = session
                    .labels
                    .get(anchor)
                    .and_then(|&l| session.class_names.get(usize::from(l)))
                    .cloned()
                    .unwrap_or_default();
                let label = session.labels.get(anchor).copied();
                let kept = cloud
                    .nearest
                    .iter()
                    .filter(|&&i| session.labels.get(i).copied() == label)
                    .count();
                ui.prior.set(Some(PriorSummary {
                    samples: cloud.nearest.len(),
                    keep_label: cloud.keep_label,
                    class_name,
                    kept,
                    nearest: cloud.nearest.clone(),
                }));
                let strip: Vec<usize> = cloud.nearest.iter().copied().take(STRIP_LEN).collect();
                self.with_core(|core| core.cloud = Some(cloud));
                self.show_neighbours(Ok(strip));
            }
            Err(error) => ui.error.set(Some(error_chain(&error))),
        }
    }

    /// Recomputes the inspect panel's sweep.
    async fn refresh_sweep(
        self,
        engine: &Engine,
        loaded: &Loaded,
        anchor: usize,
        operator: usize,
        t_range: f32,
    ) {
        let ui = self.ui;
        let result = Sweep::run(
            engine,
            &loaded.session,
            &loaded.gallery,
            anchor,
            operator,
            t_range,
            SWEEP_POINTS,
        )
        .await;
        match result {
            Ok(sweep) => {
                // Tiles at every (SWEEP_POINTS − 1) / (SWEEP_STEPS − 1)-th time, t = 0 among them.
                let every = (SWEEP_POINTS - 1) / (SWEEP_STEPS - 1);
                let view = SweepView {
                    operator: sweep.operator,
                    tiles: sweep
                        .times
                        .iter()
                        .copied()
                        .zip(sweep.nearest.iter().copied())
                        .step_by(every)
                        .collect(),
                    times: sweep.times,
                    positions: sweep.positions,
                    dim: loaded.session.dim(),
                };
                if ui.sweep.with_untracked(|old| old.as_ref() != Some(&view)) {
                    ui.sweep.set(Some(view));
                }
            }
            Err(error) => ui.error.set(Some(error_chain(&error))),
        }
    }

    /// Shows `neighbours` in the strip (unless they already are), or their error.
    pub(super) fn show_neighbours(self, neighbours: Result<Vec<usize>>) {
        let ui = self.ui;
        match neighbours {
            Ok(indices) => {
                if ui.nn.with_untracked(|old| *old != indices) {
                    ui.nn.set(indices);
                }
            }
            Err(error) => ui.error.set(Some(error_chain(&error))),
        }
    }
}

async fn nearest(engine: &Engine, loaded: &Loaded, z: &[f32]) -> Result<Vec<usize>> {
    let hits = engine.knn(&loaded.gallery, z, STRIP_LEN).await?;
    Ok(hits
        .into_iter()
        .next()
        .unwrap_or_default()
        .into_iter()
        .map(|n| n.index)
        .collect())
}
