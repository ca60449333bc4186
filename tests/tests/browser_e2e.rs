//! The built site (`www/dist`, from `cargo xtask web`) in headless Chromium, driven through
//! chromedriver the way a person would use it: load the demo bundle, pick an anchor and an
//! operator, play a path and watch the neighbours change, share a link and reopen it in a fresh
//! browser, open bad links, and open both bundles `cargo xtask demo` serves. WebGPU (SwiftShader) and the CPU fallback both run.
//!
//! The page is addressed only through its DOM contract: `#badge[data-backend]`,
//! `body[data-ready]`, `#scatter[data-trail]`, `#anchor-input`, `.operator[data-index]`,
//! `input.coef`, `#play`, `#t-range`, `#t-value`, `#nn-strip[data-indices]`, `#copy-link`,
//! `#share-url`, `#error`, `#warnings`. Screenshots of every phase land in `target/e2e/`, and any
//! console error fails the test.
// Helpers outside #[test] fns may unwrap: a panic in a test is a failure with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::path::Path;
use std::time::Duration;

use harness::{BROWSER, Browser, LOAD, serve_dist, workspace_root};
use mclr_tests::chromium::Gpu;
use mclr_tests::site::Server;
use serde_json::Value;

/// Anything that follows a click.
const REACT: Duration = Duration::from_secs(20);

impl Browser {
    /// A session reading this test's DOM snapshot.
    fn new(name: &str, gpu: Gpu) -> Self {
        Self::open(name, gpu, SNAPSHOT_JS)
    }

    /// Replaces an input's text the way a person does (select all, type) and presses Enter.
    fn type_into(&self, selector: &str, text: &str) {
        let r = self.session.find(selector).and_then(|e| {
            self.session.clear(&e)?;
            self.session.send_keys(&e, &format!("{text}\u{E007}"))
        });
        self.check(r);
    }
}

/// Reads every part of the DOM contract the test checks, in one round trip.
const SNAPSHOT_JS: &str = r##"
const q = (s) => document.querySelector(s);
const attr = (s, a) => { const e = q(s); return e ? e.getAttribute(a) : null; };
const text = (s) => { const e = q(s); return e ? e.textContent.trim() : null; };
const shown = (s) => { const e = q(s); return !!e && !e.hidden && e.offsetParent !== null && e.textContent.trim() !== ""; };
const val = (s) => { const e = q(s); return e ? e.value : null; };
return {
  ready: document.body.getAttribute("data-ready"),
  backend: attr("#badge", "data-backend"),
  badge: text("#badge"),
  badge_detail: attr("#badge", "title"),
  why: attr("#badge", "data-why"),
  bundle: text("#bundle-name"),
  error: shown("#error") ? text("#error") : null,
  warnings: shown("#warnings") ? text("#warnings") : null,
  points: attr("#scatter", "data-points"),
  trail: attr("#scatter", "data-trail"),
  anchor: val("#anchor-input"),
  selected: [...document.querySelectorAll("#operators .operator.selected")].map((r) => r.getAttribute("data-index")),
  operators: document.querySelectorAll("#operators .operator").length,
  coefs: Object.fromEntries([...document.querySelectorAll("input.coef")].map((c) => [c.getAttribute("data-index"), c.value])),
  T: val("#t-range"),
  t: text("#t-value"),
  play: text("#play"),
  indices: attr("#nn-strip", "data-indices"),
  tiles: document.querySelectorAll("#nn-strip [data-index]").length,
  share: val("#share-url"),
  frame_ms: text("#frame-ms"),
};
"##;

