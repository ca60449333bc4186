//! Live bundles and `mclr view`: a tiny ManifoldCLR run on synthetic images writes
//! `live.mclr` + `live-thumbs.png` at its checkpoints (the same sections `mclr export` computes,
//! the operators of the checkpoint), `run.live_every` and `--no-live` control it, and `mclr view`
//! serves a run directory beside a site and nothing outside them.

// A panic in a test is a failure with a message, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use candle_core::Device;
use mclr_shared::bundle::{self, Bundle};
use mclr_trainer::config::{Config, RunConfig};
use mclr_trainer::data::ImageSet;
use mclr_trainer::export::live::{self, LIVE_BUNDLE_FILE, LIVE_SHEET_FILE};
use mclr_trainer::export::{self, ExportOptions};
use mclr_trainer::model::operators::PSI_VAR_NAME;
use mclr_trainer::train::{TrainOptions, checkpoint, train_on};

/// Images in the synthetic CIFAR-10 test split.
const TEST_IMAGES: usize = 20;
/// The live gallery of the tests (a prefix of the test split).
const LIVE_GALLERY: usize = 12;

/// `--set` values of the CPU-tiny ManifoldCLR of the `train` tests, for the library and the CLI.
const TINY_SETS: [&str; 9] = [
    "model.base_width=4",
    "method.block_size=8",
    "method.operators=4",
    "method.prior_warmup_iters=2",
    "optim.batch_size=8",
    "optim.epochs=2",
    "optim.warmup_epochs=0.5",
    "run.log_every=1",
    "run.checkpoint_every=1",
];

/// The CPU-tiny ManifoldCLR of the `train` tests, reading its test split from `data_dir`.
fn tiny(data_dir: &Path, extra: &[&str]) -> Config {
    let mut sets: Vec<String> = TINY_SETS.iter().map(|s| (*s).to_owned()).collect();
    sets.push(format!("data.dir={}", data_dir.display()));
    sets.push(format!("run.live_gallery={LIVE_GALLERY}"));
    sets.extend(extra.iter().map(|s| (*s).to_owned()));
    Config::resolve("demo", &sets).unwrap()
}

/// 16 synthetic 32×32 training images in 4 classes.
fn train_images() -> Arc<ImageSet> {
    let (n, side) = (16_usize, 32_usize);
    let pixels = support::random_bytes(n * side * side * 3, 11);
    let labels = (0..n).map(|i| (i % 4) as u16).collect();
    let names = (0..4).map(|c| format!("class{c}")).collect();
    Arc::new(ImageSet::new(side, side, pixels, Some(labels), names).unwrap())
}

/// A data folder holding a synthetic CIFAR-10 test split.
fn data_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let rgb = support::random_bytes(TEST_IMAGES * 32 * 32 * 3, 5);
    let labels: Vec<u8> = (0..TEST_IMAGES).map(|i| (i % 10) as u8).collect();
    support::write_cifar_batch(&dir.path().join("test_batch.bin"), &rgb, &labels);
    dir
}

fn options(dir: &Path, resume: bool, stop: Option<u64>) -> TrainOptions {
    TrainOptions {
        run_dir: dir.to_owned(),
        resume,
        device: Device::Cpu,
        stop_after_epochs: stop,
        progress: false,
    }
}

fn read_live(run: &Path) -> Bundle {
    bundle::decode(&std::fs::read(run.join(LIVE_BUNDLE_FILE)).unwrap()).unwrap()
}

