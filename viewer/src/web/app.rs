//! The components: header with bundle name and backend badge, the scatter with its legend and
//! hover card, the anchor and operator panels, the path controls and the neighbour strip.
//! Text from bundles and links is always inserted as text, never as HTML.

use leptos::ev;
use leptos::html::Canvas;
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::spawn_local;
use web_sys::{HtmlInputElement, MouseEvent};

use super::charts::{EigenPlot, HeatmapChart, OperatorBars, SweepPlot};
use super::controller::{self, STRIP_LEN, Source};
use super::page;
use super::signals::{OperatorRow, Ui};
use crate::inspect::SWEEP_STEPS;
use crate::prior::PRIOR_SAMPLES;
use crate::state::{
    COEF_LIMIT, MAX_SAMPLES, MAX_SELECTED_OPERATORS, MAX_T_RANGE, Mode, ViewState, shown_warnings,
};

/// Animation speeds offered, as (value, label).
const SPEEDS: [(&str, &str); 5] = [
    ("0.25", "¼×"),
    ("0.5", "½×"),
    ("1", "1×"),
    ("2", "2×"),
    ("4", "4×"),
];
/// Side of a thumbnail canvas, device pixels.
const THUMB_PX: u32 = 64;

/// The whole app.
#[component]
pub fn App() -> impl IntoView {
    let (state, warnings) = ViewState::from_query(&page::query());
    let ui = Ui::new(state, warnings.iter().map(ToString::to_string).collect());

    // The address bar and the path follow the state.
    Effect::new(move |_| {
        let query = ui.state.with(ViewState::to_query);
        ui.speed.track();
        controller::update_url(query);
        spawn_local(controller::refresh(ui));
    });
    spawn_local(controller::start(ui));
    install_window_listeners(ui);

    view! {
        <header class="top">
            <h1 class="brand">"mclr"</h1>
            <div class="bundle">
                <span id="bundle-name">
                    {move || ui.summary.with(|s| s.as_ref().map(|s| s.name.clone()))}
                </span>
                <span class="meta">
                    {move || ui.summary.with(|s| s.as_ref().map(|s| s.description.clone()))}
                </span>
            </div>
            <nav class="modes" aria-label="Mode">
                <ModeButton ui=ui mode=Mode::Path label="Path" />
                <ModeButton ui=ui mode=Mode::Prior label="Prior" />
                <ModeButton ui=ui mode=Mode::Transport label="Transport" />
                <ModeButton ui=ui mode=Mode::Inspect label="Inspect" />
            </nav>
            <label class="open-file" title="Open a .mclr bundle (or drop one on the page)">
                "Open .mclr…"
                <input
                    id="file-input"
                    type="file"
                    accept=".mclr"
                    on:change=move |e| {
                        let input: HtmlInputElement = event_target(&e);
                        if let Some(file) = input.files().and_then(|files| files.get(0)) {
                            spawn_local(controller::load(ui, Source::File(file)));
                        }
                        input.set_value("");
                    }
                />
            </label>
            <span
                id="badge"
                data-backend=move || ui.backend.with(|b| b.as_ref().map(|b| b.key()))
                title=move || ui.backend.with(|b| b.as_ref().map(|b| b.detail()))
            >
                {move || {
                    ui.backend
                        .with(|b| b.as_ref().map_or_else(|| "Starting…".to_owned(), |b| b.label()))
                }}
            </span>
        </header>
        <progress
            id="load-progress"
            hidden=move || ui.progress.with(Option::is_none)
            max=move || ui.progress.get().and_then(|p| p.total).map(|t| t.to_string())
            value=move || {
                ui.progress.get().and_then(|p| p.total.map(|_| p.loaded.to_string()))
            }
        ></progress>
        <div id="error" role="alert" hidden=move || ui.error.with(Option::is_none)>
            {move || ui.error.get()}
        </div>
        <ul id="warnings" hidden=move || ui.warnings.with(Vec::is_empty)>
            {move || {
                ui.warnings
                    .with(|all| shown_warnings(all))
                    .into_iter()
                    .map(|w| view! { <li>{w}</li> })
                    .collect_view()
            }}
        </ul>
        <main class="layout">
            <section class="scatter-panel">
                <Scatter ui=ui />
                <Legend ui=ui />
            </section>
            <aside class="side">
                <AnchorPanel ui=ui />
                <OperatorList ui=ui />
            </aside>
            <section class="bottom">
                <PathControls ui=ui />
                <PriorControls ui=ui />
                <PriorGrid ui=ui />
                <TransportPanel ui=ui />
                <InspectPanel ui=ui />
                <ShareBar ui=ui />
                <NeighbourStrip ui=ui />
            </section>
        </main>
        <footer class="hint">
            "Drop a .mclr file anywhere to open it · space plays and pauses · wheel zooms, drag pans, click picks the anchor"
        </footer>
    }
}