fn trail(v: &Value) -> u64 {
    v["trail"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}

/// Loads the site, checks the badge (engine and why), and plays a path from anchor 5; returns
/// the snapshot after pausing.
fn play_a_path(b: &Browser, url: &str, backend: &str, why: &str) -> Value {
    b.navigate(url);
    let v = b.wait_ready();
    assert_eq!(v["backend"], backend, "badge backend: {v}");
    let badge = v["badge"].as_str().unwrap_or_default();
    match backend {
        // `WebGPU · <adapter>`: Chromium names its adapter (SwiftShader here) at least by vendor
        // and architecture.
        "webgpu" => assert!(
            badge
                .strip_prefix("WebGPU · ")
                .is_some_and(|adapter| !adapter.trim().is_empty()),
            "badge text without the adapter: {v}"
        ),
        _ => assert!(badge.starts_with("CPU — "), "badge text: {v}"),
    }
    assert_eq!(v["why"], why, "badge data-why: {v}");
    assert!(
        v["points"].as_str().is_some_and(|p| p != "0"),
        "scatter has no points: {v}"
    );
    assert_eq!(v["error"], Value::Null, "error shown on a good load: {v}");
    b.shot("loaded");

    b.type_into("#anchor-input", "5");
    b.wait("#anchor-input to hold 5", REACT, |v| v["anchor"] == "5");
    select_and_play(b)
}

/// Selects the first unselected operator row, plays until the trail grows and the neighbour
/// strip changes, then pauses; returns the snapshot after pausing.
fn select_and_play(b: &Browser) -> Value {
    let row = b.js(
        r##"const r = [...document.querySelectorAll("#operators .operator")].find((r) => !r.classList.contains("selected"));
           return r ? r.getAttribute("data-index") : null;"##,
        &[],
    );
    let m = row
        .as_str()
        .unwrap_or_else(|| panic!("no unselected operator row: {}", b.snapshot()))
        .to_owned();
    b.click(&format!("#operators .operator[data-index=\"{m}\"]"));
    b.wait(
        &format!(".operator[data-index=\"{m}\"].selected with input.coef[data-index=\"{m}\"]"),
        REACT,
        |v| {
            v["selected"]
                .as_array()
                .is_some_and(|s| s.iter().any(|x| x == m.as_str()))
                && v["coefs"].get(m.as_str()).is_some()
        },
    );

    b.click("#play");
    // A trail of two or more points: the path has moved, not just been placed.
    let first = b.wait("#scatter[data-trail] > 1 while playing", REACT, |v| {
        trail(v) > 1
    });
    assert_eq!(first["play"], "Pause", "#play text while playing: {first}");
    b.shot("playing");
    let before = first["indices"].clone();
    assert!(
        before.as_str().is_some_and(|s| !s.is_empty()),
        "#nn-strip has no data-indices: {first}"
    );
    b.wait(
        &format!("#nn-strip[data-indices] to change from {before} as the path moves"),
        Duration::from_secs(30),
        |v| v["indices"] != before && v["indices"].as_str().is_some_and(|s| !s.is_empty()),
    );
    b.click("#play");
    let paused = b.wait("#play to read Play after pausing", REACT, |v| {
        v["play"] == "Play"
    });
    // Paused means the time stands still.
    std::thread::sleep(Duration::from_millis(400));
    let still = b.snapshot();
    assert_eq!(paused["t"], still["t"], "t moved while paused");
    b.shot("paused");
    still
}

#[test]
fn webgpu_path_plays_and_its_share_link_restores_the_view() {
    let _one = BROWSER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let server = serve_dist();
    let b = Browser::new("webgpu", Gpu::WebGpu);
    // gpu=1: Chromium's only adapter here is SwiftShader, a software one, on which the viewer
    // would pick the CPU path; the link forces WebGPU so that the WGSL path stays covered.
    let played = play_a_path(&b, &server.url("/?gpu=1"), "webgpu", "gpu-forced");

    // Move one coefficient off its default with the keyboard, as a person would.
    let m = played["selected"][0].as_str().unwrap().to_owned();
    let before = played["coefs"][m.as_str()].clone();
    let slider = format!("input.coef[data-index=\"{m}\"]");
    let r = b
        .session
        .find(&slider)
        .and_then(|e| b.session.send_keys(&e, "\u{E012}\u{E012}\u{E012}"));
    b.check(r);
    let state = b.wait(
        &format!("{slider} to move from {before} after three ArrowLeft presses"),
        REACT,
        |v| !v["coefs"][m.as_str()].is_null() && v["coefs"][m.as_str()] != before,
    );

    b.click("#copy-link");
    let shared = b.wait("#share-url to hold a link", REACT, |v| {
        v["share"].as_str().is_some_and(|s| s.starts_with("http"))
    });
    let link = shared["share"].as_str().unwrap().to_owned();
    assert!(
        link.contains("anchor=5") && link.contains("gpu=1"),
        "share link lacks the anchor or gpu=1: {link}"
    );
    b.assert_console_clean(&[]);
    drop(b);

    // A fresh browser (new session, new profile) opening the link sees the same view.
    let fresh = Browser::new("shared", Gpu::WebGpu);
    fresh.navigate(&link);
    let restored = fresh.wait_ready();
    fresh.shot("restored");
    for key in ["anchor", "selected", "coefs", "T", "t", "backend", "why"] {
        assert_eq!(
            restored[key], state[key],
            "`{key}` not restored from {link}: {restored}"
        );
    }
    assert_eq!(
        restored["warnings"],
        Value::Null,
        "warnings on a link the viewer made: {restored}"
    );
    fresh.assert_console_clean(&[]);
}

#[test]
fn cpu_fallback_is_labelled_and_plays_the_same_path() {
    let _one = BROWSER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let server = serve_dist();
    let b = Browser::new("cpu", Gpu::Off);
    let v = play_a_path(&b, &server.url("/?cpu=1"), "cpu", "cpu-forced");
    assert!(
        v["badge"].as_str().is_some_and(|t| t.contains("cpu=1")),
        "the badge does not say cpu=1 chose the CPU: {v}"
    );
    b.assert_console_clean(&[]);
}

#[test]
fn bad_links_are_reported_in_plain_words_and_the_page_keeps_working() {
    let _one = BROWSER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let server = serve_dist();
    let b = Browser::new("bad-links", Gpu::Off);

    b.navigate(&server.url("/?bundle=does-not-exist.mclr"));
    let v = b.wait("#error to be shown for a missing bundle", LOAD, |v| {
        !v["error"].is_null()
    });
    let error = v["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("does-not-exist.mclr"),
        "#error does not name the file: {v}"
    );
    assert!(
        ["404", "not found", "Not Found"]
            .iter()
            .any(|w| error.contains(w)),
        "#error does not say the file was not found: {v}"
    );
    b.shot("missing-bundle");
    // Still alive: the page answers and keeps its controls.
    assert!(
        b.js("return !!document.querySelector('#badge');", &[])
            .as_bool()
            .unwrap_or(false)
    );
    // The browser itself logs the failed fetch; nothing else may be logged as an error.
    b.assert_console_clean(&["does-not-exist.mclr"]);

    b.navigate(&server.url("/?anchor=abc&ops=zz"));
    let v = b.wait_ready();
    let warnings = v["warnings"]
        .as_str()
        .unwrap_or_else(|| panic!("no #warnings shown: {v}"));
    assert!(
        warnings.contains("anchor") && warnings.contains("abc"),
        "#warnings: {v}"
    );
    assert!(
        warnings.contains("ops") && warnings.contains("zz"),
        "#warnings: {v}"
    );
    assert_eq!(
        v["error"],
        Value::Null,
        "bad parameters must warn, not fail: {v}"
    );
    b.shot("bad-parameters");
    // Ignored parameters leave a working page: a path still plays and moves the neighbours.
    select_and_play(&b);
    b.assert_console_clean(&[]);
}

/// The number of gallery images of the bundle at `path`: what `#scatter[data-points]` must show.
fn gallery_size(path: &Path) -> usize {
    let bytes = std::fs::read(path).unwrap();
    mclr_shared::bundle::decode(&bytes)
        .unwrap_or_else(|e| {
            panic!(
                "{} does not decode: {}",
                path.display(),
                mclr_shared::error_chain(&e)
            )
        })
        .num_gallery()
}

/// Loads `query` and checks that the page shows `file` (by name) with all its gallery points.
fn shows_bundle(b: &Browser, server: &Server, query: &str, file: &Path) {
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let n = gallery_size(file);
    b.navigate(&server.url(query));
    let v = b.wait_ready();
    assert_eq!(v["error"], Value::Null, "error shown loading {name}: {v}");
    assert!(
        v["bundle"].as_str().is_some_and(|s| s.contains(&name)),
        "#bundle-name does not name {name}: {v}"
    );
    assert_eq!(
        v["points"],
        n.to_string(),
        "#scatter[data-points] is not the {n} gallery images of {name}: {v}"
    );
}

/// What `cargo xtask demo` serves: the bundle it just trained and exported (`fresh.mclr`, at
/// `?bundle=fresh.mclr`) and the shipped one (`demo.mclr`, the default address).
#[test]
fn the_demo_serves_its_fresh_bundle_and_the_shipped_one() {
    let _one = BROWSER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dist = workspace_root().join("www/dist");
    let fresh = dist.join("fresh.mclr");
    assert!(
        fresh.is_file(),
        "{} is missing: run `cargo xtask demo --smoke` first (it trains, exports and copies the \
         bundle there; `cargo xtask web` alone clears it)",
        fresh.display()
    );
    let server = serve_dist();
    let b = Browser::new("demo", Gpu::Off);
    shows_bundle(&b, &server, "/?bundle=fresh.mclr&cpu=1", &fresh);
    b.shot("fresh");
    shows_bundle(&b, &server, "/?cpu=1", &dist.join("demo.mclr"));
    b.shot("shipped");
    b.assert_console_clean(&[]);
}
