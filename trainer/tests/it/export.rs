//! `mclr export` and `mclr inspect` end to end: a tiny ManifoldCLR run trained for one epoch on
//! synthetic images, exported with a CIFAR-10 test split written in the official format, then
//! checked against the config, the format's own decoder, an independent PNG decoder and the CPU
//! reference of the prior; and the binary's `inspect` on a good and a corrupt file.

// A panic in a test is a failure with a message, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use candle_core::{Device, Tensor};
use mclr_shared::bundle::{self, Bundle, ImageFormat};
use mclr_shared::operators::PriorNetwork;
use mclr_trainer::config::Config;
use mclr_trainer::data::{ImageSet, Split};
use mclr_trainer::error_chain;
use mclr_trainer::export::{self, ExportOptions};
use mclr_trainer::model::ssl::SslModel;
use mclr_trainer::train::{TrainOptions, checkpoint, load_weights, train_on};

/// Images in the synthetic CIFAR-10 test split.
const TEST_IMAGES: usize = 20;
/// The gallery exported by the shared fixture (a prefix of the test split).
const GALLERY: usize = 14;

/// The CPU-tiny ManifoldCLR of the `train` tests: 32-d features in 4 blocks of 8, 4 operators,
/// reading its data from `data_dir`, with threshold ζ = 0.05.
fn tiny(data_dir: &Path, extra: &[&str]) -> Config {
    let mut sets: Vec<String> = [
        "model.base_width=4",
        "method.block_size=8",
        "method.operators=4",
        "method.threshold=0.05",
        "method.prior_warmup_iters=2",
        "optim.batch_size=8",
        "optim.epochs=1",
        "optim.warmup_epochs=0.5",
        "run.checkpoint_every=1",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    sets.push(format!("data.dir={}", data_dir.display()));
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

/// A trained run directory and its data folder, shared by the tests (training is the slow part).
/// It lives in a fixed folder of Cargo's per-target temporary directory, replaced by each run of
/// this test binary, because a static is never dropped and a `TempDir` would leak ~300 MB of
/// checkpoints per run.
struct Fixture {
    run: PathBuf,
    data: PathBuf,
    test_rgb: Vec<u8>,
    test_labels: Vec<u8>,
    bundle: Bundle,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("export-fixture");
        if root.exists() {
            std::fs::remove_dir_all(&root).unwrap();
        }
        let (run, data) = (root.join("run"), root.join("data"));
        std::fs::create_dir_all(&data).unwrap();
        let test_rgb = support::random_bytes(TEST_IMAGES * 32 * 32 * 3, 5);
        // Classes 7, 8 and 9 never occur, so their heatmap rows must be empty.
        let test_labels: Vec<u8> = (0..TEST_IMAGES).map(|i| (i % 7) as u8).collect();
        support::write_cifar_batch(&data.join("test_batch.bin"), &test_rgb, &test_labels);

        let options = TrainOptions {
            run_dir: run.clone(),
            resume: false,
            device: Device::Cpu,
            stop_after_epochs: None,
            progress: false,
        };
        train_on(&tiny(&data, &[]), train_images(), &options).unwrap();
        std::fs::write(
            run.join(export::RESULTS_FILE),
            r#"{"linear": {"top1": 0.25, "top5": 0.75}, "knn": [{"k": 20, "top1": 0.5}],
                "note": "strings are skipped", "ok": true}"#,
        )
        .unwrap();
        let options = ExportOptions {
            max: Some(GALLERY),
            ..ExportOptions::default()
        };
        let bundle = export::export_run(&run, &options).unwrap();
        Fixture {
            run,
            data,
            test_rgb,
            test_labels,
            bundle,
        }
    })
}

#[test]
fn exported_bundle_round_trips_through_the_format() {
    let bundle = &fixture().bundle;
    bundle::validate(bundle).unwrap();
    let bytes = bundle::encode(bundle).unwrap();
    assert_eq!(&bundle::decode(&bytes).unwrap(), bundle);
}

