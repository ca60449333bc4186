//! What happens when: loading a bundle, (re)starting the path when the view state changes, the
//! animation loop, drawing, and the scatter's mouse handling. The browser objects and the loaded
//! bundle live here, in one thread-local (the browser runs the app on one thread); components
//! only see the `Send` signals of [`Ui`].

use std::cell::RefCell;
use std::rc::Rc;

use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use wasm_bindgen_futures::spawn_local;
use web_sys::HtmlCanvasElement;

use super::loader;
use super::page;
use super::scatter::{self, Overlay, PointLayer};
use super::signals::{
    ClassEntry, Hover, OperatorRow, PriorSummary, Progress, SpectrumView, Summary, SweepView,
    TransportView, Ui,
};
use super::sprites::Sprites;
use crate::engine::{Engine, GalleryIndex};
use crate::error::Result;
use crate::inspect::{SWEEP_POINTS, SWEEP_STEPS, Sweep, operator_spectrum};
use crate::player::{PathKey, PathPlayer};
use crate::prior::{PRIOR_SAMPLES, PriorCloud};
use crate::session::Session;
use crate::state::Mode;
use crate::transport::TransportMatch;
use crate::viewport::{Viewport, class_colour};

/// Nearest neighbours shown in the strip.
pub const STRIP_LEN: usize = 8;
/// Least time between two rewrites of the address bar, in ms (browsers throttle frequent
/// `history.replaceState` calls).
const URL_INTERVAL_MS: i32 = 150;
/// Cursor distance within which a point counts as hovered or clicked, CSS pixels.
const HIT_RADIUS: f32 = 8.0;
/// Drag distance past which a press is a pan, not a click, CSS pixels.
const CLICK_SLOP: f32 = 4.0;

/// Where a bundle comes from.
pub enum Source {
    /// An address to fetch.
    Url(String),
    /// A dropped or picked file.
    File(web_sys::File),
}

/// A bundle in use.
struct Loaded {
    session: Session,
    gallery: GalleryIndex,
    sprites: Option<Sprites>,
    by_class: Vec<Vec<usize>>,
}

struct Drag {
    start: [f32; 2],
    last: [f32; 2],
    moved: bool,
}

#[derive(Default)]
struct Core {
    engine: Option<Rc<Engine>>,
    loaded: Option<Rc<Loaded>>,
    viewport: Option<Viewport>,
    layer: Option<PointLayer>,
    player: Option<PathPlayer>,
    cloud: Option<PriorCloud>,
    /// Bumped whenever a path is (re)started, so a stale frame does not put back an old player.
    path_generation: u64,
    frame_callback: Option<Closure<dyn FnMut(f64)>>,
    frame_pending: bool,
    drag: Option<Drag>,
    url_timer: Option<i32>,
    url_pending: Option<String>,
    url_written_at: f64,
}

thread_local! {
    static CORE: RefCell<Core> = RefCell::new(Core::default());
}

/// Runs `f` on the core; `None` if it is already borrowed (never expected: no borrow is held
/// across an await or a call back into this module).
fn with_core<R>(f: impl FnOnce(&mut Core) -> R) -> Option<R> {
    CORE.with(|core| core.try_borrow_mut().ok().map(|mut core| f(&mut core)))
}

fn engine_and_bundle() -> Option<(Rc<Engine>, Rc<Loaded>)> {
    with_core(|core| Some((core.engine.clone()?, core.loaded.clone()?))).flatten()
}

/// Starts the app: picks the engine, then loads the bundle of the link (or the demo).
pub async fn start(ui: Ui) {
    let force_cpu = ui.state.with_untracked(|s| s.force_cpu);
    let engine = Engine::select(force_cpu).await;
    ui.backend.set(Some(engine.backend()));
    with_core(|core| core.engine = Some(Rc::new(engine)));
    let url = ui
        .state
        .with_untracked(|s| s.bundle.clone())
        .unwrap_or_else(|| "demo.mclr".to_owned());
    load(ui, Source::Url(url)).await;
}