fn install_window_listeners(ui: Ui) {
    // Handles live as long as the page.
    let _ = window_event_listener(ev::keydown, move |e| {
        if e.key() != " " || typing_target(e.target()) {
            return;
        }
        e.prevent_default();
        controller::toggle_play(ui);
    });
    let _ = window_event_listener(ev::dragover, |e| e.prevent_default());
    let _ = window_event_listener(ev::drop, move |e| {
        e.prevent_default();
        if let Some(file) = e
            .data_transfer()
            .and_then(|d| d.files())
            .and_then(|f| f.get(0))
        {
            spawn_local(controller::load(ui, Source::File(file)));
        }
    });
    let _ = window_event_listener(ev::resize, move |_| controller::resized(ui));
}

/// Whether a key press goes to a control that uses the space bar itself.
fn typing_target(target: Option<web_sys::EventTarget>) -> bool {
    let Some(element) = target.and_then(|t| t.dyn_into::<web_sys::Element>().ok()) else {
        return false;
    };
    match element.tag_name().to_ascii_lowercase().as_str() {
        "textarea" | "select" | "button" => true,
        "input" => element.get_attribute("type").as_deref() != Some("range"),
        _ => false,
    }
}

fn offset(e: &MouseEvent) -> [f32; 2] {
    // Offsets are small pixel counts.
    #[allow(clippy::cast_precision_loss)]
    let at = [e.offset_x() as f32, e.offset_y() as f32];
    at
}

