//! Per-frame compute time of the viewer's path animation (one step z ← E z plus the k nearest
//! gallery images) in headless Chromium, WebGPU (forced with `gpu=1`) against the CPU path, and
//! the engine the viewer picks by itself where WebGPU is exposed, over a synthetic
//! 10,000 × 512 gallery (16 operators, 8 blocks of 64):
//!
//! ```text
//! cargo xtask web
//! cargo run --release -p mclr-tests --example viewer_frame_bench
//! ```
//!
//! It writes the bundle into `www/dist/`, serves the site, plays a path for a few seconds in each
//! mode and prints a Markdown table of the `#frame-ms` readings (the viewer's own
//! `performance.now()` measurement around the frame's compute). Chromium's WebGPU here is
//! SwiftShader, a CPU implementation: the WebGPU column measures that, not a GPU.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mclr_shared::bundle::synthetic::{SyntheticSpec, synthetic_bundle};
use mclr_shared::bundle::{self};
use mclr_tests::chromium::{self, Gpu};
use mclr_tests::site;
use mclr_tests::webdriver::{Driver, Session};
use serde_json::Value;

/// The benchmark bundle's file name inside `www/dist`.
const BUNDLE: &str = "bench-10k-512.mclr";

/// How long each mode plays.
const PLAY: Duration = Duration::from_secs(12);

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("www")
        .join("dist");
    if !dist.join("index.html").is_file() {
        return Err("www/dist is missing: run `cargo xtask web` first".into());
    }
    write_bundle(&dist.join(BUNDLE))?;
    chromium::require_installed()?;
    let site = site::serve(&dist, 0)?;

    let mut rows = Vec::new();
    for (label, gpu, query) in [
        // `gpu=1`: on a software adapter the viewer would otherwise pick the CPU path.
        ("WebGPU (gpu=1)", Gpu::WebGpu, "&gpu=1"),
        ("CPU (cpu=1)", Gpu::Off, "&cpu=1"),
        // What a visitor gets with WebGPU exposed and no parameter: the viewer's own choice.
        ("viewer's choice", Gpu::WebGpu, ""),
    ] {
        let driver = Driver::start()?;
        let profile = tempfile::tempdir()?;
        let session = driver.session(&chromium::capabilities(profile.path(), gpu))?;
        let url = site.url(&format!(
            "/?bundle={BUNDLE}&anchor=0&ops=0:1,1:0.5&T=3{query}"
        ));
        let (badge, samples) = measure(&session, &url)?;
        session.close()?;
        rows.push((label, badge, samples));
    }

    let mut out = String::new();
    out.push_str("| backend | badge | frames | median ms | p90 ms | min ms |\n|---|---|---:|---:|---:|---:|\n");
    for (label, badge, mut samples) in rows {
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| {
            samples
                .get(((samples.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(f64::NAN)
        };
        out.push_str(&format!(
            "| {label} | {badge} | {} | {:.1} | {:.1} | {:.1} |\n",
            samples.len(),
            at(0.5),
            at(0.9),
            at(0.0)
        ));
    }
    use std::io::Write as _;
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(())
}

/// The synthetic 10k × 512 bundle, written once.
fn write_bundle(path: &PathBuf) -> Result<()> {
    if path.is_file() {
        return Ok(());
    }
    let spec = SyntheticSpec {
        operators: 16,
        blocks: 8,
        block_size: 64,
        gallery: 10_000,
        classes: 10,
        hidden: 64,
        tile_px: 8,
        seed: 7,
    };
    std::fs::write(path, bundle::encode(&synthetic_bundle(&spec)?)?)?;
    Ok(())
}

/// Loads `url`, plays the path for [`PLAY`] and returns the badge text and every distinct
/// `#frame-ms` reading seen.
fn measure(session: &Session, url: &str) -> Result<(String, Vec<f64>)> {
    session.navigate(url)?;
    session.wait_for(
        "body[data-ready=true]",
        Duration::from_secs(120),
        |s, found| {
            let ready = s.execute("return document.body.dataset.ready || '';", &[])?;
            *found = format!("data-ready = {ready}");
            Ok((ready == Value::String("true".into())).then_some(()))
        },
    )?;
    let badge = session.text(&session.find("#badge")?)?;
    session.click(&session.find("#play")?)?;
    let mut samples = Vec::new();
    let mut last = String::new();
    let started = Instant::now();
    while started.elapsed() < PLAY {
        let text = session.text(&session.find("#frame-ms")?)?;
        if text != last {
            if let Some(ms) = text
                .split_whitespace()
                .find_map(|w| w.trim_end_matches("ms").parse::<f64>().ok())
            {
                samples.push(ms);
            }
            last = text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    session.click(&session.find("#play")?)?;
    Ok((badge, samples))
}
