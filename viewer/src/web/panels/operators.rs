//! The operator list: every operator by norm with its usage bar; a click selects it, and a
//! selected operator gets a coefficient slider.

use leptos::prelude::*;

use crate::state::{COEF_LIMIT, MAX_SELECTED_OPERATORS};
use crate::web::signals::{OperatorRow, Ui};

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
pub fn OperatorList(ui: Ui) -> impl IntoView {
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
            data-norm=row.norm.to_string()
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
