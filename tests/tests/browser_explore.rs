//! The viewer's exploration modes in headless Chromium, opened from share links the way a person
//! would open them: prior sampling at the anchor (S tiles, each painted with the thumbnail of its
//! nearest gallery image other than the anchor, the kept fraction, the same samples after a
//! reload of the same link), transport A → B (the matching error, going to t = 1, play
//! staying within t ∈ [0, 1], a link's out-of-range t clamped with a warning), and operator
//! analytics (one eigenvalue point per eigenvalue, one line per coordinate, C × M heatmap cells,
//! one bar pair per operator, picking an operator from the heatmap).
//!
//! Built on the site from `cargo xtask web` (`www/dist`). Each mode saves a screenshot to
//! `target/e2e/explore-*.png`, and any console error fails the test.
// Helpers outside #[test] fns may unwrap: a panic in a test is a failure with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::path::PathBuf;
use std::time::Duration;

use harness::{BROWSER, Browser, serve_dist};
use mclr_tests::chromium::Gpu;
use serde_json::{Value, json};

/// Anything that follows a click or a link.
const REACT: Duration = Duration::from_secs(30);

impl Browser {
    /// A session reading this test's DOM snapshot; screenshots are `explore-<name>-<phase>.png`.
    fn new(name: &str, gpu: Gpu) -> Self {
        Self::open(&format!("explore-{name}"), gpu, SNAPSHOT_JS)
    }

    /// Scrolls `selector` to the top of the window, then saves a screenshot of it.
    fn shot_of(&self, selector: &str, phase: &str) -> PathBuf {
        let r = self.session.execute(
            "const e = document.querySelector(arguments[0]); if (e) { e.scrollIntoView({block: 'start'}); }",
            &[json!(selector)],
        );
        self.check(r);
        std::thread::sleep(Duration::from_millis(300));
        self.shot(phase)
    }

    fn url(&self) -> String {
        let r = self.session.current_url();
        self.check(r)
    }
}

/// What the exploration modes show, in one round trip.
const SNAPSHOT_JS: &str = r##"
const q = (s) => document.querySelector(s);
const all = (s) => [...document.querySelectorAll(s)];
const attr = (s, a) => { const e = q(s); return e ? e.getAttribute(a) : null; };
const text = (s) => { const e = q(s); return e ? e.textContent.trim() : null; };
const shown = (s) => { const e = q(s); return !!e && !e.hidden && e.offsetParent !== null && e.textContent.trim() !== ""; };
return {
  ready: document.body.getAttribute("data-ready"),
  backend: attr("#badge", "data-backend"),
  error: shown("#error") ? text("#error") : null,
  warnings: shown("#warnings") ? text("#warnings") : null,
  classes: all("#legend li").length,
  prior_tiles: all("#prior-grid canvas.prior-tile").map((c) => c.getAttribute("data-index")),
  prior_painted: all("#prior-grid canvas.prior-tile").filter((c) => {
    const ctx = c.width > 0 && c.height > 0 ? c.getContext("2d") : null;
    if (!ctx) return false;
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && d[i] + d[i + 1] + d[i + 2] > 0) return true;
    return false;
  }).length,
  prior_keep: text("#prior-keep"),
  prior_fraction: attr("#prior-keep", "data-fraction"),
  transport_error: attr("#transport-error", "data-value"),
  transport_text: text("#transport-error"),
  indices: attr("#nn-strip", "data-indices"),
  t: text("#t-value"),
  scrub_min: attr("#scrub", "min"),
  scrub_max: attr("#scrub", "max"),
  play: text("#play"),
  eigen_points: all("#eigen-plot circle.eig").length,
  eigen_count: attr("#eigen-plot", "data-count"),
  eigen_finite: all("#eigen-plot circle.eig").every((c) => isFinite(parseFloat(c.getAttribute("cx"))) && isFinite(parseFloat(c.getAttribute("cy")))),
  sweep_lines: all("#sweep-plot polyline.coord").length,
  sweep_ticks: all("#sweep-plot text.tick").length,
  heatmap_cells: all("#heatmap rect.cell").length,
  heatmap_classes: attr("#heatmap", "data-classes"),
  heatmap_operators: attr("#heatmap", "data-operators"),
  heatmap_inspected: all("#heatmap rect.inspected").length,
  bars: all("#operator-bars .bar-pair").length,
  inspect_op: (q("#inspect-op") || {}).value || null,
  sweep_tiles: all("#sweep canvas[data-index]").length,
};
"##;

