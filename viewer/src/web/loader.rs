//! Getting bytes into memory: a streamed download that reports progress, the conditional polls
//! of follow mode and of files stored beside a bundle, or a file the person dropped or picked.
//! Addresses are only ever passed to `fetch`, never put into the page.

use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{ReadableStreamDefaultReader, Request, RequestCache, RequestInit, Response};

use super::page::js_error_text;
use crate::error::{Result, ViewerError, mib};
use crate::follow::Validators;
use crate::session::MAX_BUNDLE_BYTES;

/// Largest download accepted: the payload limit plus the header.
pub const MAX_DOWNLOAD: u64 = MAX_BUNDLE_BYTES + mclr_shared::bundle::HEADER_LEN as u64;

fn too_large(size: u64) -> ViewerError {
    ViewerError::TooLarge {
        size_mib: mib(size),
        limit_mib: mib(MAX_BUNDLE_BYTES),
    }
}

/// A download of something other than a bundle past its `limit`.
fn file_too_large(url: &str, size: u64, limit: u64) -> ViewerError {
    ViewerError::Fetch {
        url: url.to_owned(),
        reason: format!(
            "it is {:.1} MiB, more than the {:.0} MiB the viewer reads",
            mib(size),
            mib(limit)
        ),
    }
}

/// The name to show for a bundle address: its last path segment.
pub fn name_from_url(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.rsplit('/')
        .find(|segment| !segment.is_empty())
        .unwrap_or(path)
        .to_owned()
}

/// What a poll of an address got.
pub enum Polled {
    /// 304: the version in use is current.
    NotModified,
    /// The body began with the version in use (the early check said so); the rest was not read.
    Same(Validators),
    /// A new body and its validators.
    Body(Vec<u8>, Validators),
    /// The server answered this status instead (404 and the like), with its text.
    Status(u16, String),
}

/// Downloads `url`, calling `progress(bytes so far, announced total)` after every chunk; also
/// returns the response's validators (follow mode asks with them next).
pub async fn fetch_bytes(
    url: &str,
    progress: impl FnMut(u64, Option<u64>),
) -> Result<(Vec<u8>, Validators)> {
    let fail = |reason: String| ViewerError::Fetch {
        url: url.to_owned(),
        reason,
    };
    let window = web_sys::window().ok_or_else(|| fail("there is no window".to_owned()))?;
    let response = response(url, JsFuture::from(window.fetch_with_str(url))).await?;
    if !response.ok() {
        return Err(fail(format!(
            "the server answered {} {}",
            response.status(),
            response.status_text()
        )));
    }
    let validators = validators(&response);
    let bytes = read_body(url, &response, MAX_DOWNLOAD, too_large, progress, |_| false).await?;
    Ok((bytes.unwrap_or_default(), validators))
}

