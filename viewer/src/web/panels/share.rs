//! The share bar: copies the link to the current view (with the live t while playing).

use leptos::prelude::*;
use wasm_bindgen_futures::spawn_local;

use crate::web::page;
use crate::web::signals::Ui;

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
pub fn ShareBar(ui: Ui) -> impl IntoView {
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
