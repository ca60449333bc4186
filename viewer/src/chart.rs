//! Axis arithmetic for the SVG charts (inspect mode's and the training curves'): linear scales
//! from data to pixels and "nice" tick values (1, 2 or 5 times a power of ten), placed and
//! labelled, so every chart gets readable, labelled axes.

/// A linear map from a data interval to a pixel interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    /// Data interval (lo, hi), lo < hi.
    pub domain: (f64, f64),
    /// Pixel interval the domain maps to (may run backwards, as a y axis does).
    pub range: (f64, f64),
}

impl Scale {
    /// A scale over `domain`, widened to a unit interval around its value when it is empty or
    /// not finite, so that a constant series still plots.
    pub fn new(domain: (f64, f64), range: (f64, f64)) -> Self {
        let (mut lo, mut hi) = domain;
        if !lo.is_finite() || !hi.is_finite() {
            (lo, hi) = (-1.0, 1.0);
        }
        if hi <= lo {
            let mid = 0.5 * (lo + hi);
            (lo, hi) = (mid - 1.0, mid + 1.0);
        }
        Self {
            domain: (lo, hi),
            range,
        }
    }

    /// The pixel position of data value `x`.
    pub fn map(&self, x: f64) -> f64 {
        let (lo, hi) = self.domain;
        self.range.0 + (x - lo) / (hi - lo) * (self.range.1 - self.range.0)
    }
}

/// Tick values covering [lo, hi] at a step of 1, 2 or 5 × 10^k, about `count` of them, and the
/// step. The interval is first widened to whole steps, so the ticks also bound the data.
pub fn nice_ticks(lo: f64, hi: f64, count: usize) -> (Vec<f64>, f64) {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() && hi > lo {
        (lo, hi)
    } else if lo.is_finite() {
        (lo - 1.0, lo + 1.0)
    } else {
        (-1.0, 1.0)
    };
    let raw = (hi - lo) / count.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|f| f * magnitude)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * magnitude);
    let first = (lo / step).floor();
    let last = (hi / step).ceil();
    // At most a few dozen ticks: the step is at least (hi − lo) / count.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let n = ((last - first).max(0.0) as usize).min(64);
    let ticks = (0..=n).map(|i| (first + i as f64) * step).collect();
    (ticks, step)
}

/// One labelled tick: where it sits along its axis and what it reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    /// Position along the axis, CSS pixels.
    pub at: f64,
    /// The label.
    pub label: String,
}

/// Ticks at the values of a [`nice_ticks`] result, placed by `scale` and labelled by
/// [`tick_label`] with its step.
pub fn placed_ticks(scale: &Scale, (values, step): &(Vec<f64>, f64)) -> Vec<Tick> {
    values
        .iter()
        .map(|&v| Tick {
            at: scale.map(v),
            label: tick_label(v, *step),
        })
        .collect()
}

/// A tick label with just the decimals its step needs ("0.25", "-2", "1e-4").
pub fn tick_label(value: f64, step: f64) -> String {
    if value == 0.0 {
        return "0".to_owned();
    }
    if step.abs() < 1e-3 || value.abs() >= 1e5 {
        return format!("{value:.1e}");
    }
    // Decimals of the step: 0.25 → 2, 5 → 0.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    let decimals = if (step * 10f64.powi(decimals as i32)).fract().abs() > 1e-9 {
        decimals + 1
    } else {
        decimals
    };
    format!("{value:.decimals$}")
}

/// A colour for value `v` in [0, 1] on the heatmap's scale (dark blue → cyan → yellow).
pub fn heat_colour(v: f32) -> String {
    const STOPS: [[f32; 3]; 4] = [
        [22.0, 27.0, 51.0],
        [34.0, 94.0, 168.0],
        [76.0, 201.0, 240.0],
        [250.0, 230.0, 90.0],
    ];
    let v = if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = v * 3.0;
    // x ∈ [0, 3]: the segment index is 0, 1 or 2.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let i = (x.floor() as usize).min(2);
    let f = x - i as f32;
    let mix = |c: usize| STOPS[i][c] + (STOPS[i + 1][c] - STOPS[i][c]) * f;
    format!("rgb({:.0}, {:.0}, {:.0})", mix(0), mix(1), mix(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_numbers_that_cover_the_data() {
        let (ticks, step) = nice_ticks(-2.0, 2.0, 4);
        assert_eq!(step, 1.0);
        assert_eq!(ticks, vec![-2.0, -1.0, 0.0, 1.0, 2.0]);
        let (ticks, step) = nice_ticks(0.013, 0.87, 5);
        assert_eq!(step, 0.2);
        assert!(ticks[0] <= 0.013 && *ticks.last().unwrap() >= 0.87);
        let (ticks, _) = nice_ticks(3.0, 3.0, 5);
        assert!(ticks.len() >= 2);
        let (ticks, _) = nice_ticks(f64::NAN, 1.0, 5);
        assert!(ticks.iter().all(|t| t.is_finite()));
    }

    #[test]
    fn labels_carry_the_decimals_of_the_step() {
        assert_eq!(tick_label(0.5, 0.5), "0.5");
        assert_eq!(tick_label(0.25, 0.25), "0.25");
        assert_eq!(tick_label(-2.0, 1.0), "-2");
        assert_eq!(tick_label(0.0, 0.1), "0");
        assert_eq!(tick_label(40.0, 20.0), "40");
    }

    #[test]
    fn placed_ticks_sit_where_the_scale_puts_their_values() {
        let scale = Scale::new((0.0, 2.0), (10.0, 30.0));
        let ticks = placed_ticks(&scale, &nice_ticks(0.0, 2.0, 4));
        let at: Vec<f64> = ticks.iter().map(|t| t.at).collect();
        let labels: Vec<&str> = ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(at, [10.0, 15.0, 20.0, 25.0, 30.0]);
        assert_eq!(labels, ["0", "0.5", "1.0", "1.5", "2.0"]);
    }

    #[test]
    fn scales_map_ends_to_ends_and_survive_empty_domains() {
        let s = Scale::new((0.0, 10.0), (100.0, 0.0));
        assert_eq!(s.map(0.0), 100.0);
        assert_eq!(s.map(10.0), 0.0);
        let flat = Scale::new((5.0, 5.0), (0.0, 1.0));
        assert_eq!(flat.map(5.0), 0.5);
    }

    #[test]
    fn the_heat_scale_runs_from_dark_to_bright() {
        assert_eq!(heat_colour(0.0), "rgb(22, 27, 51)");
        assert_eq!(heat_colour(1.0), "rgb(250, 230, 90)");
        assert_eq!(heat_colour(f32::NAN), heat_colour(0.0));
    }
}
