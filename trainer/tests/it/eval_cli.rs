//! `mclr eval RUN`: a tiny trained run on synthetic CIFAR-10 files, evaluated by the real binary
//! with every protocol; results.json holds every protocol's numbers, results.md the table, and bad
//! input is refused with a message that says what is wrong.

// Fixture builders outside #[test] functions: a failed setup is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};

use candle_core::Device;
use mclr_trainer::config::Config;
use mclr_trainer::data::ImageSet;
use mclr_trainer::eval::suite::{EvalResults, RESULTS_FILE, RESULTS_TABLE_FILE};
use mclr_trainer::train::{TrainOptions, train_on};

/// Images per synthetic training batch file (five files) and in the test file.
const PER_TRAIN_FILE: usize = 12;
const TEST_IMAGES: usize = 30;

/// Evaluation settings small enough for a test, every protocol still running for real.
const TINY_EVAL: [&str; 7] = [
    "eval.linear_epochs=20",
    "eval.semisup_trials=2",
    "eval.semisup_iterations=15",
    "eval.semisup_hidden=16",
    "eval.kmeans_rows=25",
    "eval.augment_nn_queries=10",
    "eval.identity_repeats=1",
];

struct Fixture {
    run: PathBuf,
    data: PathBuf,
}

/// A run trained for one epoch on 16 in-memory images, and a CIFAR-10 folder (train and test
/// files in the official binary format) for the evaluation to read.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("eval-cli-fixture");
        if root.exists() {
            std::fs::remove_dir_all(&root).unwrap();
        }
        let (run, data) = (root.join("run"), root.join("data"));
        std::fs::create_dir_all(&data).unwrap();
        for b in 1..=5 {
            let rgb = support::random_bytes(PER_TRAIN_FILE * 32 * 32 * 3, 100 + b as u64);
            let labels: Vec<u8> = (0..PER_TRAIN_FILE).map(|i| (i % 10) as u8).collect();
            support::write_cifar_batch(&data.join(format!("data_batch_{b}.bin")), &rgb, &labels);
        }
        let rgb = support::random_bytes(TEST_IMAGES * 32 * 32 * 3, 7);
        let labels: Vec<u8> = (0..TEST_IMAGES).map(|i| (i % 10) as u8).collect();
        support::write_cifar_batch(&data.join("test_batch.bin"), &rgb, &labels);

        let config = Config::resolve(
            "demo",
            &[
                "model.base_width=4".into(),
                "method.block_size=8".into(),
                "method.operators=4".into(),
                "method.prior_warmup_iters=2".into(),
                "optim.batch_size=8".into(),
                "optim.epochs=1".into(),
                "optim.warmup_epochs=0.5".into(),
                format!("data.dir={}", data.display()),
            ],
        )
        .unwrap();
        let pixels = support::random_bytes(16 * 32 * 32 * 3, 11);
        let labels = (0..16).map(|i| (i % 4) as u16).collect();
        let names = (0..4).map(|c| format!("class{c}")).collect();
        let images = Arc::new(ImageSet::new(32, 32, pixels, Some(labels), names).unwrap());
        let options = TrainOptions {
            run_dir: run.clone(),
            resume: false,
            device: Device::Cpu,
            stop_after_epochs: None,
            progress: false,
        };
        train_on(&config, images, &options).unwrap();
        Fixture { run, data }
    })
}

