//! A checkpoint taken to PyTorch: a full-width ResNet-18 run trained for two steps, its
//! `model.safetensors` loaded into torchvision's `resnet18` with the CIFAR stem (strict keys), must
//! give mclr's evaluation features on 16 images within 1e-4 relative.
//!
//! This needs Python with torch, torchvision and safetensors: `cargo xtask bench-torch` makes such
//! a venv under `target/bench-torch/venv`, or point `MCLR_TORCH_PYTHON` at a python that has them.
//! Without either the test says so and checks nothing else.

// A panic in a test is a failure with a message, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use mclr_trainer::config::Config;
use mclr_trainer::data::ImageSet;
use mclr_trainer::model::ssl::SslModel;
use mclr_trainer::train::{TrainOptions, checkpoint, load_weights, train_on};

fn torch_python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MCLR_TORCH_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-torch/venv/bin/python");
    venv.exists().then_some(venv)
}

#[test]
fn a_checkpoint_loads_into_torchvision_resnet18_and_gives_the_same_features() {
    let Some(python) = torch_python() else {
        eprintln!(
            "SKIPPED interop with PyTorch: no venv at target/bench-torch/venv and no \
             MCLR_TORCH_PYTHON; run `cargo xtask bench-torch --only train_step` to make one"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = Config::resolve(
        "cifar10-simclr-nohead",
        &[
            "optim.batch_size=8".to_owned(),
            "optim.epochs=1".to_owned(),
            "optim.warmup_epochs=0".to_owned(),
            "run.log_every=1".to_owned(),
        ],
    )
    .unwrap();
    // 16 images with varied colours: two steps of 8.
    let pixels: Vec<u8> = (0..16 * 32 * 32 * 3)
        .map(|i: usize| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let images = Arc::new(ImageSet::new(32, 32, pixels, None, Vec::new()).unwrap());
    let options = TrainOptions {
        run_dir: dir.path().join("run"),
        resume: false,
        device: Device::Cpu,
        stop_after_epochs: None,
        progress: false,
    };
    train_on(&config, images, &options).unwrap();

    let model_path = options.run_dir.join(checkpoint::MODEL_FILE);
    let weights = candle_core::safetensors::load(&model_path, &Device::Cpu).unwrap();
    let model = SslModel::new(&config, 32, &Device::Cpu).unwrap();
    load_weights(&model, &weights, &options.run_dir).unwrap();
    let values: Vec<f32> = (0..16 * 3 * 32 * 32)
        .map(|i| ((i as f32) * 0.618).sin() * 1.5)
        .collect();
    let x = Tensor::from_vec(values, (16, 3, 32, 32), &Device::Cpu).unwrap();
    let features = model.features(&x, false).unwrap();
    let case = dir.path().join("case.safetensors");
    candle_core::safetensors::save(
        &HashMap::from([("images".to_owned(), x), ("features".to_owned(), features)]),
        &case,
    )
    .unwrap();

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bench/torch/interop.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(&model_path)
        .arg(&case)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "interop.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let err = result["max_rel_err"].as_f64().unwrap();
    assert!(
        err <= 1e-4,
        "torch features differ from mclr's by {err:.2e} (relative)"
    );
    eprintln!(
        "interop with torch {}: features agree to {err:.2e}",
        result["torch"]
    );
}
