//! The viewer around a training run, in headless Chromium: the training-curves panel against the
//! `metrics.jsonl` it draws (every path's points equal to what `mclr_shared::curves` reads from
//! the same text, log axes where a chart spans decades, values on hover, a dropped log as another
//! run), the engine choice on SwiftShader (the CPU by default, WebGPU with `gpu=1`), the first
//! view (a representative anchor and the largest operator, playing unless reduced motion is
//! asked for, the address left alone), and follow mode against a run whose files are replaced
//! while the page watches (the model swapped in place with the view kept, a half-written file
//! survived).
//!
//! Built on the site from `cargo xtask web` (`www/dist`), served from a copy so that the tests can
//! write files beside it. Screenshots land in `target/e2e/live-*.png`, and any console error
//! fails the test.
// Helpers outside #[test] fns may unwrap: a panic in a test is a failure with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use harness::{BROWSER, Browser, replace_file, serve_copy_of_dist, serve_dist, workspace_root};
use mclr_shared::bundle::synthetic::{SyntheticSpec, synthetic_bundle};
use mclr_shared::bundle::{self, TrainingLog};
use mclr_shared::curves::{self, Series};
use mclr_tests::chromium::Gpu;
use mclr_viewer::first_view::representative_anchor;
use mclr_viewer::results::{ResultsTable, format_value};
use mclr_viewer::session::Session;
use serde_json::{Value, json};

/// Anything that follows a click or a link.
const REACT: Duration = Duration::from_secs(30);

/// A change to a followed run shows within a few polls (2 s apart, more after failures).
const FOLLOW: Duration = Duration::from_secs(45);

impl Browser {
    /// A session reading this test's DOM snapshot; screenshots are `live-<name>-<phase>.png`.
    fn new(name: &str, gpu: Gpu) -> Self {
        Self::open(&format!("live-{name}"), gpu, SNAPSHOT_JS)
    }

    fn url(&self) -> String {
        let r = self.session.current_url();
        self.check(r)
    }

    /// Every curve path: its run, series and `data-points` parsed back into numbers.
    fn curve_paths(&self) -> Vec<CurvePath> {
        let v = self.js(
            r##"return [...document.querySelectorAll("#curves path.curve")].map((p) => [
                 p.getAttribute("data-run"), p.getAttribute("data-series"), p.getAttribute("data-points")]);"##,
            &[],
        );
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let text = |i: usize| p[i].as_str().unwrap_or_default().to_owned();
                CurvePath {
                    run: text(0),
                    series: text(1),
                    points: parse_points(&text(2)),
                }
            })
            .collect()
    }
}

/// One `path.curve` of the curves panel.
struct CurvePath {
    /// `data-run`.
    run: String,
    /// `data-series`.
    series: String,
    /// `data-points`, parsed.
    points: Vec<(u64, f64)>,
}

/// Reads what these tests check, in one round trip.
const SNAPSHOT_JS: &str = r##"
const q = (s) => document.querySelector(s);
const all = (s) => [...document.querySelectorAll(s)];
const attr = (s, a) => { const e = q(s); return e ? e.getAttribute(a) : null; };
const text = (s) => { const e = q(s); return e ? e.textContent.trim() : null; };
const shown = (s) => { const e = q(s); return !!e && !e.hidden && e.offsetParent !== null && e.textContent.trim() !== ""; };
const val = (s) => { const e = q(s); return e ? e.value : null; };
const painted = (c) => {
  const ctx = c && c.width > 0 && c.height > 0 ? c.getContext("2d") : null;
  if (!ctx) return false;
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && d[i] + d[i + 1] + d[i + 2] > 0) return true;
  return false;
};
return {
  ready: document.body.getAttribute("data-ready"),
  backend: attr("#badge", "data-backend"),
  why: attr("#badge", "data-why"),
  badge: text("#badge"),
  badge_detail: attr("#badge", "title"),
  error: shown("#error") ? text("#error") : null,
  warnings: shown("#warnings") ? text("#warnings") : null,
  points: attr("#scatter", "data-points"),
  trail: Number(attr("#scatter", "data-trail") || 0),
  anchor: val("#anchor-input"),
  anchor_painted: painted(q("#anchor-thumb")),
  selected: all("#operators .operator.selected").map((r) => r.getAttribute("data-index")),
  coefs: Object.fromEntries(all("input.coef").map((c) => [c.getAttribute("data-index"), c.value])),
  norms: Object.fromEntries(all("#operators .operator").map((r) => [r.getAttribute("data-index"), r.getAttribute("data-norm")])),
  play: text("#play"),
  indices: attr("#nn-strip", "data-indices"),
  live: shown("#live-status") ? text("#live-status .live-text") : null,
  live_epoch: attr("#live-status", "data-epoch"),
  live_step: attr("#live-status", "data-step"),
  live_saved: attr("#live-status", "data-saved-ms"),
  live_warning: shown("#live-warning") ? text("#live-warning") : null,
  hint: shown("#first-view-hint") ? text("#first-view-hint") : null,
  search: location.search,
  curves_shown: shown("#curves"),
  curve_paths: all("#curves path.curve").length,
  curve_runs: all("#curve-runs li").map((li) => [li.getAttribute("data-run"), li.getAttribute("data-status")]),
  reduced_motion: matchMedia("(prefers-reduced-motion: reduce)").matches,
};
"##;

