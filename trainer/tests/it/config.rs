//! The paper's configurations (docs/method.md §9), overrides and the resolved config a run saves.

// A panic in a test is a failure with a message, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mclr_trainer::config::{BUILTIN, Config, KlWarmup, Method};
use mclr_trainer::error_chain;

fn get(name: &str) -> Config {
    Config::resolve(name, &[]).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_builtin_config_resolves_and_is_named_for_itself() {
    for (name, _) in BUILTIN {
        let c = get(name);
        assert_eq!(c.name, name);
        c.validate().unwrap();
    }
}

#[test]
fn builtin_configs_match_the_papers_table() {
    // (name, head, M, ζ, J, w_m, w_KL, KL warm-up, w_shift, prior warm-up, backbone lr)
    type Row = (
        &'static str,
        bool,
        usize,
        f32,
        usize,
        f32,
        f32,
        KlWarmup,
        f32,
        u64,
        f64,
    );
    let exp = KlWarmup::Exponential;
    let none = KlWarmup::None;
    let rows: [Row; 9] = [
        (
            "cifar10-manifoldclr",
            false,
            16,
            0.0,
            1,
            1.0,
            1e-5,
            exp,
            0.0,
            5000,
            3e-3,
        ),
        (
            "stl10-manifoldclr",
            false,
            64,
            0.0,
            1,
            1.0,
            1e-5,
            exp,
            0.0,
            5000,
            2e-3,
        ),
        (
            "tin-manifoldclr",
            false,
            128,
            0.0,
            1,
            1.0,
            1e-5,
            exp,
            0.0,
            5000,
            2e-3,
        ),
        (
            "cifar10-manifoldclr-proj",
            true,
            16,
            0.0,
            1,
            10.0,
            1e-5,
            none,
            1e-3,
            10000,
            3e-3,
        ),
        (
            "stl10-manifoldclr-proj",
            true,
            64,
            0.0,
            1,
            10.0,
            1e-5,
            none,
            1e-3,
            10000,
            2e-3,
        ),
        (
            "tin-manifoldclr-proj",
            true,
            128,
            0.0,
            1,
            10.0,
            1e-5,
            none,
            1e-3,
            10000,
            2e-3,
        ),
        (
            "cifar10-manifoldclr-thresh",
            true,
            32,
            0.01,
            20,
            10.0,
            1e-3,
            none,
            1e-2,
            10000,
            3e-3,
        ),
        (
            "stl10-manifoldclr-thresh",
            true,
            128,
            0.01,
            20,
            10.0,
            1e-3,
            none,
            1e-3,
            10000,
            2e-3,
        ),
        (
            "tin-manifoldclr-thresh",
            true,
            128,
            0.01,
            20,
            10.0,
            1e-3,
            none,
            1e-3,
            10000,
            2e-3,
        ),
    ];
    for (name, head, m, zeta, j, wm, wkl, klw, wshift, warm, lr) in rows {
        let c = get(name);
        assert_eq!(c.method.kind, Method::Manifoldclr, "{name}");
        assert_eq!(c.model.projection_head, head, "{name}");
        assert_eq!(c.method.operators, m, "{name}");
        assert_eq!(c.method.threshold, zeta, "{name}");
        assert_eq!(c.method.best_of_j, j, "{name}");
        assert_eq!(c.loss.manifold_weight, wm, "{name}");
        assert_eq!(c.loss.kl_weight, wkl, "{name}");
        assert_eq!(c.loss.kl_warmup, klw, "{name}");
        assert_eq!(c.loss.shift_weight, wshift, "{name}");
        assert_eq!(c.method.prior_warmup_iters, warm, "{name}");
        assert_eq!(c.optim.backbone.lr, lr, "{name}");
        // Ghost batch norm (groups of 256) where the reference trained on two GPUs.
        let ghost = if name.ends_with("-thresh") { 256 } else { 0 };
        assert_eq!(c.model.bn_group, ghost, "{name}");
        // Shared by every row (docs/method.md §2, §7).
        assert_eq!(
            (c.model.base_width, c.method.block_size),
            (64, 64),
            "{name}"
        );
        assert_eq!((c.optim.epochs, c.optim.batch_size), (1000, 512), "{name}");
        assert_eq!(
            (c.optim.operators.lr, c.optim.operators.clip),
            (1e-3, 0.1),
            "{name}"
        );
        assert_eq!(
            (c.optim.coefficients.lr, c.optim.coefficients.clip),
            (1e-4, 1.0),
            "{name}"
        );
        let wd = if name == "tin-manifoldclr-proj" {
            1e-4
        } else {
            1e-3
        };
        assert_eq!(c.optim.operators.weight_decay, wd, "{name}");
    }
    for ds in ["cifar10", "stl10", "tin"] {
        for (suffix, head) in [("simclr", true), ("simclr-nohead", false)] {
            let c = get(&format!("{ds}-{suffix}"));
            assert_eq!(c.method.kind, Method::Simclr);
            assert_eq!(c.model.projection_head, head);
            assert_eq!(
                c.optim.backbone.lr,
                if ds == "cifar10" { 3e-3 } else { 2e-3 }
            );
        }
    }
    let datasets: Vec<String> = ["stl10-simclr", "tin-simclr"]
        .iter()
        .map(|n| get(n).data.dataset)
        .collect();
    assert_eq!(datasets, ["stl10", "tiny-imagenet"]);
}

#[test]
fn overrides_set_nested_keys_with_typed_values() {
    let sets = [
        "optim.backbone.lr=1e-4",
        "method.kind=simclr",
        "data.subset = 100",
        "model.projection_head=true",
    ];
    let c = Config::resolve("demo", &sets.map(String::from)).unwrap();
    assert_eq!(c.optim.backbone.lr, 1e-4);
    assert_eq!(c.method.kind, Method::Simclr);
    assert_eq!(c.data.subset, 100);
    assert!(c.model.projection_head);
}

#[test]
fn unknown_override_key_is_an_error_naming_it() {
    let err = Config::resolve("demo", &["optim.learning_rate=1".into()])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`optim.learning_rate`") && err.contains("optim.backbone.lr"),
        "{err}"
    );
    let err = Config::resolve("demo", &["no-equals-sign".into()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("key=value"), "{err}");
}

#[test]
fn invalid_values_are_rejected_naming_the_key() {
    let err = Config::resolve("demo", &["method.block_size=48".into()])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("method.block_size") && err.contains("d = 64"),
        "{err}"
    );
    let err = Config::resolve("demo", &["data.dataset=imagenet".into()])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("imagenet") && err.contains("tiny-imagenet"),
        "{err}"
    );
    let err = error_chain(&Config::resolve("demo", &["method.kind=byol".into()]).unwrap_err());
    assert!(err.contains("byol"), "{err}");
}

