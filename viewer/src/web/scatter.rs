//! Drawing the PCA scatter: all gallery points as one path per class, cached in an offscreen
//! layer that is redrawn only when the view moves, and on top of it each frame the anchor, the
//! path's trail and moving point, the nearest neighbours and the hovered point.

use std::f64::consts::TAU;

use wasm_bindgen::JsCast;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

use super::sprites::context_2d;
use crate::session::Session;
use crate::viewport::{Viewport, class_colour};

/// Half-size of a gallery point, CSS pixels.
const POINT_RADIUS: f64 = 1.6;

/// What is drawn over the points.
pub struct Overlay<'a> {
    /// Gallery index of the anchor.
    pub anchor: Option<usize>,
    /// PCA positions of the path so far; the last is the moving point.
    pub trail: &'a [[f32; 2]],
    /// Gallery indices of the moving point's nearest neighbours.
    pub neighbours: &'a [usize],
    /// Gallery index under the cursor.
    pub hover: Option<usize>,
    /// PCA positions of prior samples (prior mode).
    pub cloud: &'a [[f32; 2]],
    /// Gallery index of image B (transport mode).
    pub target: Option<usize>,
}

/// The offscreen layer holding the rendered points.
pub struct PointLayer {
    canvas: HtmlCanvasElement,
    dirty: bool,
}

impl PointLayer {
    /// A new, empty layer; `None` when the browser cannot make a canvas.
    pub fn new() -> Option<Self> {
        let canvas = web_sys::window()?
            .document()?
            .create_element("canvas")
            .ok()?
            .dyn_into::<HtmlCanvasElement>()
            .ok()?;
        Some(Self {
            canvas,
            dirty: true,
        })
    }

    /// Marks the layer for redrawing (the view or the bundle changed).
    pub fn invalidate(&mut self) {
        self.dirty = true;
    }
}

/// Sizes the canvas to its laid-out size (times the device pixel ratio), keeping the viewport's
/// size in step; returns the ratio.
fn fit_canvas(canvas: &HtmlCanvasElement, viewport: &mut Viewport, layer: &mut PointLayer) -> f64 {
    let ratio = web_sys::window()
        .map_or(1.0, |w| w.device_pixel_ratio())
        .max(1.0);
    let (w, h) = (canvas.client_width().max(1), canvas.client_height().max(1));
    let (pw, ph) = (px(f64::from(w) * ratio), px(f64::from(h) * ratio));
    if canvas.width() != pw || canvas.height() != ph {
        canvas.set_width(pw);
        canvas.set_height(ph);
        layer.dirty = true;
    }
    #[allow(clippy::cast_precision_loss)]
    let size = [w as f32, h as f32];
    if viewport.size() != size {
        viewport.resize(size);
        layer.dirty = true;
    }
    ratio
}

/// Device pixels as a canvas dimension.
fn px(value: f64) -> u32 {
    // Canvas sizes are small positive numbers; the cast saturates.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let value = value.round().max(1.0) as u32;
    value
}

/// Draws the whole scatter and updates its `data-points` / `data-trail` attributes.
pub fn render(
    canvas: &HtmlCanvasElement,
    session: &Session,
    by_class: &[Vec<usize>],
    viewport: &mut Viewport,
    layer: &mut PointLayer,
    overlay: &Overlay<'_>,
) {
    let ratio = fit_canvas(canvas, viewport, layer);
    if layer.dirty {
        draw_points(layer, canvas, session, by_class, viewport, ratio);
        layer.dirty = false;
    }
    let Some(ctx) = context_2d(canvas) else {
        return;
    };
    let _ = ctx.set_transform(1.0, 0.0, 0.0, 1.0, 0.0, 0.0);
    ctx.clear_rect(
        0.0,
        0.0,
        f64::from(canvas.width()),
        f64::from(canvas.height()),
    );
    let _ = ctx.draw_image_with_html_canvas_element(&layer.canvas, 0.0, 0.0);
    let _ = ctx.set_transform(ratio, 0.0, 0.0, ratio, 0.0, 0.0);
    draw_overlay(&ctx, session, viewport, overlay);
    let _ = canvas.set_attribute("data-points", &session.points.len().to_string());
    let _ = canvas.set_attribute("data-trail", &overlay.trail.len().to_string());
}