#[test]
fn bundle_shapes_agree_with_the_config() {
    let f = fixture();
    let b = &f.bundle;
    assert_eq!(b.num_operators(), 4);
    assert_eq!(b.blocks(), 4);
    assert_eq!(b.block_size(), 8);
    assert_eq!(b.feature_dim(), 32);
    assert_eq!(b.num_gallery(), GALLERY);
    assert_eq!(b.gallery.features.dtype, bundle::DType::F16);
    assert_eq!(b.gallery.split, "test");
    assert_eq!(b.num_classes(), 10);
    assert_eq!(b.gallery.class_names[0], "airplane");
    let labels: Vec<u16> = f.test_labels[..GALLERY]
        .iter()
        .map(|&l| u16::from(l))
        .collect();
    assert_eq!(b.gallery.labels.to_u16_vec().unwrap(), labels);
    let indices: Vec<u32> = (0..GALLERY as u32).collect();
    assert_eq!(b.gallery.source_indices.to_u32_vec().unwrap(), indices);
    assert_eq!(b.pca.components.shape, vec![3, 32]);
    assert_eq!(b.stats.class_heatmap.shape, vec![10, 4]);
    // The prior and encoder are the paper's widths whatever the backbone.
    assert_eq!(b.prior.trunk.len(), 3);
    assert_eq!(b.encoder.trunk[0].weight.shape, vec![2048, 64]);
}

#[test]
fn metadata_describes_the_run() {
    let f = fixture();
    let meta = &f.bundle.metadata;
    assert_eq!(meta.dataset, "cifar10");
    assert_eq!(meta.method, "manifoldclr");
    assert_eq!(meta.epochs, 1);
    assert_eq!(meta.steps, 2); // 16 images in batches of 8
    assert!((meta.threshold - 0.05).abs() < 1e-7);
    assert!(meta.producer.starts_with("mclr "), "{}", meta.producer);
    let config = std::fs::read_to_string(f.run.join(checkpoint::CONFIG_FILE)).unwrap();
    assert_eq!(meta.config_toml, config);
    let metrics: Vec<(&str, f64)> = meta
        .metrics
        .iter()
        .filter(|(k, _)| k.as_str() != export::PRIOR_QUANTIZATION_METRIC)
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert!(meta.metrics.contains_key(export::PRIOR_QUANTIZATION_METRIC));
    assert_eq!(
        metrics,
        [
            ("knn.0.k", 20.0),
            ("knn.0.top1", 0.5),
            ("linear.top1", 0.25),
            ("linear.top5", 0.75)
        ]
    );
}

#[test]
fn thumbnails_are_a_png_sheet_of_the_gallery_images() {
    let f = fixture();
    let t = &f.bundle.thumbnails;
    assert_eq!(t.format, ImageFormat::Png);
    assert_eq!((t.tile_px, t.count), (32, GALLERY as u32));
    assert_eq!(t.columns, 4); // ⌈√14⌉
    let sheet = image::load_from_memory_with_format(&t.sheet, image::ImageFormat::Png)
        .unwrap()
        .to_rgb8();
    assert_eq!(sheet.dimensions(), (4 * 32, 4 * 32));
    // Tile i is image i, untransformed: check a few pixels of tile 6 (column 2, row 1).
    for (y, x) in [(0, 0), (5, 17), (31, 31)] {
        let px = sheet.get_pixel(2 * 32 + x as u32, 32 + y as u32).0;
        for (c, &value) in px.iter().enumerate() {
            assert_eq!(value, support::px(&f.test_rgb, 32, 32, 6, y, x, c));
        }
    }
}

#[test]
fn operator_statistics_are_consistent_with_the_operators() {
    let b = &fixture().bundle;
    let psi = b.operators.to_f32_vec().unwrap();
    let norms = b.stats.norms.to_f32_vec().unwrap();
    for (m, op) in psi.chunks_exact(4 * 8 * 8).enumerate() {
        let expected = op.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norms[m] - expected).abs() <= 1e-4 * expected.max(1.0));
    }
    let usage = b.stats.usage.to_f32_vec().unwrap();
    assert!(usage.iter().all(|u| (0.0..=1.0).contains(u)), "{usage:?}");
    // Classes absent from the gallery have an all-zero heatmap row.
    let labels = b.gallery.labels.to_u16_vec().unwrap();
    let heatmap = b.stats.class_heatmap.to_f32_vec().unwrap();
    for class in 0..10_u16 {
        let row = &heatmap[usize::from(class) * 4..][..4];
        if class >= 7 {
            assert!(!labels.contains(&class));
            assert!(row.iter().all(|&v| v == 0.0), "class {class}: {row:?}");
        }
        assert!(row.iter().all(|&v| v >= 0.0));
    }
}

