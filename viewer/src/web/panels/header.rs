//! The header: the bundle's name and description, the live status of a followed run, the mode
//! buttons, the file picker and the engine badge.

use leptos::prelude::*;
use web_sys::HtmlInputElement;

use crate::follow::LiveStatus;
use crate::state::Mode;
use crate::web::controller::Controller;
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
                <LiveStatusLine ui=ui />
            </div>
            <nav class="modes" aria-label="Mode">
                <ModeButton ui=ui mode=Mode::Path label="Path" />
                <ModeButton ui=ui mode=Mode::Prior label="Prior" />
                <ModeButton ui=ui mode=Mode::Transport label="Transport" />
                <ModeButton ui=ui mode=Mode::Inspect label="Inspect" />
            </nav>
            <label
                class="open-file"
                title="Open a .mclr bundle, or metrics.jsonl training logs to compare (or drop them on the page)"
            >
                "Open…"
                <input
                    id="file-input"
                    type="file"
                    accept=".mclr,.jsonl"
                    multiple
                    on:change=move |e| {
                        let input: HtmlInputElement = event_target(&e);
                        if let Some(files) = input.files() {
                            ctl.open_files(&files);
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

/// `#live-status`: where the model in use came from (epoch, step, age) for a followed run or a
/// live snapshot, with the follow loop's last problem; the age is refreshed every second.
#[component]
fn LiveStatusLine(ui: Ui) -> impl IntoView {
    let status = move || ui.live.with(|l| l.as_ref().map(|l| l.status));
    let attribute = move |pick: fn(&LiveStatus) -> String| status().map(|s| pick(&s));
    view! {
        <span
            id="live-status"
            class="live"
            class:following=move || ui.live.with(|l| l.as_ref().is_some_and(|l| l.following))
            hidden=move || ui.live.with(Option::is_none)
            data-epoch=move || attribute(|s| s.epoch.to_string())
            data-step=move || attribute(|s| s.step.to_string())
            data-saved-ms=move || attribute(|s| s.saved_unix_ms.to_string())
        >
            <span class="live-text">
                {move || {
                    let now = ui.now_ms.get();
                    ui.live.with(|l| l.as_ref().map(|l| l.status.text(l.following, now)))
                }}
            </span>
            <span
                id="live-warning"
                class="live-warning"
                role="status"
                hidden=move || ui.live.with(|l| l.as_ref().is_none_or(|l| l.warning.is_none()))
            >
                {move || ui.live.with(|l| l.as_ref().and_then(|l| l.warning.clone()))}
            </span>
        </span>
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