#[test]
fn a_short_run_writes_a_live_bundle_of_its_checkpoint_as_export_assembles_it() {
    let data = data_folder();
    let run = tempfile::tempdir().unwrap();
    let config = tiny(data.path(), &[]);
    let summary = train_on(&config, train_images(), &options(run.path(), false, None)).unwrap();

    let live = read_live(run.path());
    bundle::validate(&live).unwrap();
    assert!(live.run.live, "the live flag is set");
    assert!(live.run.training_logs.is_empty());
    let age_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - live.run.saved_unix_ms;
    assert!(age_ms < 600_000, "saved {age_ms} ms ago");
    assert_eq!(u64::from(live.metadata.epochs), summary.epochs_done);
    assert_eq!(live.metadata.steps, summary.steps);
    assert_eq!(live.num_gallery(), LIVE_GALLERY);
    assert_eq!(live.gallery.split, "test");

    // The sheet lives beside the bundle, written once, and fits the bundle's geometry.
    assert_eq!(live.thumbnails.sheet_file.as_deref(), Some(LIVE_SHEET_FILE));
    assert!(live.thumbnails.sheet.is_empty());
    let sheet = std::fs::read(run.path().join(LIVE_SHEET_FILE)).unwrap();
    bundle::check_sheet(&live.thumbnails, &sheet).unwrap();

    // The operators are the last checkpoint's.
    let last = checkpoint::epoch_dir(run.path(), summary.epochs_done);
    let (weights, _, state) = checkpoint::read(&last, &Device::Cpu).unwrap();
    assert_eq!(state.step, live.metadata.steps);
    let psi: Vec<f32> = weights[PSI_VAR_NAME]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(live.operators.to_f32_vec().unwrap(), psi);

    // Everything computed from the model is what `mclr export` computes from the checkpoint.
    let exported = export::export_run(
        run.path(),
        &ExportOptions {
            max: Some(LIVE_GALLERY),
            ..ExportOptions::default()
        },
    )
    .unwrap();
    assert_eq!(live.operators, exported.operators);
    assert_eq!(live.prior, exported.prior);
    assert_eq!(live.encoder, exported.encoder);
    assert_eq!(live.gallery, exported.gallery);
    assert_eq!(live.pca, exported.pca);
    assert_eq!(live.stats, exported.stats);
    // No evaluation results and no quantisation check: export's own measure of int8 storage.
    assert!(
        live.metadata.metrics.is_empty(),
        "{:?}",
        live.metadata.metrics
    );
    assert_eq!(
        exported.metadata.metrics.keys().collect::<Vec<_>>(),
        [export::PRIOR_QUANTIZATION_METRIC]
    );
    assert_eq!(live.metadata.config_toml, exported.metadata.config_toml);
    assert_eq!(sheet, exported.thumbnails.sheet, "the same sprite sheet");
    assert!(!exported.run.live);
}