#[test]
fn cpu_prior_of_the_bundle_matches_the_trained_prior() {
    let f = fixture();
    let b = &f.bundle;
    let config =
        Config::resolve(&f.run.join(checkpoint::CONFIG_FILE).to_string_lossy(), &[]).unwrap();
    let model = SslModel::new(&config, 32, &Device::Cpu).unwrap();
    let weights_path = f.run.join(checkpoint::MODEL_FILE);
    let weights = candle_core::safetensors::load(&weights_path, &Device::Cpu).unwrap();
    load_weights(&model, &weights, &weights_path).unwrap();
    let prior = &model.manifold.as_ref().unwrap().prior;

    let features = b.gallery.features.to_f32_vec().unwrap();
    let rows = [0, GALLERY - 1];

    // 1. The shared CPU forward pass on the trained f32 weights equals candle's.
    let exact = prior.export().unwrap();
    let cpu = PriorNetwork::new(exact.to_mlp("prior").unwrap());
    for row in rows {
        let z = &features[row * 32..(row + 1) * 32];
        let expected = cpu.prior(z).unwrap();
        let heads = prior
            .forward(&Tensor::from_slice(z, (1, 32), &Device::Cpu).unwrap())
            .unwrap();
        let loc = heads.loc.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let logscale = heads
            .logscale
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for (a, e) in loc.iter().zip(&expected.loc) {
            assert!((a - e).abs() <= 1e-5, "loc {a} vs {e}");
        }
        for (a, e) in logscale.iter().zip(&expected.logscale) {
            assert!((a - e).abs() <= 1e-5, "logscale {a} vs {e}");
        }
    }

    // 2. The bundle stores int8 weights and records how far that moves the prior's raw heads,
    // relative to their largest magnitude; the record holds, and is small.
    let rel = b.metadata.metrics[export::PRIOR_QUANTIZATION_METRIC] as f32;
    assert!(rel > 0.0 && rel < 0.05, "int8 changes the prior by {rel}");
    let (f32_mlp, int8_mlp) = (
        exact.to_mlp("prior").unwrap(),
        b.prior.to_mlp("prior").unwrap(),
    );
    let mut max_head = 0.0_f32;
    let mut max_diff = 0.0_f32;
    // Over the same images as the export's check: the whole (small) gallery.
    for row in 0..GALLERY {
        let z = &features[row * 32..(row + 1) * 32];
        let (u, v) = (f32_mlp.forward(z).unwrap(), int8_mlp.forward(z).unwrap());
        for (a, q) in u
            .loc
            .iter()
            .chain(&u.scale)
            .zip(v.loc.iter().chain(&v.scale))
        {
            max_diff = max_diff.max((a - q).abs());
            max_head = max_head.max(a.abs());
        }
    }
    assert!(
        max_diff <= rel * max_head * (1.0 + 1e-4) + 1e-7,
        "int8 prior differs by {max_diff}; the recorded bound is {rel} x {max_head}"
    );
}