/// `mclr eval RUN` with the tiny settings, the fixture's data and `extra` arguments.
fn eval(run: &Path, extra: &[&str]) -> Output {
    let f = fixture();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mclr"));
    cmd.arg("--quiet").arg("eval").arg(run);
    for set in TINY_EVAL {
        cmd.args(["--set", set]);
    }
    cmd.arg("--set")
        .arg(format!("data.dir={}", f.data.display()));
    cmd.args(extra);
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn read_results(dir: &Path) -> EvalResults {
    serde_json::from_slice(&std::fs::read(dir.join(RESULTS_FILE)).unwrap()).unwrap()
}

#[test]
fn eval_writes_every_protocol_to_results_json_and_a_table_to_results_md() {
    let f = fixture();
    let out = eval(&f.run, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let results = read_results(&f.run);
    assert_eq!(results.weights, "trained");
    assert_eq!((results.train_rows, results.test_rows), (60, TEST_IMAGES));
    assert_eq!(results.feature_dim, 32);
    let r = &results.report;
    let unit = |x: f64| (0.0..=1.0).contains(&x);
    let linear = r.linear.unwrap();
    assert!(
        unit(linear.top1) && linear.top5 >= linear.top1,
        "{linear:?}"
    );
    assert_eq!(linear.epochs, 20);
    assert_eq!(r.knn.unwrap().k, 5);
    assert_eq!(r.weighted_knn.unwrap().k, 200);
    assert_eq!(r.kmeans.unwrap().rows, 25);
    let methods: Vec<&str> = r
        .semi_supervised
        .iter()
        .map(|s| s.method.as_str())
        .collect();
    assert_eq!(
        methods,
        [
            "learned-operators",
            "pseudo-label",
            "mixup",
            "featmatch",
            "supervised-only"
        ]
    );
    for s in &r.semi_supervised {
        assert_eq!((s.trials.len(), s.iterations), (2, 15), "{s:?}");
        let mean = s.trials.iter().sum::<f64>() / 2.0;
        assert!((s.mean - mean).abs() < 1e-12 && unit(s.mean));
        // Only the methods with confident pseudo-labels count them.
        let counted = !matches!(s.method.as_str(), "mixup" | "supervised-only");
        assert_eq!(s.pseudo_labels.is_some(), counted, "{s:?}");
    }
    let identity = r.identity.as_ref().unwrap();
    // The identity protocol scores the linear protocol's probe on the clean test features.
    assert_eq!(identity.repeats, 1);
    assert_eq!(
        (identity.clean.mean, identity.clean.std),
        (linear.top1, 0.0)
    );
    assert!(identity.mean_relative_shift >= 0.0);
    let nn = r.augmentation_nn.as_ref().unwrap();
    // The authors' setting by default: 20 training rows (the last 20 of these 60).
    assert_eq!((nn.queries, nn.samples_per_query), (20, 8));
    assert!(nn.setting.contains("1337"), "{}", nn.setting);
    assert!(results.skipped.is_empty(), "{:?}", results.skipped);
    for step in [
        "features",
        "linear",
        "knn",
        "kmeans",
        "semisup",
        "identity",
        "augment-nn",
    ] {
        assert!(results.seconds.contains_key(step), "no time for {step}");
    }

    let table = std::fs::read_to_string(f.run.join(RESULTS_TABLE_FILE)).unwrap();
    assert!(table.contains("| protocol | trained, 1 epoch |"), "{table}");
    let top1 = format!("| linear probe, top-1 | {:.1}% |", 100.0 * linear.top1);
    assert!(table.contains(&top1), "{table}");
    let semi = &r.semi_supervised[0];
    let cell = format!("{:.1}% ± {:.1} |", 100.0 * semi.mean, 100.0 * semi.std);
    assert!(table.contains(&cell), "{table}");
    let pseudo = r.semi_supervised[0].pseudo_labels.unwrap();
    let row = format!(
        "| semi-supervised learned-operators: confident share (pseudo-labels right), first → last \
         tenth of the iterations | {:.1}% (",
        100.0 * pseudo.first.confident_share()
    );
    assert!(table.contains(&row), "{row} not in {table}");
    // The identity rows are the authors' protocol first, then the variants, each labelled.
    for label in [
        "| identity (authors' protocol, 1 repeats): probe on clean test features |",
        "| identity (authors' protocol): moved by fixed-prior (hyperprior) samples |",
        "| identity (authors' protocol): random moves of norm dist² (their quirk) |",
        "| identity, variant: random moves of matched norm dist |",
        "| augmentation NN (the authors' setting: 20 training images from index 1337, Euclidean, \
         training gallery): label agreement (unmoved) |",
    ] {
        assert!(table.contains(label), "{label} not in {table}");
    }
    // The table is also what the command prints.
    assert_eq!(String::from_utf8_lossy(&out.stdout), table);
}

#[test]
fn random_init_baseline_is_written_apart_and_compared_in_one_table() {
    let f = fixture();
    let out_dir = f.run.join("baseline-test");
    let trained = f.run.join("trained-for-compare");
    let first = eval(
        &f.run,
        &[
            "--protocols",
            "linear,knn",
            "--out",
            trained.to_str().unwrap(),
        ],
    );
    assert!(first.status.success(), "{}", text(&first));
    let compare = trained.join(RESULTS_FILE);
    let out = eval(
        &f.run,
        &[
            "--random-init",
            "--protocols",
            "linear,knn",
            "--out",
            out_dir.to_str().unwrap(),
            "--compare",
            compare.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let baseline = read_results(&out_dir);
    assert_eq!(baseline.weights, "random-init");
    assert!(baseline.report.semi_supervised.is_empty() && baseline.report.kmeans.is_none());
    let table = std::fs::read_to_string(out_dir.join(RESULTS_TABLE_FILE)).unwrap();
    assert!(
        table.contains("| protocol | random init (untrained) | trained, 1 epoch |"),
        "{table}"
    );
    // Protocols not run are left out of the table rather than shown as empty rows.
    assert!(!table.contains("k-means"), "{table}");
}

#[test]
fn unknown_protocol_and_training_settings_are_refused_with_what_is_allowed() {
    let f = fixture();
    let out = eval(&f.run, &["--protocols", "linear,telepathy"]);
    assert!(!out.status.success());
    let message = text(&out);
    assert!(message.contains("telepathy"), "{message}");
    assert!(message.contains("augment-nn"), "{message}");

    let out = eval(&f.run, &["--set", "optim.epochs=5"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("only eval.* and data.*"),
        "{}",
        text(&out)
    );
}

#[test]
fn missing_run_directory_is_an_error_naming_it() {
    let missing = fixture().run.join("no-such-run");
    let out = eval(&missing, &[]);
    assert!(!out.status.success());
    let message = text(&out);
    assert!(message.contains("no-such-run"), "{message}");
    assert!(message.contains("config.toml"), "{message}");
}