/// `step,value step,value …` back into numbers.
fn parse_points(text: &str) -> Vec<(u64, f64)> {
    text.split(' ')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (step, value) = pair
                .split_once(',')
                .unwrap_or_else(|| panic!("not step,value: {pair:?}"));
            (step.parse().unwrap(), value.parse().unwrap())
        })
        .collect()
}

/// A `metrics.jsonl` of `records` logging steps (every 10 steps), shaped like the trainer's: loss
/// terms (the KL term and the KL weight's warm-up span decades), learning rates, gradient norms,
/// per-operator arrays and diagnostics. `shift` makes runs differ.
fn metrics_log(records: std::ops::Range<u64>, shift: f64) -> String {
    records
        .map(|i| {
            // Small counts: exact in f64.
            #[allow(clippy::cast_precision_loss)]
            let x = i as f64;
            let record = json!({
                "step": i * 10,
                "epoch": i / 8,
                "loss": {
                    "total": 5.0 - 0.05 * x + shift,
                    "infonce": 4.0 - 0.03 * x + 0.1 * shift,
                    "kl": 80.0 * 0.7_f64.powf(x) + 1e-3,
                    "kl_weight": (0.001 * 1.5_f64.powf(x)).min(1.0),
                },
                "lr": { "backbone": 0.0005 * x, "operators": 0.0001 * x + 1e-5 },
                "grad_norm": { "backbone": 1.5 + (x * 0.7).sin(), "operators": 0.25 + 0.01 * x },
                "pairs_per_sec": 900.0 + 3.0 * x,
                "collapse": 0.2 - 0.001 * x,
                "effective_rank": 12.0 + 0.5 * x,
                "manifold": {
                    "operator_norms": [1.0 + 0.01 * x, 2.0 - 0.01 * x, 0.5, 3.0 + shift],
                    "usage": [0.5, 0.25, 0.125 + 0.001 * x, 0.0625],
                    "encoder_loc": [-0.5 - 0.01 * x, 0.5 + 0.01 * x],
                },
            });
            format!("{record}\n")
        })
        .collect()
}

/// A SimCLR-like log: fewer terms, other steps.
fn simclr_log(records: std::ops::Range<u64>) -> String {
    records
        .map(|i| {
            #[allow(clippy::cast_precision_loss)]
            let x = i as f64;
            let record = json!({
                "step": i * 15,
                "epoch": i / 6,
                "loss": { "total": 6.0 - 0.04 * x, "nt_xent": 6.0 - 0.04 * x },
                "lr": { "backbone": 0.0004 * x },
                "collapse": 0.3 - 0.002 * x,
            });
            format!("{record}\n")
        })
        .collect()
}

/// Fails unless the curve paths of run `label` are exactly the series `curves::parse` reads from
/// `jsonl`: one path per series, its points equal in number, order and value.
fn assert_paths_match(paths: &[CurvePath], label: &str, jsonl: &str) {
    let parsed = curves::parse(jsonl).unwrap();
    let mine: BTreeMap<&str, &Vec<(u64, f64)>> = paths
        .iter()
        .filter(|path| path.run == label)
        .map(|path| (path.series.as_str(), &path.points))
        .collect();
    let names: Vec<&str> = parsed.series.iter().map(|s| s.name.as_str()).collect();
    let drawn: Vec<&str> = mine.keys().copied().collect();
    assert_eq!(drawn, names, "the series drawn for {label}");
    for series in &parsed.series {
        assert_eq!(
            mine[series.name.as_str()],
            &series.points,
            "data-points of {label} · {}",
            series.name
        );
    }
}

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