fn as_int(v: &Value) -> Option<usize> {
    v.as_str().and_then(|s| s.parse().ok())
}

#[test]
fn prior_mode_shows_s_seeded_samples_and_the_kept_fraction() {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let site = serve_dist();
    let b = Browser::new("prior", Gpu::WebGpu);
    // gpu=1: SwiftShader is a software adapter, on which the viewer would pick the CPU path.
    let link = site.url("/?anchor=17&mode=prior&seed=5&S=48&gpu=1");
    b.navigate(&link);
    let v = b.wait_ready();
    assert_eq!(v["backend"], "webgpu", "{v}");
    let first = b.wait("48 painted prior tiles and a kept fraction", REACT, |v| {
        v["prior_tiles"].as_array().is_some_and(|t| t.len() == 48)
            && v["prior_fraction"].is_string()
            && v["prior_painted"] == 48
    });
    assert_eq!(first["error"], Value::Null, "{first}");
    // Each tile shows the sample's nearest gallery image other than the anchor, and so does the
    // strip below.
    let tiles: Vec<usize> = first["prior_tiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| as_int(t).unwrap())
        .collect();
    assert!(!tiles.contains(&17), "{first}");
    let strip: Vec<usize> = first["indices"]
        .as_str()
        .unwrap()
        .split(',')
        .map(|i| i.parse().unwrap())
        .collect();
    assert_eq!(strip, tiles[..8], "{first}");
    let fraction: f64 = first["prior_fraction"].as_str().unwrap().parse().unwrap();
    assert!((0.0..=1.0).contains(&fraction), "{first}");
    let keep = first["prior_keep"].as_str().unwrap();
    assert!(keep.contains("/48"), "{keep}");
    b.shot_of(".prior-panel", "grid");

    // The same link shows the same samples.
    b.navigate(&link);
    b.wait_ready();
    let again = b.wait(
        "the same 48 painted tiles after reopening the link",
        REACT,
        |v| v["prior_tiles"].as_array().is_some_and(|t| t.len() == 48) && v["prior_painted"] == 48,
    );
    assert_eq!(again["prior_tiles"], first["prior_tiles"]);

    // Resampling changes the seed in the link.
    b.click("#resample");
    let r = b.session.wait_for("seed=6 in the URL", REACT, |s, found| {
        *found = s.current_url()?;
        Ok(found.contains("seed=6").then_some(()))
    });
    b.check(r);
    assert!(b.url().contains("S=48"), "{}", b.url());
    b.assert_console_clean(&[]);
}

#[test]
fn transport_mode_shows_the_matching_error_and_reaches_b() {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let site = serve_dist();
    let b = Browser::new("transport", Gpu::WebGpu);
    b.navigate(&site.url("/?anchor=3&b=250&mode=transport&gpu=1"));
    let v = b.wait_ready();
    assert_eq!(v["backend"], "webgpu", "{v}");
    let v = b.wait("a numeric #transport-error", REACT, |v| {
        v["transport_error"].as_str().is_some()
    });
    assert_eq!(v["error"], Value::Null, "{v}");
    let error: f64 = v["transport_error"].as_str().unwrap().parse().unwrap();
    assert!(error.is_finite() && error >= 0.0, "{v}");
    let shown: f64 = v["transport_text"].as_str().unwrap().parse().unwrap();
    assert!((shown - error).abs() < 1e-3, "{v}");

    b.click("#show-b");
    b.wait("t = 1", REACT, |v| v["t"] == "1.000");
    let r = b.session.wait_for("t=1 in the URL", REACT, |s, found| {
        *found = s.current_url()?;
        Ok(found.contains("t=1").then_some(()))
    });
    b.check(r);
    let url = b.url();
    assert!(
        url.contains("b=250") && url.contains("mode=transport"),
        "{url}"
    );
    b.wait("neighbours of T(c) z_A", REACT, |v| {
        v["indices"].as_str().is_some_and(|s| !s.is_empty())
    });
    b.shot_of("#transport", "at-b");

    // Playing animates T(t·c) z_A for t in [0, 1] only: from A, to B, and back to A.
    assert_eq!(
        (v["scrub_min"].as_str(), v["scrub_max"].as_str()),
        (Some("0"), Some("1")),
        "{v}"
    );
    b.click("#show-a");
    b.wait("t = 0", REACT, |v| v["t"] == "0.000");
    b.click("#play");
    b.wait("#play to say Pause", REACT, |v| v["play"] == "Pause");
    let mut seen = Vec::new();
    for _ in 0..12 {
        std::thread::sleep(Duration::from_millis(400));
        let v = b.snapshot();
        let t: f64 = v["t"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .unwrap_or(f64::NAN);
        assert!((0.0..=1.0).contains(&t), "t left [0, 1] while playing: {v}");
        seen.push(t);
    }
    eprintln!("transport t while playing: {seen:?}");
    assert!(seen.iter().any(|&t| t > 0.0), "t never moved: {seen:?}");
    b.shot("playing");
    b.click("#play");
    b.wait("#play to say Play", REACT, |v| v["play"] == "Play");

    // A link's t outside [0, 1] is clamped into it, with a warning.
    b.navigate(&site.url("/?anchor=3&b=250&mode=transport&t=-0.5&gpu=1"));
    let v = b.wait_ready();
    let v = if v["warnings"].is_null() {
        b.wait("a warning about t", REACT, |v| !v["warnings"].is_null())
    } else {
        v
    };
    assert!(
        v["warnings"].as_str().is_some_and(|w| w.contains("[0, 1]")),
        "{v}"
    );
    assert_eq!(v["t"], "0.000", "{v}");
    b.assert_console_clean(&[]);
}

#[test]
fn inspect_mode_plots_eigenvalues_sweeps_heatmap_and_bars() {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let site = serve_dist();
    let b = Browser::new("inspect", Gpu::Off);
    b.navigate(&site.url("/?anchor=5&mode=inspect&op=2"));
    b.wait_ready();
    let v = b.wait(
        "eigenvalue points, sweep lines and heatmap cells",
        REACT,
        |v| {
            v["eigen_points"].as_u64().is_some_and(|n| n > 0)
                && v["sweep_lines"].as_u64().is_some_and(|n| n > 0)
                && v["heatmap_cells"].as_u64().is_some_and(|n| n > 0)
        },
    );
    assert_eq!(v["error"], Value::Null, "{v}");
    assert_eq!(v["inspect_op"], "2", "{v}");
    // One point per eigenvalue: K blocks of n, that is d, one sweep line per coordinate.
    let points = usize::try_from(v["eigen_points"].as_u64().unwrap()).unwrap();
    assert_eq!(Some(points), as_int(&v["eigen_count"]), "{v}");
    assert_eq!(v["sweep_lines"].as_u64(), Some(points as u64), "{v}");
    assert_eq!(v["eigen_finite"], true, "{v}");
    assert!(v["sweep_ticks"].as_u64().unwrap() >= 4, "{v}");
    // C × M cells, C being the legend's classes.
    let classes = as_int(&v["heatmap_classes"]).unwrap();
    let operators = as_int(&v["heatmap_operators"]).unwrap();
    assert_eq!(
        classes,
        usize::try_from(v["classes"].as_u64().unwrap()).unwrap()
    );
    assert_eq!(
        v["heatmap_cells"].as_u64(),
        Some((classes * operators) as u64),
        "{v}"
    );
    assert_eq!(v["heatmap_inspected"], 1, "{v}");
    assert_eq!(v["bars"].as_u64(), Some(operators as u64), "{v}");
    assert_eq!(v["sweep_tiles"], 9, "{v}");
    b.shot_of(".charts", "charts");

    // Clicking a heatmap column inspects that operator, and the link says so.
    let target = operators - 1;
    b.click(&format!(
        "#heatmap rect.cell[data-class=\"0\"][data-operator=\"{target}\"]"
    ));
    let wanted = target.to_string();
    b.wait("the clicked operator inspected", REACT, |v| {
        v["inspect_op"].as_str() == Some(wanted.as_str())
    });
    let r = b.session.wait_for("op= in the URL", REACT, |s, found| {
        *found = s.current_url()?;
        Ok(found.contains(&format!("op={target}")).then_some(()))
    });
    b.check(r);
    b.assert_console_clean(&[]);
}
