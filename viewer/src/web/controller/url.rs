//! The address bar follows the view state, throttled: browsers throttle frequent
//! `history.replaceState` calls, so a dragged slider writes at most once per [`URL_INTERVAL_MS`].

use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;

use super::Controller;
use crate::web::page;

/// Least time between two rewrites of the address bar, in ms.
const URL_INTERVAL_MS: i32 = 150;

/// What the throttle remembers between calls.
#[derive(Default)]
pub(super) struct UrlThrottle {
    /// The pending `setTimeout`, if any.
    timer: Option<i32>,
    /// The latest query not yet written.
    pending: Option<String>,
    /// When the address bar was last written, ms from the page's time origin.
    written_at: f64,
}

impl Controller {
    /// Keeps the address bar's query equal to `query`: at once when the last write is older than
    /// [`URL_INTERVAL_MS`], otherwise once that interval has passed (with the latest query), so
    /// that dragging a slider does not flood `history.replaceState`.
    pub fn update_url(self, query: String) {
        let Some(window) = web_sys::window() else {
            return;
        };
        let now = page::now_ms();
        let Some((due, timer_pending)) = self.with_core(|core| {
            core.url.pending = Some(query);
            (
                now - core.url.written_at >= f64::from(URL_INTERVAL_MS),
                core.url.timer.is_some(),
            )
        }) else {
            return;
        };
        if timer_pending {
            return;
        }
        if due {
            self.write_pending_url();
            return;
        }
        let callback = Closure::once_into_js(move || {
            self.with_core(|core| core.url.timer = None);
            self.write_pending_url();
        });
        if let Ok(handle) = window.set_timeout_with_callback_and_timeout_and_arguments_0(
            callback.unchecked_ref(),
            URL_INTERVAL_MS,
        ) {
            self.with_core(|core| core.url.timer = Some(handle));
        }
    }

    fn write_pending_url(self) {
        let now = page::now_ms();
        let query = self
            .with_core(|core| {
                core.url.written_at = now;
                core.url.pending.take()
            })
            .flatten();
        if let Some(query) = query {
            page::replace_query(&query);
        }
    }
}