#[test]
fn the_curves_panel_draws_every_logged_series_exactly() {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let (dir, site) = serve_copy_of_dist();
    let own = metrics_log(0..40, 0.0);
    let simclr = simclr_log(0..30);
    let mut with_logs = synthetic_bundle(&SyntheticSpec::default()).unwrap();
    with_logs.run.training_logs = vec![
        TrainingLog {
            label: "manifoldclr".to_owned(),
            jsonl: own.clone(),
        },
        TrainingLog {
            label: "simclr".to_owned(),
            jsonl: simclr.clone(),
        },
    ];
    std::fs::write(
        dir.path().join("curves.mclr"),
        bundle::encode(&with_logs).unwrap(),
    )
    .unwrap();
    let dropped = metrics_log(0..12, 0.5);
    let dropped_path = dir.path().join("extra-run.jsonl");
    std::fs::write(&dropped_path, &dropped).unwrap();

    let b = Browser::new("curves", Gpu::Off);
    b.navigate(&site.url("/?bundle=curves.mclr&cpu=1"));
    let v = b.wait_ready();
    assert_eq!(v["error"], Value::Null, "{v}");
    let v = b.wait("#curves shown with its paths", REACT, |v| {
        v["curves_shown"] == true && v["curve_paths"].as_u64().unwrap_or(0) > 0
    });
    assert_eq!(
        v["curve_runs"],
        json!([["manifoldclr", "ok"], ["simclr", "ok"]]),
        "{v}"
    );
    let paths = b.curve_paths();
    assert_paths_match(&paths, "manifoldclr", &own);
    assert_paths_match(&paths, "simclr", &simclr);
    assert_eq!(
        paths.len(),
        curves::parse(&own).unwrap().series.len() + curves::parse(&simclr).unwrap().series.len()
    );

    // A chart is on a log axis exactly when its values, every run's together, span decades.
    let charts = b.js(
        r##"return [...document.querySelectorAll("#curves svg.curve-chart")].map((svg) => [
             svg.getAttribute("data-chart"), svg.getAttribute("data-log"),
             [...svg.querySelectorAll("path.curve")].map((p) => p.getAttribute("data-points")).join(" ")]);"##,
        &[],
    );
    let mut log_charts = Vec::new();
    for chart in charts.as_array().unwrap() {
        let title = chart[0].as_str().unwrap();
        let combined = Series {
            name: title.to_owned(),
            points: parse_points(chart[2].as_str().unwrap()),
        };
        assert_eq!(
            chart[1] == "true",
            combined.spans_decades(),
            "data-log of the {title} chart"
        );
        if chart[1] == "true" {
            log_charts.push(title.to_owned());
        }
    }
    for title in ["loss.kl", "loss.kl_weight"] {
        assert!(
            log_charts.iter().any(|t| t == title),
            "{title} not on a log axis: {log_charts:?}"
        );
    }
    assert!(
        !log_charts.iter().any(|t| t == "loss.total"),
        "{log_charts:?}"
    );

    // Hovering a chart shows every run's value at the step under the pointer.
    b.js(
        r##"const svg = document.querySelector('#curves svg.curve-chart[data-chart="loss.total"]');
           svg.scrollIntoView({block: "center"});
           const r = svg.getBoundingClientRect();
           svg.dispatchEvent(new MouseEvent("mousemove", {bubbles: true, clientX: r.left + r.width * 0.6, clientY: r.top + 40}));"##,
        &[],
    );
    let hover = b.js(
        r##"const g = document.querySelector('#curves svg.curve-chart[data-chart="loss.total"] g.curve-hover');
           return g ? [g.getAttribute("data-step"), g.textContent] : null;"##,
        &[],
    );
    let hover_text = hover[1]
        .as_str()
        .unwrap_or_else(|| panic!("no hover box: {hover}"));
    assert!(
        hover_text.contains("manifoldclr loss.total: ")
            && hover_text.contains("simclr loss.total: "),
        "{hover}"
    );
    b.shot("hover");

    // A log opened as a file becomes another run.
    let r = b
        .session
        .find("#file-input")
        .and_then(|e| b.session.send_keys(&e, &dropped_path.display().to_string()));
    b.check(r);
    b.wait("a third run from the opened file", REACT, |v| {
        v["curve_runs"]
            .as_array()
            .is_some_and(|runs| runs.iter().any(|r| r[0] == "extra-run.jsonl"))
    });
    let paths = b.curve_paths();
    assert_paths_match(&paths, "extra-run.jsonl", &dropped);
    assert_paths_match(&paths, "manifoldclr", &own);
    b.js(
        "document.querySelector('#curves').scrollIntoView({block: 'start'});",
        &[],
    );
    b.shot("panel");
    b.assert_console_clean(&[]);
}

