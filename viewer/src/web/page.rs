//! The page around the app: its address (read once, then kept in sync with the view), the
//! `data-ready` flag, the clock and the clipboard.

use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// The current query string, with its `?` (empty when there is none).
pub fn query() -> String {
    web_sys::window()
        .and_then(|w| w.location().search().ok())
        .unwrap_or_default()
}

/// The page's address without query or fragment.
fn base_url() -> String {
    web_sys::window()
        .map(|w| w.location())
        .and_then(|l| Some(format!("{}{}", l.origin().ok()?, l.pathname().ok()?)))
        .unwrap_or_default()
}

/// The share link for `query` (without `?`).
pub fn share_url(query: &str) -> String {
    if query.is_empty() {
        base_url()
    } else {
        format!("{}?{query}", base_url())
    }
}

/// Replaces the address bar's query with `query` without reloading or adding history.
pub fn replace_query(query: &str) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let Ok(history) = window.history() else {
        return;
    };
    let target = if query.is_empty() {
        window.location().pathname().unwrap_or_default()
    } else {
        format!("?{query}")
    };
    let current = window.location().search().unwrap_or_default();
    if current.trim_start_matches('?') != query {
        // A refusal (e.g. too many calls) only leaves the address stale.
        let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(&target));
    }
}

/// Sets `body[data-ready]`.
pub fn set_ready(ready: bool) {
    if let Some(body) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.body())
    {
        let _ = body.set_attribute("data-ready", if ready { "true" } else { "false" });
    }
}

/// Milliseconds from the page's time origin (`performance.now()`).
pub fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

/// The message of a JavaScript error value, for the error panel.
pub fn js_error_text(value: &JsValue) -> String {
    if let Some(error) = value.dyn_ref::<js_sys::Error>() {
        String::from(error.message())
    } else if let Some(text) = value.as_string() {
        text
    } else {
        "an unknown browser error".to_owned()
    }
}

/// Writes `text` to the clipboard; `false` when the browser refuses (no permission, no focus).
pub async fn copy_to_clipboard(text: &str) -> bool {
    let Some(window) = web_sys::window() else {
        return false;
    };
    let clipboard = window.navigator().clipboard();
    JsFuture::from(clipboard.write_text(text)).await.is_ok()
}