#[test]
fn gallery_features_are_the_eval_mode_backbone_features() {
    let f = fixture();
    let config =
        Config::resolve(&f.run.join(checkpoint::CONFIG_FILE).to_string_lossy(), &[]).unwrap();
    let model = SslModel::new(&config, 32, &Device::Cpu).unwrap();
    let weights_path = f.run.join(checkpoint::MODEL_FILE);
    let weights = candle_core::safetensors::load(&weights_path, &Device::Cpu).unwrap();
    load_weights(&model, &weights, &weights_path).unwrap();
    // Image 3 through CIFAR-10's eval transform (normalisation only), by hand.
    let norm = mclr_trainer::data::DatasetName::Cifar10
        .spec()
        .normalization;
    let mut x = vec![0.0_f32; 3 * 32 * 32];
    for c in 0..3 {
        for y in 0..32 {
            for xx in 0..32 {
                let v = f32::from(support::px(&f.test_rgb, 32, 32, 3, y, xx, c)) / 255.0;
                x[(c * 32 + y) * 32 + xx] = (v - norm.mean[c]) / norm.std[c];
            }
        }
    }
    let z = model
        .features(
            &Tensor::from_vec(x, (1, 3, 32, 32), &Device::Cpu).unwrap(),
            false,
        )
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let stored = f.bundle.gallery.features.to_f32_vec().unwrap();
    for (s, e) in stored[3 * 32..4 * 32].iter().zip(&z) {
        // f16 keeps 11 significant bits; the transform may round differently in the last ulp.
        assert!((s - e).abs() <= 1e-3 * e.abs().max(1.0), "{s} vs {e}");
    }
}

#[test]
fn max_above_the_split_exports_every_image_and_jpeg_sheets_work() {
    let f = fixture();
    let options = ExportOptions {
        max: Some(1000),
        thumbnail_format: ImageFormat::Jpeg,
        tile_px: 16,
        data_dir: Some(f.data.clone()),
        ..ExportOptions::default()
    };
    let b = export::export_run(&f.run, &options).unwrap();
    assert_eq!(b.num_gallery(), TEST_IMAGES);
    assert_eq!(b.thumbnails.columns, 5);
    let sheet =
        image::load_from_memory_with_format(&b.thumbnails.sheet, image::ImageFormat::Jpeg).unwrap();
    assert_eq!((sheet.width(), sheet.height()), (5 * 16, 4 * 16));
    // The operators do not depend on the gallery.
    assert_eq!(b.stats.norms, f.bundle.stats.norms);
}

#[test]
fn bad_options_are_rejected_before_any_work() {
    let f = fixture();
    for options in [
        ExportOptions {
            max: Some(1),
            ..ExportOptions::default()
        },
        ExportOptions {
            tile_px: 0,
            ..ExportOptions::default()
        },
        ExportOptions {
            gallery: Split::SslTrain,
            ..ExportOptions::default()
        },
    ] {
        let err = export::export_run(&f.run, &options).unwrap_err();
        assert!(
            matches!(err, mclr_trainer::Error::InvalidSetting { .. }),
            "{err}"
        );
    }
}

/// A run folder `name` under `root` with `config`, a `results.json` and a `metrics.jsonl` but no
/// weights: all that a compared run contributes to a bundle.
fn compared_run(root: &Path, name: &str, config: &Config, results: &str, log: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(checkpoint::CONFIG_FILE), config.to_toml().unwrap()).unwrap();
    std::fs::write(dir.join(export::RESULTS_FILE), results).unwrap();
    std::fs::write(dir.join(checkpoint::METRICS_FILE), log).unwrap();
    dir
}