#[test]
fn on_a_software_adapter_the_cpu_runs_unless_gpu_1_forces_webgpu() {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let server = serve_dist();
    let b = Browser::new("engine", Gpu::WebGpu);

    b.navigate(&server.url("/?anchor=3"));
    let v = b.wait_ready();
    assert_eq!(
        v["backend"], "cpu",
        "SwiftShader is a software adapter: {v}"
    );
    assert_eq!(v["why"], "software-adapter", "{v}");
    let badge = v["badge"].as_str().unwrap_or_default();
    assert!(
        badge.starts_with("CPU — WebGPU offers only a software adapter"),
        "{v}"
    );
    assert!(
        v["badge_detail"]
            .as_str()
            .is_some_and(|d| d.contains("gpu=1")),
        "the tooltip does not say how to force WebGPU: {v}"
    );
    assert_eq!(v["error"], Value::Null, "{v}");
    b.shot("software-adapter");

    b.navigate(&server.url("/?anchor=3&gpu=1"));
    let v = b.wait_ready();
    assert_eq!(v["backend"], "webgpu", "{v}");
    assert_eq!(v["why"], "gpu-forced", "{v}");
    assert!(
        v["badge"]
            .as_str()
            .is_some_and(|b| b.starts_with("WebGPU · ")),
        "{v}"
    );
    assert!(
        v["badge_detail"]
            .as_str()
            .is_some_and(|d| d.contains("gpu=1")),
        "{v}"
    );
    // The frame still renders on WGSL: neighbours of the anchor, then a moving path.
    b.wait("#nn-strip[data-indices] on WebGPU", REACT, |v| {
        v["indices"].as_str().is_some_and(|s| !s.is_empty())
    });
    b.click("#operators .operator");
    b.wait("an operator selected", REACT, |v| {
        v["selected"].as_array().is_some_and(|s| s.len() == 1)
    });
    b.click("#play");
    let v = b.wait("a path moving on WebGPU", REACT, |v| {
        v["trail"].as_u64().unwrap_or(0) > 1 && v["play"] == "Pause"
    });
    assert_eq!(v["error"], Value::Null, "{v}");
    b.click("#play");
    b.shot("gpu-forced");
    b.assert_console_clean(&[]);
}