/// Asks for `url` past every cache, with `condition` (`If-None-Match` or `If-Modified-Since`)
/// when the version in use has validators, reading at most `limit` bytes. After the first
/// `prefix` bytes of a 200 arrive, `is_current(those bytes)` may say the body is the version in
/// use: then the download stops there and [`Polled::Same`] comes back.
///
/// The request uses cache mode `no-store` with the validators set by hand: with `no-cache` the
/// browser would answer a 304 from its own cache with the cached 200, and the viewer would not
/// know that nothing changed.
pub async fn poll(
    url: &str,
    condition: Option<(&'static str, String)>,
    limit: u64,
    prefix: usize,
    is_current: impl Fn(&[u8]) -> bool,
) -> Result<Polled> {
    let fail = |reason: String| ViewerError::Fetch {
        url: url.to_owned(),
        reason,
    };
    let js_fail = |value: JsValue| fail(js_error_text(&value));
    let window = web_sys::window().ok_or_else(|| fail("there is no window".to_owned()))?;
    let init = RequestInit::new();
    init.set_method("GET");
    init.set_cache(RequestCache::NoStore);
    if let Some((name, value)) = condition {
        let headers = web_sys::Headers::new().map_err(js_fail)?;
        headers.set(name, &value).map_err(js_fail)?;
        init.set_headers(&headers);
    }
    let request = Request::new_with_str_and_init(url, &init).map_err(js_fail)?;
    let response = response(url, JsFuture::from(window.fetch_with_request(&request))).await?;
    if response.status() == 304 {
        return Ok(Polled::NotModified);
    }
    if !response.ok() {
        return Ok(Polled::Status(response.status(), response.status_text()));
    }
    let validators = validators(&response);
    let mut checked = false;
    let body = read_body(
        url,
        &response,
        limit,
        |size| file_too_large(url, size, limit),
        |_, _| {},
        |bytes| {
            if checked || bytes.len() < prefix {
                return false;
            }
            checked = true;
            bytes.get(..prefix).is_some_and(&is_current)
        },
    )
    .await?;
    // A body shorter than the prefix was never checked: compare it whole.
    Ok(match body {
        None => Polled::Same(validators),
        Some(bytes) if !checked && prefix > 0 && is_current(&bytes) => Polled::Same(validators),
        Some(bytes) => Polled::Body(bytes, validators),
    })
}

/// [`poll`], and when a conditional request fails outright, the same request without its
/// condition: a conditional request is not a "simple" one, and a cross-origin server may refuse
/// the preflight it needs. Also says whether the plain request was the one that answered (the
/// caller then stops sending conditions).
pub async fn poll_or_plain(
    url: &str,
    condition: Option<(&'static str, String)>,
    limit: u64,
    prefix: usize,
    is_current: impl Fn(&[u8]) -> bool,
) -> (Result<Polled>, bool) {
    let conditional = condition.is_some();
    let polled = poll(url, condition, limit, prefix, &is_current).await;
    if conditional && polled.is_err() {
        let plain = poll(url, None, limit, prefix, &is_current).await;
        if plain.is_ok() {
            return (plain, true);
        }
    }
    (polled, false)
}

/// Awaits a `fetch` promise as a [`Response`].
async fn response(url: &str, promise: JsFuture) -> Result<Response> {
    let js_fail = |value: JsValue| ViewerError::Fetch {
        url: url.to_owned(),
        reason: js_error_text(&value),
    };
    promise.await.map_err(js_fail)?.dyn_into().map_err(js_fail)
}

/// The `ETag` and `Last-Modified` of a response (readable cross-origin only when the server
/// exposes them).
fn validators(response: &Response) -> Validators {
    let header = |name: &str| response.headers().get(name).ok().flatten();
    Validators::from_headers(
        header("etag").as_deref(),
        header("last-modified").as_deref(),
    )
}

/// Streams a response body of at most `limit` bytes (past it, `too_large(size)` is the error),
/// calling `progress` after every chunk and `stop(bytes so far)`, which ends the download early
/// with `None` when it returns true.
async fn read_body(
    url: &str,
    response: &Response,
    limit: u64,
    too_large: impl Fn(u64) -> ViewerError,
    mut progress: impl FnMut(u64, Option<u64>),
    mut stop: impl FnMut(&[u8]) -> bool,
) -> Result<Option<Vec<u8>>> {
    let js_fail = |value: JsValue| ViewerError::Fetch {
        url: url.to_owned(),
        reason: js_error_text(&value),
    };
    let total = response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|text| text.trim().parse::<u64>().ok());
    if let Some(total) = total.filter(|&t| t > limit) {
        return Err(too_large(total));
    }
    progress(0, total);

    let Some(body) = response.body() else {
        return Ok(Some(Vec::new()));
    };
    let reader: ReadableStreamDefaultReader = body
        .get_reader()
        .dyn_into()
        .map_err(|object: js_sys::Object| js_fail(object.into()))?;
    let capacity = total
        .filter(|&t| t <= limit)
        .and_then(|t| usize::try_from(t).ok())
        .unwrap_or(0);
    let mut bytes: Vec<u8> = Vec::with_capacity(capacity);
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(js_fail)?;
        let done = js_sys::Reflect::get(&chunk, &JsValue::from_str("done"))
            .map_err(js_fail)?
            .as_bool()
            .unwrap_or(true);
        if done {
            break;
        }
        let value: js_sys::Uint8Array = js_sys::Reflect::get(&chunk, &JsValue::from_str("value"))
            .map_err(js_fail)?
            .dyn_into()
            .map_err(js_fail)?;
        let start = bytes.len();
        let len = usize::try_from(value.length()).unwrap_or(usize::MAX);
        let end = start.saturating_add(len);
        if u64::try_from(end).unwrap_or(u64::MAX) > limit {
            let _ = reader.cancel();
            return Err(too_large(u64::try_from(end).unwrap_or(u64::MAX)));
        }
        bytes.resize(end, 0);
        if let Some(slot) = bytes.get_mut(start..end) {
            value.copy_to(slot);
        }
        progress(u64::try_from(end).unwrap_or(u64::MAX), total);
        if stop(&bytes) {
            let _ = reader.cancel();
            return Ok(None);
        }
    }
    Ok(Some(bytes))
}

/// Reads a dropped or picked file of at most `limit` bytes; a larger one is refused with the
/// error `too_large(its size in MiB)` before anything is read.
pub async fn read_file(
    file: &web_sys::File,
    limit: u64,
    too_large: impl Fn(f64) -> ViewerError,
) -> Result<Vec<u8>> {
    let name = file.name();
    let size = file.size();
    // Limits are far below 2^53: exact in f64.
    #[allow(clippy::cast_precision_loss)]
    let limit_f64 = limit as f64;
    if size > limit_f64 {
        return Err(too_large(size / f64::from(1u32 << 20)));
    }
    let buffer = JsFuture::from(file.array_buffer())
        .await
        .map_err(|e| ViewerError::File {
            name: name.clone(),
            reason: js_error_text(&e),
        })?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}