#[test]
fn unknown_config_name_lists_the_builtins() {
    let err = Config::resolve("cifar100-manifoldclr", &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cifar100-manifoldclr") && err.contains("cifar10-manifoldclr-thresh"),
        "{err}"
    );
}

#[test]
fn config_file_with_unknown_key_is_rejected_and_resolved_config_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[optim]\nepochz = 3\n").unwrap();
    let err = error_chain(&Config::resolve(bad.to_str().unwrap(), &[]).unwrap_err());
    assert!(
        err.contains(&bad.display().to_string()) && err.contains("epochz"),
        "{err}"
    );

    let original =
        Config::resolve("cifar10-manifoldclr-thresh", &["optim.epochs=7".into()]).unwrap();
    let saved = dir.path().join("cifar10-manifoldclr-thresh.toml");
    std::fs::write(&saved, original.to_toml().unwrap()).unwrap();
    assert_eq!(
        Config::resolve(saved.to_str().unwrap(), &[]).unwrap(),
        original
    );
}

#[test]
fn an_unreadable_config_file_is_reported_by_the_binary_with_the_os_error_once() {
    let dir = tempfile::tempdir().unwrap();
    // A folder given as the config file: it exists, but reading it fails in the OS.
    let config = dir.path().join("config.toml");
    std::fs::create_dir(&config).unwrap();
    let os_error = std::fs::read_to_string(&config).unwrap_err().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mclr"))
        .args(["train", "--config"])
        .arg(&config)
        .arg("--run-dir")
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("reading config {}", config.display())),
        "{stderr}"
    );
    assert_eq!(stderr.matches(&os_error).count(), 1, "{stderr}");
}

#[test]
fn run_names_must_be_plain_folder_names() {
    for (name, problem) in [
        ("../escape", "contains `..`"),
        ("..", "contains `..`"),
        ("a/../../b", "contains `..`"),
        ("/etc/cron.d", "is an absolute path"),
        ("nested/run", "contains a path separator"),
        ("nested\\run", "contains a path separator"),
        ("", "is empty"),
    ] {
        let err = Config::resolve("demo", &[format!("name='{name}'")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid setting `name`"), "{name}: {err}");
        assert!(err.contains(problem), "{name}: {err}");
        assert!(err.contains("a plain folder name"), "{name}: {err}");
    }
    // A config file's own `name` key is checked the same way.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mine.toml");
    std::fs::write(&file, "name = \"/srv/elsewhere\"\n").unwrap();
    let err = Config::resolve(file.to_str().unwrap(), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("is an absolute path"), "{err}");
    for ok in ["demo", "cifar10-manifoldclr", "run_2.b"] {
        Config::resolve("demo", &[format!("name={ok}")]).unwrap();
    }
}