#[test]
fn the_first_view_plays_the_largest_operator_from_a_representative_anchor() {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let server = serve_dist();
    let demo = std::fs::read(workspace_root().join("www/dist/demo.mclr")).unwrap();
    let session = Session::from_bytes(&demo, "demo.mclr").unwrap();
    let anchor = representative_anchor(&session.labels, &session.features, session.dim()).unwrap();
    let largest = session.order[0];
    let class = &session.class_names[usize::from(session.labels[anchor])];

    let b = Browser::new("first-view", Gpu::Off);
    b.navigate(&server.url("/"));
    let v = b.wait_ready();
    assert_eq!(v["reduced_motion"], false, "{v}");
    let v = b.wait("the first view playing", REACT, |v| {
        v["play"] == "Pause" && v["trail"].as_u64().unwrap_or(0) > 1
    });
    assert_eq!(v["anchor"], anchor.to_string(), "{v}");
    assert_eq!(v["selected"], json!([largest.to_string()]), "{v}");
    assert_eq!(v["coefs"], json!({ largest.to_string(): "1" }), "{v}");
    let hint = v["hint"]
        .as_str()
        .unwrap_or_else(|| panic!("no #first-view-hint: {v}"));
    assert!(
        hint.contains(&format!("this {class} image")) && hint.contains(&format!("Ψ{largest}")),
        "{hint}"
    );
    assert!(hint.contains("neighbours"), "{hint}");
    assert_eq!(v["error"], Value::Null, "{v}");
    // The shipped demo carries its run's training log, so its curves are on the page.
    let own_log = &bundle::decode(&demo).unwrap().run.training_logs;
    assert!(!own_log.is_empty(), "www/demo.mclr carries no training log");
    let v = b.wait("the demo's curves", REACT, |v| {
        v["curves_shown"] == true && v["curve_paths"].as_u64().unwrap_or(0) > 0
    });
    assert_eq!(v["curve_runs"][0][1], "ok", "{v}");
    assert_paths_match(&b.curve_paths(), &own_log[0].label, &own_log[0].jsonl);
    // Its evaluation (and that of every run recorded beside it) is in the results panel, cell for
    // cell as the bundle's metrics give it.
    let meta = &bundle::decode(&demo).unwrap().metadata;
    let table = ResultsTable::from_metrics(&meta.method, &meta.metrics);
    assert!(!table.is_empty(), "www/demo.mclr carries no evaluation");
    let mut expected = vec![
        std::iter::once(String::new())
            .chain(table.runs.iter().cloned())
            .collect::<Vec<_>>(),
    ];
    expected.extend(table.rows.iter().map(|row| {
        std::iter::once(row.label.to_owned())
            .chain(row.values.iter().map(|&v| format_value(v)))
            .collect()
    }));
    let shown = b.js(
        r##"const panel = document.querySelector("#results");
            return panel.hidden ? null : [...panel.querySelectorAll("tr")]
              .map((tr) => [...tr.children].map((cell) => cell.textContent));"##,
        &[],
    );
    assert_eq!(shown, json!(expected));
    b.js(
        "document.querySelector('#results').scrollIntoView({block: 'start'});",
        &[],
    );
    b.shot("results");
    b.js("window.scrollTo(0, 0);", &[]);
    b.shot("playing");
    // Opening the page wrote nothing into its address.
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        !b.url().contains('?'),
        "the address gained parameters: {}",
        b.url()
    );

    // The first interaction writes the whole view, and the hint has done its job.
    b.click("#play");
    b.wait("#play to read Play", REACT, |v| v["play"] == "Play");
    let r = b
        .session
        .wait_for("the view in the address", REACT, |s, found| {
            *found = s.current_url()?;
            Ok((found.contains(&format!("anchor={anchor}"))
                && found.contains(&format!("ops={largest}:1")))
            .then_some(()))
        });
    b.check(r);
    b.wait("#first-view-hint hidden", REACT, |v| v["hint"].is_null());
    b.assert_console_clean(&[]);
    drop(b);

    // Asked for less motion, the same view waits for a click.
    let calm = Browser::open_with(
        "live-first-view-reduced-motion",
        Gpu::Off,
        &["--force-prefers-reduced-motion"],
        SNAPSHOT_JS,
    );
    let anchor_text = anchor.to_string();
    calm.navigate(&server.url("/"));
    let v = calm.wait_ready();
    assert_eq!(
        v["reduced_motion"], true,
        "the flag did not set the preference: {v}"
    );
    let v = calm.wait("the first view's anchor and operator", REACT, |v| {
        v["anchor"].as_str() == Some(anchor_text.as_str())
            && v["selected"] == json!([largest.to_string()])
    });
    assert!(v["hint"].is_string(), "{v}");
    std::thread::sleep(Duration::from_millis(1500));
    let v = calm.snapshot();
    assert_eq!(
        v["play"], "Play",
        "it started playing under reduced motion: {v}"
    );
    calm.shot("still");
    calm.assert_console_clean(&[]);
}

/// A live snapshot as `mclr train` writes it: a synthetic bundle of `seed` at `epochs` and
/// `steps`, saved at `saved_ms`, whose sheet is the file `live-thumbs.png` beside it; also returns
/// the sheet and the operators' norms.
fn live_bundle(seed: u64, epochs: u32, steps: u64, saved_ms: u64) -> (Vec<u8>, Vec<u8>, Vec<f32>) {
    let spec = SyntheticSpec {
        seed,
        ..SyntheticSpec::default()
    };
    let mut live = synthetic_bundle(&spec).unwrap();
    let sheet = std::mem::take(&mut live.thumbnails.sheet);
    live.thumbnails.sheet_file = Some("live-thumbs.png".to_owned());
    live.run.live = true;
    live.run.saved_unix_ms = saved_ms;
    live.metadata.epochs = epochs;
    live.metadata.steps = steps;
    let norms = live.stats.norms.to_f32_vec().unwrap();
    (bundle::encode(&live).unwrap(), sheet, norms)
}

