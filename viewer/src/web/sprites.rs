//! The thumbnail sprite sheet, decoded once by the browser into an `ImageBitmap`; tiles are
//! drawn onto small canvases with `drawImage` source rectangles. The sheet's bytes come from the
//! bundle or, for a bundle that names a sheet file, from beside it (`controller::load`).

use mclr_shared::bundle::{ImageFormat, Thumbnails};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, ImageBitmap};

use super::page::js_error_text;
use crate::error::{Result, ViewerError};

/// The decoded sheet and its layout.
#[derive(Debug, Clone)]
pub struct Sprites {
    bitmap: ImageBitmap,
    tile: u32,
    columns: u32,
    count: u32,
}

fn browser_error(action: &str, value: &wasm_bindgen::JsValue) -> ViewerError {
    ViewerError::Browser {
        action: action.to_owned(),
        reason: js_error_text(value),
    }
}

impl Sprites {
    /// Decodes `sheet` (PNG or JPEG: the bundle's embedded sheet, or the file beside it after
    /// [`mclr_shared::bundle::check_sheet`]) with the browser's image decoder, laid out as
    /// `thumbnails` says.
    pub async fn decode(thumbnails: &Thumbnails, sheet: &[u8]) -> Result<Self> {
        let action = "decode the thumbnail sheet";
        let window = web_sys::window().ok_or_else(|| ViewerError::Browser {
            action: action.to_owned(),
            reason: "there is no window".to_owned(),
        })?;
        let bytes = js_sys::Uint8Array::from(sheet);
        let parts = js_sys::Array::of1(&bytes);
        let options = web_sys::BlobPropertyBag::new();
        options.set_type(match thumbnails.format {
            ImageFormat::Png => "image/png",
            ImageFormat::Jpeg => "image/jpeg",
        });
        let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &options)
            .map_err(|e| browser_error(action, &e))?;
        let promise = window
            .create_image_bitmap_with_blob(&blob)
            .map_err(|e| browser_error(action, &e))?;
        let bitmap = JsFuture::from(promise)
            .await
            .map_err(|e| browser_error(action, &e))?
            .dyn_into::<ImageBitmap>()
            .map_err(|e| browser_error(action, &e))?;
        Ok(Self {
            bitmap,
            tile: thumbnails.tile_px,
            columns: thumbnails.columns.max(1),
            count: thumbnails.count,
        })
    }

    /// Draws tile `index` into `ctx` at (`x`, `y`), `size` pixels square. Out-of-range indices
    /// draw nothing.
    pub fn draw(&self, ctx: &CanvasRenderingContext2d, index: usize, x: f64, y: f64, size: f64) {
        let Ok(index) = u32::try_from(index) else {
            return;
        };
        if index >= self.count {
            return;
        }
        let tile = f64::from(self.tile);
        let sx = f64::from(index % self.columns) * tile;
        let sy = f64::from(index / self.columns) * tile;
        ctx.set_image_smoothing_enabled(false);
        let _ = ctx.draw_image_with_image_bitmap_and_sw_and_sh_and_dx_and_dy_and_dw_and_dh(
            &self.bitmap,
            sx,
            sy,
            tile,
            tile,
            x,
            y,
            size,
            size,
        );
    }

    /// Fills a whole thumbnail canvas with tile `index` (or clears it for `None`).
    pub fn paint(&self, canvas: &HtmlCanvasElement, index: Option<usize>) {
        let Some(ctx) = context_2d(canvas) else {
            return;
        };
        let (w, h) = (f64::from(canvas.width()), f64::from(canvas.height()));
        ctx.clear_rect(0.0, 0.0, w, h);
        if let Some(index) = index {
            self.draw(&ctx, index, 0.0, 0.0, w.min(h));
        }
    }
}

/// The canvas's 2-D context, if the browser gives one.
pub fn context_2d(canvas: &HtmlCanvasElement) -> Option<CanvasRenderingContext2d> {
    canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|ctx| ctx.dyn_into::<CanvasRenderingContext2d>().ok())
}