fn draw_points(
    layer: &PointLayer,
    canvas: &HtmlCanvasElement,
    session: &Session,
    by_class: &[Vec<usize>],
    viewport: &Viewport,
    ratio: f64,
) {
    let target = &layer.canvas;
    if target.width() != canvas.width() || target.height() != canvas.height() {
        target.set_width(canvas.width());
        target.set_height(canvas.height());
    }
    let Some(ctx) = context_2d(target) else {
        return;
    };
    let _ = ctx.set_transform(1.0, 0.0, 0.0, 1.0, 0.0, 0.0);
    ctx.clear_rect(
        0.0,
        0.0,
        f64::from(target.width()),
        f64::from(target.height()),
    );
    let _ = ctx.set_transform(ratio, 0.0, 0.0, ratio, 0.0, 0.0);
    ctx.set_global_alpha(0.75);
    let size = viewport.size();
    for (class, members) in by_class.iter().enumerate() {
        ctx.set_fill_style_str(&class_colour(class));
        ctx.begin_path();
        for &i in members {
            let Some(&p) = session.points.get(i) else {
                continue;
            };
            let [x, y] = viewport.to_screen(p);
            if x < -2.0 || y < -2.0 || x > size[0] + 2.0 || y > size[1] + 2.0 {
                continue;
            }
            ctx.rect(
                f64::from(x) - POINT_RADIUS,
                f64::from(y) - POINT_RADIUS,
                2.0 * POINT_RADIUS,
                2.0 * POINT_RADIUS,
            );
        }
        ctx.fill();
    }
    ctx.set_global_alpha(1.0);
}

fn ring(ctx: &CanvasRenderingContext2d, at: [f32; 2], radius: f64, colour: &str, width: f64) {
    ctx.begin_path();
    let _ = ctx.arc(f64::from(at[0]), f64::from(at[1]), radius, 0.0, TAU);
    ctx.set_stroke_style_str(colour);
    ctx.set_line_width(width);
    ctx.stroke();
}

fn draw_overlay(
    ctx: &CanvasRenderingContext2d,
    session: &Session,
    viewport: &Viewport,
    overlay: &Overlay<'_>,
) {
    for &i in overlay.neighbours {
        if let Some(&p) = session.points.get(i) {
            ring(ctx, viewport.to_screen(p), 4.0, "#f5f5f5", 1.5);
        }
    }
    if !overlay.cloud.is_empty() {
        ctx.begin_path();
        for &p in overlay.cloud {
            let [x, y] = viewport.to_screen(p);
            ctx.move_to(f64::from(x) + 3.5, f64::from(y));
            let _ = ctx.arc(f64::from(x), f64::from(y), 3.5, 0.0, TAU);
        }
        ctx.set_fill_style_str("rgba(255, 214, 10, 0.9)");
        ctx.fill();
        ctx.set_stroke_style_str("#111111");
        ctx.set_line_width(1.0);
        ctx.stroke();
    }
    if overlay.trail.len() > 1 {
        ctx.begin_path();
        for (j, &p) in overlay.trail.iter().enumerate() {
            let [x, y] = viewport.to_screen(p);
            if j == 0 {
                ctx.move_to(f64::from(x), f64::from(y));
            } else {
                ctx.line_to(f64::from(x), f64::from(y));
            }
        }
        ctx.set_stroke_style_str("rgba(255, 214, 10, 0.85)");
        ctx.set_line_width(2.0);
        ctx.stroke();
    }
    if let Some(&p) = session.points.get(overlay.target.unwrap_or(usize::MAX)) {
        ring(ctx, viewport.to_screen(p), 7.0, "#4cc9f0", 2.5);
        ring(ctx, viewport.to_screen(p), 9.5, "#111111", 1.0);
    }
    if let Some(&p) = session.points.get(overlay.anchor.unwrap_or(usize::MAX)) {
        ring(ctx, viewport.to_screen(p), 7.0, "#ffffff", 2.5);
        ring(ctx, viewport.to_screen(p), 9.5, "#111111", 1.0);
    }
    if let Some(&p) = overlay.trail.last() {
        let [x, y] = viewport.to_screen(p);
        ctx.begin_path();
        let _ = ctx.arc(f64::from(x), f64::from(y), 5.0, 0.0, TAU);
        ctx.set_fill_style_str("#ffd60a");
        ctx.fill();
        ring(ctx, [x, y], 5.0, "#111111", 1.5);
    }
    if let Some(&p) = session.points.get(overlay.hover.unwrap_or(usize::MAX)) {
        ring(ctx, viewport.to_screen(p), 5.0, "#ffffff", 1.5);
    }
}
