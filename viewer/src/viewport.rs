//! The scatter's window onto PCA space: fitting the points to the canvas, zooming about the
//! cursor, panning, and finding the point under the cursor. Pure arithmetic, in CSS pixels.

/// Zoom limits relative to the fitted view.
const ZOOM_RANGE: (f32, f32) = (0.25, 400.0);
/// Fraction of the canvas the fitted points fill.
const FIT_FILL: f32 = 0.92;

/// Maps PCA coordinates (y up) to canvas pixels (y down) and back.
#[derive(Debug, Clone, PartialEq)]
pub struct Viewport {
    size: [f32; 2],
    centre: [f32; 2],
    extent: [f32; 2],
    zoom: f32,
    pan: [f32; 2],
}

impl Viewport {
    /// A view of `size` pixels that shows all `points`, centred.
    pub fn fit(points: &[[f32; 2]], size: [f32; 2]) -> Self {
        let mut lo = [f32::INFINITY; 2];
        let mut hi = [f32::NEG_INFINITY; 2];
        for p in points
            .iter()
            .filter(|p| p[0].is_finite() && p[1].is_finite())
        {
            for axis in 0..2 {
                lo[axis] = lo[axis].min(p[axis]);
                hi[axis] = hi[axis].max(p[axis]);
            }
        }
        let (centre, extent) = if lo[0] <= hi[0] && lo[1] <= hi[1] {
            (
                [(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0],
                [(hi[0] - lo[0]).max(1e-6), (hi[1] - lo[1]).max(1e-6)],
            )
        } else {
            ([0.0, 0.0], [1.0, 1.0])
        };
        Self {
            size,
            centre,
            extent,
            zoom: 1.0,
            pan: [0.0, 0.0],
        }
    }

    /// Canvas size in pixels.
    pub fn size(&self) -> [f32; 2] {
        self.size
    }

    /// Keeps the view (zoom, pan) on a canvas of a new size.
    pub fn resize(&mut self, size: [f32; 2]) {
        self.size = size;
    }

    /// Pixels per PCA unit.
    fn scale(&self) -> f32 {
        let fit = (self.size[0] / self.extent[0]).min(self.size[1] / self.extent[1]) * FIT_FILL;
        fit.max(1e-6) * self.zoom
    }

    /// Canvas position of a PCA point.
    pub fn to_screen(&self, p: [f32; 2]) -> [f32; 2] {
        let s = self.scale();
        [
            self.size[0] / 2.0 + self.pan[0] + (p[0] - self.centre[0]) * s,
            self.size[1] / 2.0 + self.pan[1] - (p[1] - self.centre[1]) * s,
        ]
    }

    /// PCA point at a canvas position.
    pub fn to_data(&self, screen: [f32; 2]) -> [f32; 2] {
        let s = self.scale();
        [
            self.centre[0] + (screen[0] - self.size[0] / 2.0 - self.pan[0]) / s,
            self.centre[1] - (screen[1] - self.size[1] / 2.0 - self.pan[1]) / s,
        ]
    }

    /// Zooms by `factor` keeping the PCA point under `screen` in place.
    pub fn zoom_at(&mut self, screen: [f32; 2], factor: f32) {
        if !factor.is_finite() || factor <= 0.0 {
            return;
        }
        let anchor = self.to_data(screen);
        self.zoom = (self.zoom * factor).clamp(ZOOM_RANGE.0, ZOOM_RANGE.1);
        let moved = self.to_screen(anchor);
        self.pan[0] += screen[0] - moved[0];
        self.pan[1] += screen[1] - moved[1];
    }

    /// Moves the view by a drag of `delta` pixels.
    pub fn pan_by(&mut self, delta: [f32; 2]) {
        self.pan[0] += delta[0];
        self.pan[1] += delta[1];
    }

    /// The point nearest to `screen` within `radius` pixels, if any.
    pub fn hit(&self, points: &[[f32; 2]], screen: [f32; 2], radius: f32) -> Option<usize> {
        let mut best: Option<(usize, f32)> = None;
        for (i, &p) in points.iter().enumerate() {
            let q = self.to_screen(p);
            let d2 = (q[0] - screen[0]).powi(2) + (q[1] - screen[1]).powi(2);
            if d2 <= radius * radius && best.is_none_or(|(_, b)| d2 < b) {
                best = Some((i, d2));
            }
        }
        best.map(|(i, _)| i)
    }
}

/// Colour of class `c` as `#rrggbb`: matplotlib's tab10 for the first ten (the synthetic bundles'
/// thumbnails use the same), then evenly spread hues.
pub fn class_colour(c: usize) -> String {
    const TAB10: [&str; 10] = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
        "#bcbd22", "#17becf",
    ];
    TAB10.get(c).map_or_else(
        || {
            // Golden-angle hue steps keep neighbouring classes apart.
            let hue = (c.wrapping_mul(137)) % 360;
            format!("hsl({hue} 65% 50%)")
        },
        |&hex| hex.to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: [f32; 2], b: [f32; 2]) -> bool {
        (a[0] - b[0]).abs() < 1e-3 && (a[1] - b[1]).abs() < 1e-3
    }

    #[test]
    fn fitted_points_land_inside_the_canvas_with_y_up() {
        let points = [[-1.0, -2.0], [3.0, 2.0], [1.0, 0.0]];
        let view = Viewport::fit(&points, [400.0, 300.0]);
        for p in points {
            let s = view.to_screen(p);
            assert!(
                (0.0..=400.0).contains(&s[0]) && (0.0..=300.0).contains(&s[1]),
                "{s:?}"
            );
        }
        assert!(close(view.to_screen([1.0, 0.0]), [200.0, 150.0]));
        assert!(view.to_screen([1.0, 2.0])[1] < view.to_screen([1.0, -2.0])[1]);
    }

    #[test]
    fn zooming_keeps_the_point_under_the_cursor() {
        let mut view = Viewport::fit(&[[0.0, 0.0], [10.0, 5.0]], [500.0, 500.0]);
        let cursor = [123.0, 321.0];
        let before = view.to_data(cursor);
        view.zoom_at(cursor, 3.0);
        assert!(close(view.to_data(cursor), before));
        assert!(close(view.to_screen(before), cursor));
    }

    #[test]
    fn screen_and_data_are_inverse_after_panning() {
        let mut view = Viewport::fit(&[[0.0, 0.0], [1.0, 1.0]], [200.0, 100.0]);
        view.pan_by([17.0, -9.0]);
        view.zoom_at([50.0, 50.0], 0.5);
        let p = [0.3, 0.7];
        assert!(close(view.to_data(view.to_screen(p)), p));
    }

    #[test]
    fn hit_finds_the_nearest_point_within_the_radius() {
        let points = [[0.0, 0.0], [1.0, 1.0], [0.5, 0.5]];
        let view = Viewport::fit(&points, [100.0, 100.0]);
        let s = view.to_screen([0.52, 0.5]);
        assert_eq!(view.hit(&points, s, 5.0), Some(2));
        assert_eq!(view.hit(&points, [-50.0, -50.0], 5.0), None);
    }

    #[test]
    fn degenerate_inputs_give_a_usable_view() {
        let view = Viewport::fit(&[], [10.0, 10.0]);
        assert!(view.to_screen([0.0, 0.0]).iter().all(|v| v.is_finite()));
        let view = Viewport::fit(&[[2.0, 2.0]], [10.0, 10.0]);
        assert!(close(view.to_screen([2.0, 2.0]), [5.0, 5.0]));
        assert!(class_colour(12).starts_with("hsl("));
    }
}
