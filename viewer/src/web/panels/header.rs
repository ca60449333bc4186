//! The header: the bundle's name and description, the mode buttons, the file picker and the
//! engine badge.

use leptos::prelude::*;
use wasm_bindgen_futures::spawn_local;
use web_sys::HtmlInputElement;

use crate::state::Mode;
use crate::web::controller::{Controller, Source};
use crate::web::signals::Ui;

/// The header: bundle name and description, mode buttons, file picker, engine badge.
#[component]
pub fn Header(ui: Ui) -> impl IntoView {
    let ctl = Controller::expect();
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
                            spawn_local(ctl.load(Source::File(file)));
                        }
                        input.set_value("");
                    }
                />
            </label>
            <span
                id="badge"
                data-backend=move || ui.backend.with(|b| b.as_ref().map(|b| b.key()))
                data-why=move || ui.backend.with(|b| b.as_ref().map(|b| b.why()))
                title=move || ui.backend.with(|b| b.as_ref().map(|b| b.detail()))
            >
                {move || {
                    ui.backend
                        .with(|b| b.as_ref().map_or_else(|| "Starting…".to_owned(), |b| b.label()))
                }}
            </span>
        </header>
    }
}

#[component]
fn ModeButton(ui: Ui, mode: Mode, label: &'static str) -> impl IntoView {
    let ctl = Controller::expect();
    let active = move || ui.state.with(|s| s.mode == mode);
    view! {
        <button
            class="mode"
            data-mode=mode.name()
            class:active=active
            aria-pressed=move || active().to_string()
            on:click=move |_| {
                if ui.playing.get_untracked() {
                    ctl.toggle_play();
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
