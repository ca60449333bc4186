//! Getting bundle bytes into memory: a streamed download that reports progress, or a file the
//! person dropped or picked. The address is only ever passed to `fetch`, never put into the page.

use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{ReadableStreamDefaultReader, Response};

use super::page::js_error_text;
use crate::error::{Result, ViewerError, mib};
use crate::session::MAX_BUNDLE_BYTES;

/// Largest download accepted: the payload limit plus the header.
const MAX_DOWNLOAD: u64 = MAX_BUNDLE_BYTES + mclr_shared::bundle::HEADER_LEN as u64;

fn too_large(size: u64) -> ViewerError {
    ViewerError::TooLarge {
        size_mib: mib(size),
        limit_mib: mib(MAX_BUNDLE_BYTES),
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

/// Downloads `url`, calling `progress(bytes so far, announced total)` after every chunk.
pub async fn fetch_bytes(url: &str, mut progress: impl FnMut(u64, Option<u64>)) -> Result<Vec<u8>> {
    let fail = |reason: String| ViewerError::Fetch {
        url: url.to_owned(),
        reason,
    };
    let js_fail = |value: JsValue| fail(js_error_text(&value));
    let window = web_sys::window().ok_or_else(|| fail("there is no window".to_owned()))?;
    let response: Response = JsFuture::from(window.fetch_with_str(url))
        .await
        .map_err(js_fail)?
        .dyn_into()
        .map_err(js_fail)?;
    if !response.ok() {
        return Err(fail(format!(
            "the server answered {} {}",
            response.status(),
            response.status_text()
        )));
    }
    let total = response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|text| text.trim().parse::<u64>().ok());
    if let Some(total) = total.filter(|&t| t > MAX_DOWNLOAD) {
        return Err(too_large(total));
    }
    progress(0, total);

    let Some(body) = response.body() else {
        return Ok(Vec::new());
    };
    let reader: ReadableStreamDefaultReader = body
        .get_reader()
        .dyn_into()
        .map_err(|object: js_sys::Object| js_fail(object.into()))?;
    let capacity = total.and_then(|t| usize::try_from(t).ok()).unwrap_or(0);
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
        if u64::try_from(end).unwrap_or(u64::MAX) > MAX_DOWNLOAD {
            let _ = reader.cancel();
            return Err(too_large(u64::try_from(end).unwrap_or(u64::MAX)));
        }
        bytes.resize(end, 0);
        if let Some(slot) = bytes.get_mut(start..end) {
            value.copy_to(slot);
        }
        progress(u64::try_from(end).unwrap_or(u64::MAX), total);
    }
    Ok(bytes)
}

/// Reads a dropped or picked file.
pub async fn read_file(file: &web_sys::File) -> Result<Vec<u8>> {
    let name = file.name();
    let size = file.size();
    if size > mib_to_bytes() {
        return Err(ViewerError::TooLarge {
            size_mib: size / f64::from(1u32 << 20),
            limit_mib: mib(MAX_BUNDLE_BYTES),
        });
    }
    let buffer = JsFuture::from(file.array_buffer())
        .await
        .map_err(|e| ViewerError::File {
            name: name.clone(),
            reason: js_error_text(&e),
        })?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// [`MAX_DOWNLOAD`] as the `f64` that `File.size` is.
fn mib_to_bytes() -> f64 {
    // 512 MiB is exact in f64.
    #[allow(clippy::cast_precision_loss)]
    let limit = MAX_DOWNLOAD as f64;
    limit
}
