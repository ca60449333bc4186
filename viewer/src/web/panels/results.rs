//! The results panel: the bundle's evaluation figures beside those of the runs it is compared
//! with (see [`crate::results`]); hidden for a bundle without any.

use leptos::prelude::*;

use crate::results::{ResultsTable, format_value};
use crate::web::signals::Ui;

#[component]
pub fn ResultsPanel(ui: Ui) -> impl IntoView {
    let table = move || {
        ui.summary
            .with(|s| s.as_ref().map(|s| s.results.clone()))
            .unwrap_or_default()
    };
    view! {
        <div id="results" class="panel results" hidden=move || table().is_empty()>
            <h3>"Evaluation"</h3>
            <table>
                <thead>
                    <tr>
                        <th></th>
                        {move || {
                            table()
                                .runs
                                .into_iter()
                                .map(|run| view! { <th scope="col">{run}</th> })
                                .collect_view()
                        }}
                    </tr>
                </thead>
                <tbody>
                    {move || {
                        let ResultsTable { rows, .. } = table();
                        rows.into_iter()
                            .map(|row| {
                                view! {
                                    <tr data-key=row.key>
                                        <th scope="row">{row.label}</th>
                                        {row
                                            .values
                                            .into_iter()
                                            .map(|v| view! { <td>{format_value(v)}</td> })
                                            .collect_view()}
                                    </tr>
                                }
                            })
                            .collect_view()
                    }}
                </tbody>
            </table>
        </div>
    }
}