#[component]
fn Scatter(ui: Ui) -> impl IntoView {
    let hover_ref: NodeRef<Canvas> = NodeRef::new();
    Effect::new(move |_| {
        let index = ui.hover.with(|h| h.as_ref().map(|h| h.index));
        ui.sprites_version.track();
        if let Some(canvas) = hover_ref.get() {
            controller::paint_thumbnail(&canvas, index);
        }
    });
    view! {
        <div class="scatter-wrap">
            <canvas
                id="scatter"
                data-points="0"
                data-trail="0"
                on:mousedown=move |e| controller::pointer_down(offset(&e))
                on:mousemove=move |e| controller::pointer_move(ui, offset(&e))
                on:mouseup=move |e| controller::pointer_up(ui, offset(&e), e.shift_key())
                on:mouseleave=move |_| controller::pointer_leave(ui)
                on:wheel=move |e| {
                    e.prevent_default();
                    controller::wheel(ui, offset(&e), e.delta_y());
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

#[component]
fn Legend(ui: Ui) -> impl IntoView {
    view! {
        <ul id="legend">
            {move || {
                ui.summary
                    .with(|s| s.as_ref().map(|s| s.classes.clone()).unwrap_or_default())
                    .into_iter()
                    .map(|class| {
                        view! {
                            <li>
                                <span class="swatch" style:background=class.colour></span>
                                <span class="class-name">{class.name}</span>
                                <span class="count">{class.count}</span>
                            </li>
                        }
                    })
                    .collect_view()
            }}
        </ul>
    }
}

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
    fn set(self, ui: Ui, index: u32) -> bool {
        match self {
            Self::Anchor => controller::pick_anchor(ui, index),
            Self::Target => controller::pick_target(ui, index),
        }
    }
}

#[component]
fn AnchorPanel(ui: Ui) -> impl IntoView {
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
    let thumb_ref: NodeRef<Canvas> = NodeRef::new();
    Effect::new(move |_| {
        let picked = ui.state.with(|s| pick.current(s));
        ui.sprites_version.track();
        if let Some(canvas) = thumb_ref.get() {
            controller::paint_thumbnail(&canvas, picked.and_then(|i| usize::try_from(i).ok()));
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
        let picked = text.trim().parse::<u32>().is_ok_and(|i| pick.set(ui, i));
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

fn toggle_operator(ui: Ui, m: u32) {
    ui.state.update(|s| {
        if let Some(at) = s.operators.iter().position(|(i, _)| *i == m) {
            s.operators.remove(at);
        } else if s.operators.len() < MAX_SELECTED_OPERATORS {
            s.operators.push((m, 1.0));
        }
    });
}

fn set_coefficient(ui: Ui, m: u32, text: &str) {
    let Ok(value) = text.parse::<f32>() else {
        return;
    };
    let value = value.clamp(-COEF_LIMIT, COEF_LIMIT);
    ui.state.update(|s| {
        if let Some(slot) = s.operators.iter_mut().find(|(i, _)| *i == m) {
            slot.1 = value;
        }
    });
}

#[component]
fn OperatorList(ui: Ui) -> impl IntoView {
    let rows = move || {
        ui.summary
            .with(|s| s.as_ref().map(|s| s.operators.clone()).unwrap_or_default())
    };
    view! {
        <div class="panel operators-panel">
            <h2>"Operators " <span class="sub">"by norm ‖Ψ‖ · bar: usage"</span></h2>
            <ul id="operators">
                <For
                    each=rows
                    key=|row| (row.index, row.norm.to_bits(), row.usage.to_bits())
                    children=move |row| view! { <OperatorItem ui=ui row=row /> }
                />
            </ul>
        </div>
    }
}

#[component]
fn OperatorItem(ui: Ui, row: OperatorRow) -> impl IntoView {
    let m = row.index;
    let coefficient = move || ui.state.with(|s| s.coefficient(m));
    let usage = format!("{:.1}%", row.usage * 100.0);
    view! {
        <li
            class="operator"
            class:selected=move || coefficient().is_some()
            data-index=m.to_string()
            on:click=move |_| toggle_operator(ui, m)
        >
            <div class="op-head">
                <span class="op-name">{format!("Ψ{m}")}</span>
                <span class="op-norm">{format!("{:.3}", row.norm)}</span>
            </div>
            <div class="usage" title=format!("used by {usage} of training pairs")>
                <div class="usage-fill" style:width=usage.clone()></div>
            </div>
            <Show when=move || coefficient().is_some()>
                <div class="coef-row" on:click=|e| e.stop_propagation()>
                    <input
                        type="range"
                        class="coef"
                        data-index=m.to_string()
                        min=(-COEF_LIMIT).to_string()
                        max=COEF_LIMIT.to_string()
                        step="0.05"
                        prop:value=move || coefficient().unwrap_or(0.0).to_string()
                        on:input=move |e| set_coefficient(ui, m, &event_target_value(&e))
                    />
                    <span class="coef-value">
                        {move || format!("{:+.2}", coefficient().unwrap_or(0.0))}
                    </span>
                </div>
            </Show>
        </li>
    }
}

fn scrub(ui: Ui, text: &str) {
    let Ok(t) = text.parse::<f32>() else {
        return;
    };
    ui.playing.set(false);
    ui.state.update(|s| s.t = s.clamp_t(t));
}

/// Applies T while it is being typed, only when the text is already a valid T.
fn set_t_range_quietly(ui: Ui, text: &str) {
    if let Ok(t_range) = text.trim().parse::<f32>()
        && t_range.is_finite()
        && t_range > 0.0
        && t_range <= MAX_T_RANGE
        && ui.state.with_untracked(|s| s.t_range != t_range)
    {
        set_t_range(ui, text);
    }
}

fn set_t_range(ui: Ui, text: &str) {
    match text.trim().parse::<f32>() {
        Ok(t_range) if t_range.is_finite() && t_range > 0.0 && t_range <= MAX_T_RANGE => {
            ui.state.update(|s| {
                s.t_range = t_range;
                s.t = s.clamp_t(s.t);
            });
        }
        _ => ui.error.set(Some(format!(
            "T must be a number above 0 and at most {MAX_T_RANGE}; {} is not.",
            text.trim()
        ))),
    }
}

fn copy_link(ui: Ui) {
    let mut state = ui.state.get_untracked();
    if ui.playing.get_untracked() {
        state.t = state.clamp_t(ui.live_t.get_untracked());
    }
    let url = page::share_url(&state.to_query());
    ui.share_url.set(url.clone());
    spawn_local(async move {
        // Without clipboard permission the link is still in the field next to the button.
        let _ = page::copy_to_clipboard(&url).await;
    });
}

#[component]
fn PathControls(ui: Ui) -> impl IntoView {
    let t_range = move || ui.state.with(|s| s.t_range);
    // The scrub spans the mode's range: [−T, T] for a path, [0, 1] for a transport A → B.
    let t_bounds = move || ui.state.with(ViewState::t_bounds);
    view! {
        <div class="panel controls" hidden=move || ui.state.with(|s| s.mode == Mode::Prior)>
            <button id="play" on:click=move |_| controller::toggle_play(ui)>
                {move || if ui.playing.get() { "Pause" } else { "Play" }}
            </button>
            <label class="scrub">
                <span class="label">"t"</span>
                <input
                    id="scrub"
                    type="range"
                    min=move || t_bounds().0.to_string()
                    max=move || t_bounds().1.to_string()
                    step=move || ((t_bounds().1 - t_bounds().0) / 1000.0).to_string()
                    prop:value=move || ui.live_t.get().to_string()
                    on:input=move |e| scrub(ui, &event_target_value(&e))
                    on:change=move |e| scrub(ui, &event_target_value(&e))
                />
                <span id="t-value">{move || format!("{:.3}", ui.live_t.get())}</span>
            </label>
            // T sets a path's range; a transport always runs over [0, 1].
            <label hidden=move || ui.state.with(|s| s.mode == Mode::Transport)>
                "T "
                <input
                    id="t-range"
                    type="number"
                    min="0.1"
                    max=MAX_T_RANGE.to_string()
                    step="0.5"
                    prop:value=move || t_range().to_string()
                    on:input=move |e| set_t_range_quietly(ui, &event_target_value(&e))
                    on:change=move |e| set_t_range(ui, &event_target_value(&e))
                />
            </label>
            <label>
                "Speed "
                <select
                    id="speed"
                    on:change=move |e| {
                        if let Ok(speed) = event_target_value(&e).parse::<f32>() {
                            ui.speed.set(speed);
                        }
                    }
                >
                    {SPEEDS
                        .into_iter()
                        .map(|(value, label)| {
                            view! {
                                <option value=value selected=value == "1">
                                    {label}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
            </label>
            <span class="frame" title="Compute time of the last frame: path step and kNN">
                <span id="frame-ms">
                    {move || ui.frame_ms.get().map_or_else(|| "–".to_owned(), |ms| format!("{ms:.2}"))}
                </span>
                " ms/frame"
            </span>
        </div>
    }
}

#[component]
fn NeighbourStrip(ui: Ui) -> impl IntoView {
    let refs: [NodeRef<Canvas>; STRIP_LEN] = std::array::from_fn(|_| NodeRef::new());
    Effect::new(move |_| {
        let indices = ui.nn.get();
        ui.sprites_version.track();
        for (slot, node) in refs.iter().enumerate() {
            if let Some(canvas) = node.get() {
                controller::paint_thumbnail(&canvas, indices.get(slot).copied());
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
                            controller::pick_anchor(ui, i);
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

#[component]
fn ModeButton(ui: Ui, mode: Mode, label: &'static str) -> impl IntoView {
    let active = move || ui.state.with(|s| s.mode == mode);
    view! {
        <button
            class="mode"
            data-mode=mode.name()
            class:active=active
            aria-pressed=move || active().to_string()
            on:click=move |_| {
                if ui.playing.get_untracked() {
                    controller::toggle_play(ui);
                }
                ui.state.update(|s| {
                    s.mode = mode;
                    s.t = s.clamp_t(s.t);
                });
            }
        >
            {label}
        </button>
    }
}

#[component]
fn PriorControls(ui: Ui) -> impl IntoView {
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
fn PriorGrid(ui: Ui) -> impl IntoView {
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
                let same = controller::same_class_as_anchor(ui, index);
                let node: NodeRef<Canvas> = NodeRef::new();
                Effect::new(move |_| {
                    ui.sprites_version.track();
                    if let Some(canvas) = node.get() {
                        controller::paint_thumbnail(&canvas, Some(index));
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
                                controller::pick_anchor(ui, i);
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

/// Transport A → B: the matching error of the encoder's coefficients and the largest of them.
#[component]
fn TransportPanel(ui: Ui) -> impl IntoView {
    let error_text = move || {
        ui.transport.with(|t| match t.as_ref() {
            None => "—".to_owned(),
            Some(t) => t
                .error
                .map_or_else(|| "A = B".to_owned(), |e| format!("{e:.4}")),
        })
    };
    view! {
        <div class="panel transport" id="transport" hidden=move || ui.state.with(|s| s.mode != Mode::Transport)>
            <h2>
                "Transport A → B "
                <span class="sub">"c = mean of q(c | z_A, z_B); the path is T(t·c) z_A, t = 1 estimates B"</span>
            </h2>
            <p class="transport-facts">
                {move || {
                    ui.transport
                        .with(|t| {
                            t.as_ref()
                                .map_or_else(
                                    || "Shift-click a point (or type an index) to pick image B.".to_owned(),
                                    |t| format!("A = image {} · B = image {}", t.a, t.b),
                                )
                        })
                }}
            </p>
            <p>
                "Matching error ‖T(c)z_A − z_B‖² / ‖z_A − z_B‖² = "
                <strong
                    id="transport-error"
                    data-value=move || ui.transport.with(|t| t.as_ref().and_then(|t| t.error).map(|e| e.to_string()))
                >
                    {error_text}
                </strong>
                <span class="sub">" (0: T(c) z_A lands on B; 1: no closer than A)"</span>
            </p>
            <p class="sub">
                {move || {
                    ui.transport
                        .with(|t| {
                            t.as_ref()
                                .map(|t| {
                                    let top: Vec<String> = t
                                        .top
                                        .iter()
                                        .map(|(m, c)| format!("Ψ{m}: {c:+.3}"))
                                        .collect();
                                    format!("‖c‖ = {:.3} · largest: {}", t.norm, top.join(", "))
                                })
                        })
                }}
            </p>
            <div class="row">
                <button
                    id="show-b"
                    on:click=move |_| {
                        if ui.playing.get_untracked() {
                            controller::toggle_play(ui);
                        }
                        ui.state.update(|s| s.t = s.clamp_t(1.0));
                    }
                >
                    "Go to t = 1 (the estimate of B)"
                </button>
                <button
                    id="show-a"
                    on:click=move |_| {
                        if ui.playing.get_untracked() {
                            controller::toggle_play(ui);
                        }
                        ui.state.update(|s| s.t = 0.0);
                    }
                >
                    "Back to t = 0 (A)"
                </button>
            </div>
        </div>
    }
}

#[component]
fn ShareBar(ui: Ui) -> impl IntoView {
    view! {
        <div class="panel share">
            <button id="copy-link" on:click=move |_| copy_link(ui)>"Copy link"</button>
            <input
                id="share-url"
                readonly
                placeholder="The link to this view appears here"
                prop:value=move || ui.share_url.get()
            />
        </div>
    }
}

#[component]
fn InspectPanel(ui: Ui) -> impl IntoView {
    let refs: [NodeRef<Canvas>; SWEEP_STEPS] = std::array::from_fn(|_| NodeRef::new());
    Effect::new(move |_| {
        let tiles = ui
            .sweep
            .with(|s| s.as_ref().map(|s| s.tiles.clone()).unwrap_or_default());
        ui.sprites_version.track();
        for (slot, node) in refs.iter().enumerate() {
            if let Some(canvas) = node.get() {
                controller::paint_thumbnail(&canvas, tiles.get(slot).map(|&(_, i)| i));
            }
        }
    });
    let tile = move |slot: usize| {
        ui.sweep
            .with(|s| s.as_ref().and_then(|s| s.tiles.get(slot).copied()))
    };
    let tiles = refs
        .into_iter()
        .enumerate()
        .map(|(slot, node)| {
            view! {
                <figure class="sweep-tile" hidden=move || tile(slot).is_none()>
                    <canvas
                        class="nn-tile"
                        width=THUMB_PX
                        height=THUMB_PX
                        node_ref=node
                        data-index=move || tile(slot).map(|(_, i)| i.to_string())
                    ></canvas>
                    <figcaption>{move || tile(slot).map(|(t, _)| format!("t = {t:+.2}"))}</figcaption>
                </figure>
            }
        })
        .collect_view();
    view! {
        <div class="panel inspect" id="inspect" hidden=move || ui.state.with(|s| s.mode != Mode::Inspect)>
            <h2>
                {move || {
                    ui.sweep
                        .with(|s| s.as_ref().map(|s| format!("Sweep of Ψ{} through the anchor ", s.operator)))
                }}
                <span class="sub">"nearest image of T(t·e_m) z0"</span>
            </h2>
            <label class="inspect-pick">
                "Inspect operator "
                <select
                    id="inspect-op"
                    on:change=move |e| {
                        if let Ok(m) = event_target_value(&e).parse::<u32>() {
                            ui.state.update(|s| s.inspect = Some(m));
                        }
                    }
                >
                    {move || {
                        let m = ui.summary.with(|s| s.as_ref().map_or(0, |s| s.num_operators));
                        let current = ui.spectrum.with(|s| s.as_ref().map(|s| s.operator));
                        (0..m)
                            .map(|op| {
                                view! {
                                    <option value=op.to_string() selected=current == Some(op)>
                                        {format!("Ψ{op}")}
                                    </option>
                                }
                            })
                            .collect_view()
                    }}
                </select>
                <span class="sub">" (or click a heatmap column or a bar; by default the first selected operator, else the largest)"</span>
            </label>
            <div id="sweep" class="sweep">{tiles}</div>
            <div class="charts">
                <figure class="chart-box">
                    <figcaption>
                        {move || {
                            ui.spectrum
                                .with(|s| {
                                    s.as_ref()
                                        .map(|s| {
                                            format!(
                                                "Eigenvalues of Ψ{}'s {} blocks",
                                                s.operator,
                                                s.blocks.len()
                                            )
                                        })
                                })
                        }}
                        <span class="sub">" one colour per block"</span>
                    </figcaption>
                    <EigenPlot ui=ui />
                </figure>
                <figure class="chart-box">
                    <figcaption>
                        "Coordinates of T(t·e_m) z0 " <span class="sub">"every coordinate, t ∈ [−T, T]"</span>
                    </figcaption>
                    <SweepPlot ui=ui />
                </figure>
                <figure class="chart-box">
                    <figcaption>
                        "Norm and usage " <span class="sub">"blue: ‖Ψ_m‖_F (left axis) · yellow: usage (right axis)"</span>
                    </figcaption>
                    <OperatorBars ui=ui />
                </figure>
            </div>
            <h2>"Class × operator " <span class="sub">"mean |c_m| under the prior"</span></h2>
            <HeatmapChart ui=ui />
        </div>
    }
}