#[test]
fn compared_runs_record_their_results_under_a_prefix_and_their_training_logs() {
    let f = fixture();
    let root = tempfile::tempdir().unwrap();
    let simclr_log =
        "{\"step\":0,\"loss\":{\"total\":6.5}}\n{\"step\":4,\"loss\":{\"total\":6.25}}\n";
    let simclr = compared_run(
        root.path(),
        "simclr-run",
        &tiny(&f.data, &["method.kind=simclr"]),
        r#"{"linear": {"top1": 0.125}, "knn": [{"k": 20, "top1": 0.375}],
            "semi_supervised": [{"method": "pseudo-label", "mean": 0.25}]}"#,
        simclr_log,
    );
    // A second ManifoldCLR run shares the exported run's method: it is labelled by its folder.
    let other = compared_run(
        root.path(),
        "seed-2",
        &tiny(&f.data, &["run.seed=2"]),
        r#"{"linear": {"top1": 0.5}}"#,
        "{\"step\":0}\n",
    );
    let options = ExportOptions {
        max: Some(GALLERY),
        compare: vec![simclr, other],
        ..ExportOptions::default()
    };
    let b = export::export_run(&f.run, &options).unwrap();
    let metrics = &b.metadata.metrics;
    assert_eq!(metrics.get("compare.simclr.linear.top1"), Some(&0.125));
    assert_eq!(metrics.get("compare.simclr.knn.0.top1"), Some(&0.375));
    // Array elements that name their method are keyed by it.
    assert_eq!(
        metrics.get("compare.simclr.semi_supervised.pseudo-label.mean"),
        Some(&0.25)
    );
    assert_eq!(metrics.get("compare.seed-2.linear.top1"), Some(&0.5));
    // The exported run's own metrics are untouched.
    assert_eq!(metrics.get("linear.top1"), Some(&0.25));
    // Every number of both results files: simclr's four (`knn.0.k` included), seed-2's one.
    assert_eq!(
        metrics.len(),
        f.bundle.metadata.metrics.len() + 5,
        "{metrics:?}"
    );
    let labels: Vec<&str> = b
        .run
        .training_logs
        .iter()
        .map(|log| log.label.as_str())
        .collect();
    assert_eq!(labels, ["manifoldclr", "simclr", "seed-2"]);
    assert_eq!(b.run.training_logs[1].jsonl, simclr_log);
    bundle::validate(&b).unwrap();
}

#[test]
fn a_compared_run_on_another_dataset_or_without_a_config_is_refused() {
    let f = fixture();
    let root = tempfile::tempdir().unwrap();
    let stl = compared_run(
        root.path(),
        "stl",
        &Config::resolve("stl10-simclr", &[]).unwrap(),
        "{}",
        "",
    );
    let options = |compare: PathBuf| ExportOptions {
        max: Some(GALLERY),
        compare: vec![compare],
        ..ExportOptions::default()
    };
    let message = error_chain(&export::export_run(&f.run, &options(stl)).unwrap_err());
    assert!(
        message.contains("was trained on stl10, not cifar10"),
        "{message}"
    );
    let missing = root.path().join("nothing-here");
    let message = error_chain(&export::export_run(&f.run, &options(missing)).unwrap_err());
    assert!(message.contains("nothing-here"), "{message}");
    assert!(message.contains("config.toml"), "{message}");
}

#[test]
fn simclr_run_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny(dir.path(), &["method.kind=simclr"]);
    std::fs::write(
        dir.path().join(checkpoint::CONFIG_FILE),
        config.to_toml().unwrap(),
    )
    .unwrap();
    let err = export::export_run(dir.path(), &ExportOptions::default()).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("simclr run"), "{message}");
    assert!(message.contains("only ManifoldCLR runs"), "{message}");
}

#[test]
fn written_bundle_reads_back_and_inspect_summarises_it() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.mclr");
    export::write_bundle(&path, &f.bundle).unwrap();
    let file = export::read_bundle(&path).unwrap();
    assert_eq!(file.bundle, f.bundle);
    assert_eq!(file.format_version, bundle::FORMAT_VERSION);
    assert_eq!(file.len, std::fs::metadata(&path).unwrap().len());
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1);

    let out = Command::new(env!("CARGO_BIN_EXE_mclr"))
        .arg("inspect")
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("format v{}", bundle::FORMAT_VERSION)),
        "{stdout}"
    );
    assert!(stdout.contains("i8 weights"), "{stdout}");
    assert!(stdout.contains("manifoldclr on cifar10"), "{stdout}");
    assert!(
        stdout.contains("M = 4, K = 4 blocks of n = 8, d = 32"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("N = {GALLERY} test images")),
        "{stdout}"
    );
    assert!(stdout.contains("linear.top1 = 0.25"), "{stdout}");
    // The run record: an export, with the run's own training log.
    assert!(
        stdout.contains("record:     exported, model saved at "),
        "{stdout}"
    );
    let log = &f.bundle.run.training_logs[0];
    let records = log.jsonl.lines().count();
    assert!(records > 0, "the exported run logged nothing");
    assert!(
        stdout.contains(&format!(
            "training logs: manifoldclr ({records} records to step "
        )),
        "{stdout}"
    );
}