#[test]
fn live_every_2_writes_at_the_second_checkpoint_and_the_last_and_the_sheet_once() {
    let data = data_folder();
    let run = tempfile::tempdir().unwrap();
    let config = tiny(data.path(), &["optim.epochs=3", "run.live_every=2"]);
    let (bundle_path, sheet_path) = (
        run.path().join(LIVE_BUNDLE_FILE),
        run.path().join(LIVE_SHEET_FILE),
    );
    train_on(
        &config,
        train_images(),
        &options(run.path(), false, Some(1)),
    )
    .unwrap();
    assert!(
        !bundle_path.exists(),
        "no live bundle at the first checkpoint"
    );
    assert!(!sheet_path.exists());

    train_on(&config, train_images(), &options(run.path(), true, Some(2))).unwrap();
    assert_eq!(read_live(run.path()).metadata.epochs, 2);
    let sheet_id = file_id(&sheet_path);

    train_on(&config, train_images(), &options(run.path(), true, None)).unwrap();
    assert_eq!(
        read_live(run.path()).metadata.epochs,
        3,
        "the last checkpoint"
    );
    assert_eq!(file_id(&sheet_path), sheet_id, "the sheet is not rewritten");

    // A missing sheet is written again; a live bundle never leaves a partial file behind.
    std::fs::remove_file(&sheet_path).unwrap();
    let longer = tiny(
        data.path(),
        &["optim.epochs=4", "run.live_every=2", "run.live_gallery=13"],
    );
    train_on(&longer, train_images(), &options(run.path(), true, None)).unwrap();
    let live = read_live(run.path());
    assert_eq!((live.metadata.epochs, live.num_gallery()), (4, 13));
    bundle::check_sheet(&live.thumbnails, &std::fs::read(&sheet_path).unwrap()).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(run.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".mclr-partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Inode and modification time: a file rewritten by rename changes both.
fn file_id(path: &Path) -> (u64, std::time::SystemTime) {
    let meta = std::fs::metadata(path).unwrap();
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    (inode, meta.modified().unwrap())
}

#[test]
fn no_live_simclr_and_a_missing_test_split_write_none_and_training_goes_on() {
    let data = data_folder();
    for (label, config) in [
        ("live_every = 0", tiny(data.path(), &["run.live_every=0"])),
        ("simclr", tiny(data.path(), &["method.kind=simclr"])),
        (
            "no test split",
            tiny(&data.path().join("missing"), &["run.live_every=1"]),
        ),
    ] {
        let run = tempfile::tempdir().unwrap();
        let summary = train_on(&config, train_images(), &options(run.path(), false, None))
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(summary.epochs_done, 2, "{label}");
        for file in [LIVE_BUNDLE_FILE, LIVE_SHEET_FILE] {
            assert!(!run.path().join(file).exists(), "{label}: {file}");
        }
    }

    // The live settings are not training settings: a resumed run may turn them on.
    let run = tempfile::tempdir().unwrap();
    let off = tiny(data.path(), &["run.live_every=0"]);
    train_on(&off, train_images(), &options(run.path(), false, Some(1))).unwrap();
    let on = tiny(data.path(), &["run.live_every=1"]);
    train_on(&on, train_images(), &options(run.path(), true, None)).unwrap();
    assert_eq!(read_live(run.path()).metadata.epochs, 2);
}

#[test]
fn the_cli_flags_set_run_live_every_and_no_live_writes_none() {
    // The full dataset on disk, as `mclr train` reads it: 5 small training batches and the test
    // split.
    let data = data_folder();
    for b in 1..=5 {
        let rgb = support::random_bytes(8 * 32 * 32 * 3, b);
        let labels: Vec<u8> = (0..8).map(|i| (i % 10) as u8).collect();
        support::write_cifar_batch(
            &data.path().join(format!("data_batch_{b}.bin")),
            &rgb,
            &labels,
        );
    }
    let train = |flag: &[&str]| {
        let run = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_mclr"))
            .args(["--quiet", "train", "--config", "demo", "--device", "cpu"])
            .args(TINY_SETS.iter().flat_map(|s| ["--set", s]))
            .args(["--set", "data.subset=16", "--set"])
            .arg(format!("run.live_gallery={LIVE_GALLERY}"))
            .arg("--set")
            .arg(format!("data.dir={}", data.path().display()))
            .arg("--run-dir")
            .arg(run.path())
            .args(flag)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{flag:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let saved = Config::resolve(
            &run.path().join(checkpoint::CONFIG_FILE).to_string_lossy(),
            &[],
        )
        .unwrap();
        (run, saved.run.live_every)
    };
    let (run, every) = train(&["--no-live"]);
    assert_eq!(every, 0, "recorded in config.toml");
    assert!(!run.path().join(LIVE_BUNDLE_FILE).exists());
    assert!(!run.path().join(LIVE_SHEET_FILE).exists());
    let (run, every) = train(&["--live-every", "2"]);
    assert_eq!(every, 2);
    assert_eq!(
        read_live(run.path()).metadata.epochs,
        2,
        "the last checkpoint"
    );
}

#[test]
fn the_schedule_counts_checkpoints_from_the_start_and_always_takes_the_last() {
    let run = |checkpoint_every, live_every| RunConfig {
        checkpoint_every,
        live_every,
        ..RunConfig::default()
    };
    let due = |r: &RunConfig, total: u64| -> Vec<u64> {
        (1..=total).filter(|&e| live::due(r, e, total)).collect()
    };
    assert_eq!(due(&run(1, 1), 3), [1, 2, 3]);
    assert_eq!(due(&run(1, 2), 5), [2, 4, 5]);
    assert_eq!(due(&run(10, 1), 35), [10, 20, 30, 35]);
    assert_eq!(due(&run(10, 3), 100), [30, 60, 90, 100]);
    assert_eq!(due(&run(1, 0), 3), Vec::<u64>::new());
    assert_eq!(RunConfig::default().live_every, 1);
}

/// `mclr view` as a child process, killed when dropped.
struct Viewer(Child);

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `mclr view RUN --port 0 --site SITE` and returns it with the URL it printed.
fn start_view(run: &Path, site: &Path) -> (Viewer, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mclr"))
        .args(["view", "--port", "0", "--site"])
        .arg(site)
        .arg(run)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let viewer = Viewer(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    (viewer, line.trim().to_owned())
}

/// `GET target` on `addr` (host:port); the status line and the body.
fn get(addr: &str, target: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {target} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

#[test]
fn mclr_view_serves_the_site_and_the_run_and_nothing_outside_them() {
    let outer = tempfile::tempdir().unwrap();
    let (run, site) = (outer.path().join("run"), outer.path().join("site"));
    std::fs::create_dir_all(&run).unwrap();
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(outer.path().join("config.toml"), "SECRET outside").unwrap();
    std::fs::write(site.join("index.html"), "<p>viewer</p>").unwrap();
    std::fs::write(run.join("config.toml"), "name = \"tiny\"").unwrap();
    std::fs::write(run.join("metrics.jsonl"), "{\"step\":0}\n").unwrap();
    std::fs::write(run.join("live.mclr"), "LIVE").unwrap();

    let (_viewer, url) = start_view(&run, &site);
    let rest = url
        .strip_prefix("http://127.0.0.1:")
        .unwrap_or_else(|| panic!("{url}"));
    let (port, query) = rest.split_once('/').unwrap();
    assert_eq!(query, "?bundle=run/live.mclr&follow=1");
    let addr = format!("127.0.0.1:{port}");
    assert_eq!(
        get(&addr, "/"),
        ("HTTP/1.1 200 OK".into(), "<p>viewer</p>".into())
    );
    assert_eq!(
        get(&addr, &format!("/{query}")).1,
        "<p>viewer</p>",
        "the printed URL opens the page"
    );
    assert_eq!(
        get(&addr, "/run/metrics.jsonl"),
        ("HTTP/1.1 200 OK".into(), "{\"step\":0}\n".into())
    );
    assert_eq!(get(&addr, "/run/config.toml").1, "name = \"tiny\"");
    for target in [
        "/run/../config.toml",
        "/run/%2e%2e/config.toml",
        "/../config.toml",
        "/run/%2F..%2Fconfig.toml",
    ] {
        let (status, body) = get(&addr, target);
        assert_eq!(status, "HTTP/1.1 403 Forbidden", "{target}");
        assert!(!body.contains("SECRET"), "{target}");
    }

    // Without a live bundle but with an exported one, the URL opens that, without following.
    std::fs::remove_file(run.join("live.mclr")).unwrap();
    std::fs::write(run.join("bundle.mclr"), "EXPORTED").unwrap();
    let (_viewer, url) = start_view(&run, &site);
    assert!(url.ends_with("/?bundle=run/bundle.mclr"), "{url}");
}

#[test]
fn mclr_view_refuses_a_folder_that_is_not_a_run_and_a_missing_site() {
    let outer = tempfile::tempdir().unwrap();
    let view = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_mclr"))
            .arg("view")
            .args(args)
            .current_dir(outer.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let not_a_run = outer.path().to_string_lossy().into_owned();
    let err = view(&["--port", "0", &not_a_run]);
    assert!(err.contains("is not a run directory"), "{err}");
    std::fs::write(outer.path().join("config.toml"), "").unwrap();
    let err = view(&["--port", "0", &not_a_run]);
    assert!(err.contains("cargo xtask web"), "{err}");
    let err = view(&["--port", "0", "--site", &not_a_run, &not_a_run]);
    assert!(err.contains("has no index.html"), "{err}");
}
