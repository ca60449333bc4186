//! The page around the app: its address (read once, then kept in sync with the view), the
//! `data-ready` flag, the clocks and timers, the reduced-motion preference and the clipboard.

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

/// Resolves after `ms` milliseconds (a `setTimeout`); at once when the browser refuses one.
pub async fn sleep_ms(ms: u32) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let ms = i32::try_from(ms).unwrap_or(i32::MAX);
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
    });
    let _ = JsFuture::from(promise).await;
}

/// Calls `tick` every second for as long as the page lives.
pub fn every_second(tick: impl FnMut() + 'static) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let callback = wasm_bindgen::closure::Closure::<dyn FnMut()>::new(tick);
    if window
        .set_interval_with_callback_and_timeout_and_arguments_0(
            callback.as_ref().unchecked_ref(),
            1000,
        )
        .is_ok()
    {
        // The interval lasts as long as the page, and so must its callback.
        callback.forget();
    }
}

/// Whether the person asked their system for less motion (`prefers-reduced-motion: reduce`):
/// then nothing starts moving by itself.
pub fn prefers_reduced_motion() -> bool {
    web_sys::window()
        .and_then(|w| {
            w.match_media("(prefers-reduced-motion: reduce)")
                .ok()
                .flatten()
        })
        .is_some_and(|list| list.matches())
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