/// Loads a bundle. On failure the error is shown and the previous bundle (if any) stays.
pub async fn load(ui: Ui, source: Source) {
    ui.playing.set(false);
    ui.error.set(None);
    ui.progress.set(Some(Progress {
        loaded: 0.0,
        total: None,
    }));
    page::set_ready(false);
    let from_url = matches!(source, Source::Url(_));
    let result = prepare(ui, source).await;
    ui.progress.set(None);
    match result {
        Err(error) => {
            ui.error.set(Some(error.to_string()));
            // The previous bundle, if any, is still there and usable.
            if with_core(|core| core.loaded.is_some()).unwrap_or(false) {
                page::set_ready(true);
            }
        }
        Ok((loaded, bundle_url, sprite_error)) => {
            install(ui, loaded, from_url.then_some(bundle_url));
            if let Some(error) = sprite_error {
                ui.error.set(Some(error));
            }
            refresh(ui).await;
            page::set_ready(true);
        }
    }
}

/// Reads, decodes and digests a bundle; also returns its address and a thumbnail problem (which
/// does not stop the viewer).
async fn prepare(ui: Ui, source: Source) -> Result<(Loaded, String, Option<String>)> {
    let (bytes, name, url) = match source {
        Source::Url(url) => {
            let bytes = loader::fetch_bytes(&url, |loaded, total| {
                // Progress is display-only; f64 holds any realistic byte count exactly.
                #[allow(clippy::cast_precision_loss)]
                ui.progress.set(Some(Progress {
                    loaded: loaded as f64,
                    total: total.map(|t| t as f64),
                }));
            })
            .await?;
            (bytes, loader::name_from_url(&url), url)
        }
        Source::File(file) => (loader::read_file(&file).await?, file.name(), String::new()),
    };
    let session = Session::from_bytes(&bytes, &name)?;
    drop(bytes);
    let (sprites, sprite_error) = match Sprites::decode(&session.thumbnails).await {
        Ok(sprites) => (Some(sprites), None),
        Err(error) => (None, Some(error.to_string())),
    };
    let engine = with_core(|core| core.engine.clone()).flatten();
    let engine = match engine {
        Some(engine) => engine,
        None => Rc::new(Engine::select(true).await),
    };
    let gallery = engine.upload_gallery(&session.features, session.dim())?;
    let mut by_class = vec![Vec::new(); session.class_names.len()];
    for (i, &label) in session.labels.iter().enumerate() {
        if let Some(members) = by_class.get_mut(usize::from(label)) {
            members.push(i);
        }
    }
    Ok((
        Loaded {
            session,
            gallery,
            sprites,
            by_class,
        },
        url,
        sprite_error,
    ))
}

/// Makes `loaded` the current bundle and fits the state to it.
fn install(ui: Ui, loaded: Loaded, bundle_url: Option<String>) {
    let session = &loaded.session;
    let summary = summarise(session, &loaded.by_class);
    let (gallery, operators) = (session.len(), session.num_operators());
    let viewport = Viewport::fit(&session.points, [800.0, 600.0]);
    with_core(|core| {
        core.loaded = Some(Rc::new(loaded));
        core.viewport = Some(viewport);
        core.player = None;
        core.cloud = None;
        core.path_generation += 1;
        if core.layer.is_none() {
            core.layer = PointLayer::new();
        }
        if let Some(layer) = core.layer.as_mut() {
            layer.invalidate();
        }
    });
    let mut state = ui.state.get_untracked();
    // A dropped file has no address a link could carry: the link then opens the demo.
    if let Some(url) = bundle_url {
        state.bundle = (url != "demo.mclr").then_some(url);
    } else {
        state.bundle = None;
    }
    let warnings = state.check_against(gallery, operators);
    if state.anchor.is_none() && gallery > 0 {
        state.anchor = Some(0);
    }
    ui.warnings
        .update(|list| list.extend(warnings.iter().map(ToString::to_string)));
    ui.spectrum.set(None);
    ui.transport.set(None);
    ui.summary.set(Some(summary));
    ui.sprites_version.update(|v| *v += 1);
    ui.live_t.set(state.t);
    ui.state.set(state);
}

