//! The path controls: play and pause, the t scrub, the range T, the speed and the frame time.

use leptos::prelude::*;

use crate::state::{MAX_T_RANGE, Mode, ViewState};
use crate::web::controller::Controller;
use crate::web::signals::Ui;

/// Animation speeds offered, as (value, label).
const SPEEDS: [(&str, &str); 5] = [
    ("0.25", "¼×"),
    ("0.5", "½×"),
    ("1", "1×"),
    ("2", "2×"),
    ("4", "4×"),
];

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

#[component]
pub fn PathControls(ui: Ui) -> impl IntoView {
    let ctl = Controller::expect();
    let t_range = move || ui.state.with(|s| s.t_range);
    // The scrub spans the mode's range: [−T, T] for a path, [0, 1] for a transport A → B.
    let t_bounds = move || ui.state.with(ViewState::t_bounds);
    view! {
        <div class="panel controls" hidden=move || ui.state.with(|s| s.mode == Mode::Prior)>
            <button id="play" on:click=move |_| ctl.toggle_play()>
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