#[test]
fn inspect_of_a_corrupt_file_fails_with_the_typed_error() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corrupt.mclr");
    let mut bytes = bundle::encode(&f.bundle).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();

    let err = export::read_bundle(&path).unwrap_err();
    assert!(
        matches!(
            err,
            mclr_trainer::Error::Bundle(mclr_shared::Error::ChecksumMismatch { .. })
        ),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_mclr"))
        .arg("inspect")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("corrupt.mclr"), "{stderr}");
    assert!(stderr.contains("checksum mismatch"), "{stderr}");
}

/// A synthetic bundle whose strings carry terminal escape sequences: clear screen, set the window
/// title, write the clipboard (OSC 52), and a right-to-left override.
fn hostile_strings_bundle() -> Bundle {
    let mut b =
        bundle::synthetic::synthetic_bundle(&bundle::synthetic::SyntheticSpec::default()).unwrap();
    b.metadata.dataset = "\x1b[2J\x1b[Hcifar10".to_owned();
    b.metadata.method = "\x1b]0;pwned\x07manifoldclr".to_owned();
    b.metadata.producer = "mclr\u{202e}txt.exe".to_owned();
    b.gallery.split = "test\r".to_owned();
    b.gallery.class_names[0] = "\x1b]52;c;ZWNobyBoaQ==\x07cat".to_owned();
    b.metadata.metrics.insert("\u{9b}31mred".to_owned(), 1.0);
    b
}

#[test]
fn inspect_escapes_control_characters_in_every_bundle_string() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.mclr");
    export::write_bundle(&path, &hostile_strings_bundle()).unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_mclr"))
        .arg("inspect")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let raw: Vec<char> = stdout
        .chars()
        .filter(|&c| (c.is_control() && c != '\n') || ('\u{202a}'..='\u{202e}').contains(&c))
        .collect();
    assert_eq!(raw, Vec::<char>::new(), "{stdout}");
    for shown in [
        "\\u{1b}[2J\\u{1b}[Hcifar10",
        "\\u{1b}]0;pwned\\u{7}manifoldclr",
        "mclr\\u{202e}txt.exe",
        "test\\u{d} images",
        "\\u{1b}]52;c;ZWNobyBoaQ==\\u{7}cat",
        "\\u{9b}31mred = 1",
    ] {
        assert!(stdout.contains(shown), "missing {shown:?} in\n{stdout}");
    }
    assert_eq!(export::escape("a\\b ζ"), "a\\\\b ζ");
}

#[test]
fn inspect_refuses_devices_and_directories_without_reading_them() {
    // Before the fix /dev/zero (length 0 by metadata) was read to the end: forever.
    for path in [Path::new("/dev/zero"), Path::new("/dev/urandom")] {
        if !path.exists() {
            continue;
        }
        let err = error_chain(&export::read_bundle(path).unwrap_err());
        assert!(
            err.starts_with(&format!("reading {}: ", path.display())),
            "{err}"
        );
        assert!(err.contains("not a regular file"), "{err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let err = error_chain(&export::read_bundle(dir.path()).unwrap_err());
    assert!(err.contains("not a regular file"), "{err}");

    // A FIFO with no writer: opening it for reading would block forever.
    let fifo = dir.path().join("pipe.mclr");
    let made = Command::new("mkfifo").arg(&fifo).status();
    if made.is_ok_and(|s| s.success()) {
        let err = error_chain(&export::read_bundle(&fifo).unwrap_err());
        assert!(err.contains("not a regular file"), "{err}");
    }
}

#[test]
fn inspect_reads_at_most_the_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.mclr");
    let limit = bundle::DEFAULT_MAX_PAYLOAD_BYTES + bundle::HEADER_LEN as u64;
    // Sparse: no disk is used for the zeros.
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(limit + 4096).unwrap();
    drop(file);
    let err = export::read_bundle(&path).unwrap_err();
    assert!(
        matches!(
            err,
            mclr_trainer::Error::Bundle(mclr_shared::Error::TooLarge { len, limit: l, .. })
                if l == limit && len == limit + 1
        ),
        "{err}"
    );
}
