//! The top-level component: reads the link into the state, starts the controller and provides it
//! as context, keeps the address bar and the view following the state (except while the first
//! view is untouched: opening the page adds nothing to its address), listens to the window
//! (space, drops, resizes), ticks the clock, and lays the panels out.

use leptos::ev;
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::spawn_local;

use super::controller::Controller;
use super::page;
use super::panels::{
    AnchorPanel, CurvesPanel, Header, InspectPanel, Legend, NeighbourStrip, OperatorList,
    PathControls, PriorControls, PriorGrid, ResultsPanel, Scatter, ShareBar, TransportPanel,
};
use super::signals::Ui;
use crate::state::{ViewState, shown_warnings};

/// The whole app.
#[component]
pub fn App() -> impl IntoView {
    let query = page::query();
    let first_view = ViewState::opens_first_view(&query);
    let (state, warnings) = ViewState::from_query(&query);
    let ui = Ui::new(state, warnings.iter().map(ToString::to_string).collect());
    let ctl = Controller::provide(ui);

    // The address bar and the path follow the state. The untouched first view leaves the
    // address as it was opened: it says nothing a link did not, and the first change the
    // person makes writes the whole view.
    Effect::new(move |_| {
        let query = ui.state.with(|state| {
            let untouched = ui
                .first_view
                .with_untracked(|first| first.as_ref().is_some_and(|f| f.state == *state));
            (!untouched).then(|| state.to_query())
        });
        ui.speed.track();
        if let Some(query) = query {
            if ui.first_view.with_untracked(Option::is_some) {
                ui.first_view.set(None);
            }
            ctl.update_url(query);
        }
        spawn_local(ctl.refresh());
    });
    spawn_local(ctl.start(first_view));
    install_window_listeners(ctl);
    page::every_second(move || ui.now_ms.set(js_sys::Date::now()));

    view! {
        <Header ui=ui />
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
        <p id="first-view-hint" class="first-view-hint" hidden=move || ui.first_view.with(Option::is_none)>
            {move || ui.first_view.with(|f| f.as_ref().map(|f| f.hint.clone()))}
        </p>
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
                <CurvesPanel ui=ui />
                <ResultsPanel ui=ui />
            </section>
        </main>
        <footer class="hint">
            "Drop a .mclr bundle anywhere to open it, or a metrics.jsonl to add its training curves · space plays and pauses · wheel zooms, drag pans, click picks the anchor"
        </footer>
    }
}

fn install_window_listeners(ctl: Controller) {
    // Handles live as long as the page.
    let _ = window_event_listener(ev::keydown, move |e| {
        if e.key() != " " || typing_target(e.target()) {
            return;
        }
        e.prevent_default();
        ctl.toggle_play();
    });
    let _ = window_event_listener(ev::dragover, |e| e.prevent_default());
    let _ = window_event_listener(ev::drop, move |e| {
        e.prevent_default();
        if let Some(files) = e.data_transfer().and_then(|d| d.files()) {
            ctl.open_files(&files);
        }
    });
    let _ = window_event_listener(ev::resize, move |_| ctl.resized());
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