/// The selected operators as a sorted list (rows are ordered by norm, which a swap changes).
fn selected(v: &Value) -> Vec<String> {
    let mut list: Vec<String> = v["selected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    list.sort();
    list
}

fn norms_shown(v: &Value) -> Vec<f32> {
    let norms = v["norms"].as_object().unwrap();
    let mut by_index: Vec<(usize, f32)> = norms
        .iter()
        .map(|(m, norm)| {
            (
                m.parse().unwrap(),
                norm.as_str().unwrap_or_default().parse().unwrap(),
            )
        })
        .collect();
    by_index.sort_by_key(|p| p.0);
    by_index.into_iter().map(|p| p.1).collect()
}

/// Selects the first operator not yet selected and moves its coefficient one step, then waits
/// until the page and its (throttled) link both hold the moved coefficient; returns that
/// snapshot, the view a swap must keep.
fn select_another_operator_and_move_it(b: &Browser) -> Value {
    let row = b.js(
        r##"const r = [...document.querySelectorAll("#operators .operator")].find((r) => !r.classList.contains("selected"));
           return r.getAttribute("data-index");"##,
        &[],
    );
    let m = row.as_str().unwrap().to_owned();
    b.click(&format!("#operators .operator[data-index=\"{m}\"]"));
    let slider = format!("input.coef[data-index=\"{m}\"]");
    b.wait(&slider, REACT, |v| v["coefs"].get(m.as_str()).is_some());
    let r = b
        .session
        .find(&slider)
        .and_then(|e| b.session.send_keys(&e, "\u{E012}"));
    b.check(r);
    b.wait("the coefficient moved, in the address too", REACT, |v| {
        v["coefs"][m.as_str()].as_str().is_some_and(|c| {
            c != "1"
                && v["search"]
                    .as_str()
                    .is_some_and(|s| s.contains(&format!("{m}:{c}")))
        })
    })
}

#[test]
fn follow_mode_swaps_the_model_in_place_and_survives_a_half_written_file() {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let (dir, site) = serve_copy_of_dist();
    let bundle_path = dir.path().join("live.mclr");
    let log_path = dir.path().join("metrics.jsonl");
    let start = now_ms();
    let (first, sheet, _) = live_bundle(1, 1, 100, start - 5_000);
    std::fs::write(dir.path().join("live-thumbs.png"), &sheet).unwrap();
    std::fs::write(&bundle_path, &first).unwrap();
    let log_v1 = metrics_log(0..10, 0.0);
    std::fs::write(&log_path, &log_v1).unwrap();

    let b = Browser::new("follow", Gpu::Off);
    // The address `mclr view` prints.
    b.navigate(&site.url("/?bundle=live.mclr&follow=1"));
    let v = b.wait_ready();
    assert_eq!(v["error"], Value::Null, "{v}");
    assert_eq!(
        (v["live_epoch"].as_str(), v["live_step"].as_str()),
        (Some("1"), Some("100")),
        "{v}"
    );
    assert_eq!(v["live_saved"], (start - 5_000).to_string(), "{v}");
    let live = v["live"]
        .as_str()
        .unwrap_or_else(|| panic!("no #live-status: {v}"));
    assert!(
        live.starts_with("live · epoch 1 · step 100 · saved "),
        "{live}"
    );
    // The sheet beside the bundle was fetched, checked and drawn.
    let v = b.wait("the anchor's thumbnail from live-thumbs.png", REACT, |v| {
        v["anchor_painted"] == true
    });
    assert_eq!(v["error"], Value::Null, "{v}");
    // The run's log beside the bundle is its curves.
    b.wait("the followed run's curves", REACT, |v| {
        v["curve_runs"] == json!([["manifoldclr (live)", "ok"]])
    });
    assert_paths_match(&b.curve_paths(), "manifoldclr (live)", &log_v1);

    // A second operator by hand, with its coefficient moved: more than the first view to keep.
    let before = select_another_operator_and_move_it(&b);
    b.shot("before");

    // The run moves on: a new snapshot, replaced atomically, and a longer log.
    let (second, _, second_norms) = live_bundle(2, 2, 250, now_ms());
    replace_file(&bundle_path, &second);
    let log_v2 = metrics_log(0..25, 0.0);
    replace_file(&log_path, log_v2.as_bytes());
    let after = b.wait("#live-status to say step 250", FOLLOW, |v| {
        v["live_step"] == "250"
    });
    assert_eq!(after["live_epoch"], "2", "{after}");
    assert!(
        after["live"]
            .as_str()
            .is_some_and(|l| l.starts_with("live · epoch 2 · step 250 · saved ")),
        "{after}"
    );
    let norms = norms_shown(&b.wait("the new operator norms", REACT, |v| {
        norms_shown(v) == second_norms
    }));
    assert_eq!(norms, second_norms);
    for key in ["anchor", "coefs", "play"] {
        assert_eq!(
            after[key], before[key],
            "`{key}` changed in the swap: {after}"
        );
    }
    // The rows follow the new norms' order; the selection is the same set.
    assert_eq!(selected(&after), selected(&before), "{after}");
    assert_eq!(after["error"], Value::Null, "{after}");
    assert_eq!(after["live_warning"], Value::Null, "{after}");
    b.wait("the longer log's curves", FOLLOW, |_| {
        b.curve_paths().iter().any(|path| {
            path.run == "manifoldclr (live)"
                && path.series == "loss.total"
                && path.points.len() == 25
        })
    });
    assert_paths_match(&b.curve_paths(), "manifoldclr (live)", &log_v2);
    b.shot("after");

    // A file caught half-written: the model in use stays, a warning says so, and the next good
    // file is taken.
    let (third, _, third_norms) = live_bundle(3, 3, 400, now_ms());
    std::fs::write(&bundle_path, &third[..third.len() / 2]).unwrap();
    let warned = b.wait("#live-warning about the half file", FOLLOW, |v| {
        v["live_warning"].is_string()
    });
    assert_eq!(warned["live_step"], "250", "{warned}");
    assert_eq!(warned["ready"], "true", "{warned}");
    assert_eq!(warned["error"], Value::Null, "{warned}");
    assert_eq!(norms_shown(&warned), second_norms, "{warned}");
    let warning = warned["live_warning"].as_str().unwrap();
    assert!(
        warning.contains("Could not update from the run"),
        "{warning}"
    );
    b.shot("half-written");
    replace_file(&bundle_path, &third);
    let healed = b.wait("step 400 and no warning", FOLLOW, |v| {
        v["live_step"] == "400" && v["live_warning"].is_null()
    });
    assert_eq!(norms_shown(&healed), third_norms, "{healed}");
    for key in ["anchor", "coefs"] {
        assert_eq!(healed[key], before[key], "`{key}` changed: {healed}");
    }
    assert_eq!(selected(&healed), selected(&before), "{healed}");
    b.assert_console_clean(&[]);
}

/// The `mclr` binary the workspace's test build made (`MCLR_BIN` overrides): beside this test's
/// own profile folder, or the release one.
fn mclr_binary() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("MCLR_BIN") {
        return path.into();
    }
    let exe = std::env::current_exe().unwrap();
    // <target>/<profile>/deps/<this test>
    let profile = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let target = profile.parent().unwrap();
    let candidates = [profile.join("mclr"), target.join("release/mclr")];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "no `mclr` binary at {candidates:?}: build it with `cargo build -p mclr-trainer \
                 --bin mclr` (the workspace's test build makes it), or set MCLR_BIN"
            )
        })
}