fn summarise(session: &Session, by_class: &[Vec<usize>]) -> Summary {
    let meta = &session.metadata;
    Summary {
        name: session.name.clone(),
        description: format!(
            "{} · {} · {} images · d = {} · {} operators",
            meta.dataset,
            meta.method,
            session.len(),
            session.dim(),
            session.num_operators()
        ),
        gallery: session.len(),
        operators: session
            .order
            .iter()
            .map(|&m| OperatorRow {
                index: u32::try_from(m).unwrap_or(u32::MAX),
                norm: session.norms.get(m).copied().unwrap_or(0.0),
                usage: session.usage.get(m).copied().unwrap_or(0.0).clamp(0.0, 1.0),
            })
            .collect(),
        classes: session
            .class_names
            .iter()
            .enumerate()
            .map(|(c, name)| ClassEntry {
                name: name.clone(),
                colour: class_colour(c),
                count: by_class.get(c).map_or(0, Vec::len),
            })
            .collect(),
        heatmap: session.heatmap.clone(),
        num_operators: session.num_operators(),
    }
}

/// Brings the path in line with the state: restarts it when the anchor, coefficients, T or speed
/// changed, seeks when only t changed; then updates the neighbours and redraws.
pub async fn refresh(ui: Ui) {
    let Some((engine, loaded)) = engine_and_bundle() else {
        return;
    };
    let session = &loaded.session;
    let state = ui.state.get_untracked();
    let anchor = state
        .anchor
        .and_then(|a| usize::try_from(a).ok())
        .filter(|&a| a < session.len());
    let Some(anchor) = anchor else {
        with_core(|core| core.player = None);
        draw(ui);
        return;
    };
    if state.mode == Mode::Prior {
        ui.playing.set(false);
        let samples = state
            .samples
            .and_then(|s| usize::try_from(s).ok())
            .unwrap_or(PRIOR_SAMPLES);
        refresh_prior(
            ui,
            &engine,
            &loaded,
            anchor,
            state.seed.unwrap_or(0),
            samples,
        )
        .await;
        draw(ui);
        return;
    }
    if with_core(|core| core.cloud.take().is_some()).unwrap_or(false) {
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
        refresh_spectrum(ui, session, operator);
        refresh_sweep(ui, &engine, &loaded, anchor, operator, state.t_range).await;
    }
    let playing = ui.playing.get_untracked();
    let coefficients = match (state.mode, state.b) {
        // Transport A → B: the encoder's coefficients, so that t = 1 is its estimate of B.
        (Mode::Transport, Some(b)) => {
            let b = usize::try_from(b).unwrap_or(usize::MAX);
            match TransportMatch::compute(&engine, session, anchor, b).await {
                Ok(found) => {
                    show_transport(ui, &found);
                    found.coefficients
                }
                Err(error) => {
                    ui.transport.set(None);
                    ui.error.set(Some(error.to_string()));
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
    // A transport plays t ∈ [0, 1] (t = 0 is A, t = 1 the encoder's estimate of B), holds on B
    // for a moment and starts again from A; a path loops over [−T, T].
    let speed = ui.speed.get_untracked();
    let key = if state.mode == Mode::Transport {
        PathKey::transport(anchor, coefficients, speed)
    } else {
        PathKey::new(anchor, coefficients, state.t_range, speed)
    };
    let started = page::now_ms();
    let Some((existing, generation)) = with_core(|core| {
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
            with_core(|core| {
                if core.path_generation == generation {
                    core.player = Some(player);
                }
            });
            ui.live_t.set(t);
            show_neighbours(ui, neighbours);
        }
        Err(error) => ui.error.set(Some(error.to_string())),
    }
    draw(ui);
}

/// Shows the transport panel's numbers for `found`.
fn show_transport(ui: Ui, found: &TransportMatch) {
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
    if ui
        .transport
        .with_untracked(|old| old.as_ref() != Some(&view))
    {
        ui.transport.set(Some(view));
    }
}

/// Shows the block eigenvalues of operator `m` unless they already are.
fn refresh_spectrum(ui: Ui, session: &Session, m: usize) {
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
        Err(error) => ui.error.set(Some(error.to_string())),
    }
}

/// Samples the prior at the anchor unless the current cloud already is for (anchor, seed, S).
async fn refresh_prior(
    ui: Ui,
    engine: &Engine,
    loaded: &Loaded,
    anchor: usize,
    seed: u64,
    samples: usize,
) {
    let current = with_core(|core| {
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
            with_core(|core| core.cloud = Some(cloud));
            show_neighbours(ui, Ok(strip));
        }
        Err(error) => ui.error.set(Some(error.to_string())),
    }
}

/// Recomputes the inspect panel's sweep.
async fn refresh_sweep(
    ui: Ui,
    engine: &Engine,
    loaded: &Loaded,
    anchor: usize,
    operator: usize,
    t_range: f32,
) {
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
        Err(error) => ui.error.set(Some(error.to_string())),
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

fn show_neighbours(ui: Ui, neighbours: Result<Vec<usize>>) {
    match neighbours {
        Ok(indices) => {
            if ui.nn.with_untracked(|old| *old != indices) {
                ui.nn.set(indices);
            }
        }
        Err(error) => ui.error.set(Some(error.to_string())),
    }
}

/// Starts or stops the animation. Stopping writes the current t into the state (and the link).
pub fn toggle_play(ui: Ui) {
    if ui.playing.get_untracked() {
        ui.playing.set(false);
        let t = ui.live_t.get_untracked();
        ui.state.update(|s| s.t = s.clamp_t(t));
    } else if engine_and_bundle().is_some() && ui.state.with_untracked(|s| s.mode != Mode::Prior) {
        ui.playing.set(true);
        schedule_frame(ui);
    }
}

fn schedule_frame(ui: Ui) {
    let Some(window) = web_sys::window() else {
        return;
    };
    with_core(|core| {
        if core.frame_pending {
            return;
        }
        let callback = core
            .frame_callback
            .get_or_insert_with(|| Closure::new(move |_timestamp: f64| spawn_local(frame(ui))));
        if window
            .request_animation_frame(callback.as_ref().unchecked_ref())
            .is_ok()
        {
            core.frame_pending = true;
        }
    });
}

/// One animation frame: step the path, find the neighbours, time both, draw, and ask for the next.
async fn frame(ui: Ui) {
    with_core(|core| core.frame_pending = false);
    if !ui.playing.get_untracked() {
        return;
    }
    let Some((engine, loaded)) = engine_and_bundle() else {
        return;
    };
    let Some((player, generation)) =
        with_core(|core| core.player.take().map(|p| (p, core.path_generation))).flatten()
    else {
        // The path is being restarted; try again next frame.
        schedule_frame(ui);
        return;
    };
    let mut player = player;
    let started = page::now_ms();
    let stepped = player
        .advance(&engine, &loaded.session, &loaded.gallery, STRIP_LEN)
        .await;
    let elapsed = page::now_ms() - started;
    let t = player.t();
    let current = with_core(|core| {
        let current = core.path_generation == generation;
        if current {
            core.player = Some(player);
        }
        current
    })
    .unwrap_or(false);
    // Paused or restarted while this frame computed: its result is not shown. A pause has
    // written the time it saw into the state, so the path goes back there.
    if !current || !ui.playing.get_untracked() {
        if current {
            spawn_local(refresh(ui));
        }
        return;
    }
    let neighbours = match stepped {
        Ok(neighbours) => neighbours.into_iter().map(|n| n.index).collect(),
        Err(error) => {
            ui.playing.set(false);
            ui.error.set(Some(error.to_string()));
            return;
        }
    };
    ui.frame_ms.set(Some(elapsed));
    ui.live_t.set(t);
    show_neighbours(ui, Ok(neighbours));
    draw(ui);
    schedule_frame(ui);
}

fn scatter_canvas() -> Option<HtmlCanvasElement> {
    web_sys::window()?
        .document()?
        .get_element_by_id("scatter")?
        .dyn_into::<HtmlCanvasElement>()
        .ok()
}

/// Redraws the scatter.
pub fn draw(ui: Ui) {
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
    with_core(|core| {
        let Some(loaded) = core.loaded.clone() else {
            return;
        };
        let (Some(viewport), Some(layer)) = (core.viewport.as_mut(), core.layer.as_mut()) else {
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

/// Picks gallery image `index` as the anchor, if it exists.
pub fn pick_anchor(ui: Ui, index: u32) -> bool {
    let exists = with_core(|core| {
        core.loaded
            .as_ref()
            .is_some_and(|l| usize::try_from(index).is_ok_and(|i| i < l.session.len()))
    })
    .unwrap_or(false);
    if exists {
        ui.error.set(None);
        ui.state.update(|s| s.anchor = Some(index));
    }
    exists
}

/// Picks gallery image `index` as image B of a transport (switching to transport mode).
pub fn pick_target(ui: Ui, index: u32) -> bool {
    let exists = with_core(|core| {
        core.loaded
            .as_ref()
            .is_some_and(|l| usize::try_from(index).is_ok_and(|i| i < l.session.len()))
    })
    .unwrap_or(false);
    if exists {
        ui.error.set(None);
        ui.state.update(|s| {
            s.b = Some(index);
            s.mode = Mode::Transport;
            s.t = s.clamp_t(s.t);
        });
    }
    exists
}

/// Paints the thumbnail of gallery image `index` into `canvas`.
pub fn paint_thumbnail(canvas: &HtmlCanvasElement, index: Option<usize>) {
    with_core(|core| {
        if let Some(sprites) = core.loaded.as_ref().and_then(|l| l.sprites.as_ref()) {
            sprites.paint(canvas, index);
        }
    });
}

/// Whether gallery image `index` has the anchor's class.
pub fn same_class_as_anchor(ui: Ui, index: usize) -> bool {
    let anchor = ui
        .state
        .with_untracked(|s| s.anchor.and_then(|a| usize::try_from(a).ok()));
    with_core(|core| {
        let session = &core.loaded.as_ref()?.session;
        Some(session.labels.get(index)? == session.labels.get(anchor?)?)
    })
    .flatten()
    .unwrap_or(true)
}

/// A class name and index for the hover card.
fn hover_label(index: usize) -> String {
    with_core(|core| {
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
pub fn pointer_down(at: [f32; 2]) {
    with_core(|core| {
        core.drag = Some(Drag {
            start: at,
            last: at,
            moved: false,
        });
    });
}

/// Mouse moved over the scatter: pans while dragging, otherwise updates the hovered point.
pub fn pointer_move(ui: Ui, at: [f32; 2]) {
    let hovered = with_core(|core| {
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
        label: hover_label(index),
    });
    if ui.hover.with_untracked(|old| *old != hover) {
        ui.hover.set(hover);
    }
    draw(ui);
}

/// Mouse released: a press without a drag picks the point under the cursor as the anchor, or
/// (with shift held) as image B of a transport.
pub fn pointer_up(ui: Ui, at: [f32; 2], shift: bool) {
    let click = with_core(|core| {
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
            pick_target(ui, index);
        } else {
            pick_anchor(ui, index);
        }
    }
    draw(ui);
}

/// Mouse left the scatter.
pub fn pointer_leave(ui: Ui) {
    with_core(|core| core.drag = None);
    ui.hover.set(None);
    draw(ui);
}

/// Wheel over the scatter: zoom about the cursor.
pub fn wheel(ui: Ui, at: [f32; 2], delta_y: f64) {
    #[allow(clippy::cast_possible_truncation)]
    let factor = (-delta_y * 0.0015).exp() as f32;
    with_core(|core| {
        if let Some(viewport) = core.viewport.as_mut() {
            viewport.zoom_at(at, factor);
        }
        if let Some(layer) = core.layer.as_mut() {
            layer.invalidate();
        }
    });
    draw(ui);
}

/// Redraws the points after the canvas's size may have changed.
pub fn resized(ui: Ui) {
    draw(ui);
}

/// Keeps the address bar's query equal to `query`: at once when the last write is older than
/// [`URL_INTERVAL_MS`], otherwise once that interval has passed (with the latest query), so that
/// dragging a slider does not flood `history.replaceState`, which browsers throttle.
pub fn update_url(query: String) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let now = page::now_ms();
    let Some((due, timer_pending)) = with_core(|core| {
        core.url_pending = Some(query);
        (
            now - core.url_written_at >= f64::from(URL_INTERVAL_MS),
            core.url_timer.is_some(),
        )
    }) else {
        return;
    };
    if timer_pending {
        return;
    }
    if due {
        write_pending_url();
        return;
    }
    let callback = Closure::once_into_js(move || {
        with_core(|core| core.url_timer = None);
        write_pending_url();
    });
    if let Ok(handle) = window.set_timeout_with_callback_and_timeout_and_arguments_0(
        callback.unchecked_ref(),
        URL_INTERVAL_MS,
    ) {
        with_core(|core| core.url_timer = Some(handle));
    }
}

fn write_pending_url() {
    let now = page::now_ms();
    let query = with_core(|core| {
        core.url_written_at = now;
        core.url_pending.take()
    })
    .flatten();
    if let Some(query) = query {
        page::replace_query(&query);
    }
}
