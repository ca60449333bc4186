//! The legend under the scatter: each class's colour, name and gallery count.

use leptos::prelude::*;

use crate::web::signals::Ui;

#[component]
pub fn Legend(ui: Ui) -> impl IntoView {
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