/// Runs `mclr` with `args`, failing the test with its output if it fails.
fn mclr(args: &[&str]) {
    let out = std::process::Command::new(mclr_binary())
        .args(args)
        .current_dir(workspace_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mclr {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `mclr view` as a child process, killed when dropped.
struct View {
    child: std::process::Child,
    url: String,
}

impl View {
    /// Starts `mclr view run --port 0` on the built site and reads the URL it prints.
    fn start(run: &std::path::Path) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(mclr_binary())
            .arg("view")
            .arg(run)
            .args(["--port", "0", "--site"])
            .arg(workspace_root().join("www/dist"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let url = loop {
            let Some(line) = lines.next() else {
                let status = child.wait().unwrap();
                panic!("mclr view ended ({status}) without printing a URL");
            };
            let line = line.unwrap();
            if let Some(at) = line.find("http://") {
                break line[at..].split_whitespace().next().unwrap().to_owned();
            }
        };
        // Keep draining its output so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { child, url }
    }
}

impl Drop for View {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The operator norms of the live bundle `mclr train` wrote into `run`.
fn live_norms(run: &std::path::Path) -> (u64, Vec<f32>) {
    let bytes = std::fs::read(run.join("live.mclr")).unwrap();
    let live = bundle::decode(&bytes).unwrap();
    assert!(live.run.live, "live.mclr is not marked live");
    (live.metadata.steps, live.stats.norms.to_f32_vec().unwrap())
}

#[test]
fn mclr_view_follows_a_run_that_trains_one_more_checkpoint_keeping_the_view() {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    drop(serve_dist()); // the site must be built; says how otherwise
    let data = workspace_root().join("data/cifar10");
    assert!(
        data.join("test_batch.bin").is_file(),
        "CIFAR-10 is missing at {}: run `cargo run -p mclr-trainer -- data fetch cifar10 --dir \
         data/cifar10 --offline` (`cargo xtask demo --smoke` does)",
        data.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run_arg = run.to_str().unwrap();
    let data_set = format!("data.dir={}", data.display());
    // Two epochs of 4 steps, a checkpoint (and a live bundle of 64 test images) after each; the
    // first invocation stops after epoch 1.
    let train = [
        "train",
        "--config",
        "demo",
        "--run-dir",
        run_arg,
        "--set",
        &data_set,
        "--set",
        "data.subset=128",
        "--set",
        "optim.batch_size=32",
        "--set",
        "optim.epochs=2",
        "--set",
        "run.live_gallery=64",
        "--device",
        "cpu",
    ];
    let mut first = train.to_vec();
    first.extend(["--stop-after-epochs", "1"]);
    mclr(&first);
    let (steps_1, norms_1) = live_norms(&run);
    assert_eq!(steps_1, 4);

    let view = View::start(&run);
    assert!(
        view.url.ends_with("/?bundle=run/live.mclr&follow=1"),
        "{}",
        view.url
    );
    let b = Browser::new("mclr-view", Gpu::Off);
    b.navigate(&view.url);
    let v = b.wait_ready();
    assert_eq!(v["error"], Value::Null, "{v}");
    let v = b.wait("#live-status at the first checkpoint", REACT, |v| {
        v["live_step"] == "4"
    });
    assert_eq!(v["live_epoch"], "1", "{v}");
    assert_eq!(norms_shown(&v), norms_1, "{v}");
    // The served run's log is the curves.
    b.wait("the run's curves", REACT, |v| {
        v["curve_runs"] == json!([["manifoldclr (live)", "ok"]])
    });

    // A view of one's own: another operator, its coefficient moved.
    let before = select_another_operator_and_move_it(&b);
    b.shot("before");

    // The run goes on to its second checkpoint while the page watches.
    let mut second = train.to_vec();
    second.push("--resume");
    mclr(&second);
    let (steps_2, norms_2) = live_norms(&run);
    assert_eq!(steps_2, 8);
    assert_ne!(norms_2, norms_1, "training did not move the operators");
    let after = b.wait("#live-status at the second checkpoint", FOLLOW, |v| {
        v["live_step"] == "8"
    });
    assert_eq!(after["live_epoch"], "2", "{after}");
    let after = b.wait("the new operator norms", REACT, |v| {
        norms_shown(v) == norms_2
    });
    for key in ["anchor", "coefs", "play"] {
        assert_eq!(
            after[key], before[key],
            "`{key}` changed in the swap: {after}"
        );
    }
    // The share link's state apart from the playing t: bundle, follow, anchor, ops, T, mode.
    let without_t = |v: &Value| -> Vec<String> {
        let search = v["search"].as_str().unwrap_or_default();
        search
            .trim_start_matches('?')
            .split('&')
            .filter(|p| !p.starts_with("t="))
            .map(str::to_owned)
            .collect()
    };
    assert!(
        without_t(&before).iter().any(|p| p.starts_with("ops=")),
        "{before}"
    );
    assert_eq!(
        without_t(&after),
        without_t(&before),
        "before: {before}\nafter: {after}"
    );
    assert_eq!(selected(&after), selected(&before), "{after}");
    assert_eq!(after["error"], Value::Null, "{after}");
    assert_eq!(after["live_warning"], Value::Null, "{after}");
    b.shot("after");
    b.assert_console_clean(&[]);
    drop(view);
}
