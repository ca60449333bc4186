//! Transport mode: image A → image B along the encoder's coefficients, the matching error and
//! the largest coefficients, and buttons to show A or the estimate of B.

use leptos::prelude::*;

use crate::state::Mode;
use crate::web::controller::Controller;
use crate::web::signals::Ui;

/// Transport A → B: the matching error of the encoder's coefficients and the largest of them.
#[component]
pub fn TransportPanel(ui: Ui) -> impl IntoView {
    let ctl = Controller::expect();
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
                            ctl.toggle_play();
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
                            ctl.toggle_play();
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
