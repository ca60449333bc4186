//! The networks of docs/method.md §4 in candle: the ResNet-18 backbone (parameter count, shapes, BatchNorm
//! modes, gradients), the projection head, and the coefficient encoder and prior against the
//! authors' PyTorch outputs (fixtures README §e) and against the shared CPU reference the viewer
//! runs.
// Tests may unwrap: a panic in a test is a failure with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{ModuleT, VarBuilder, VarMap};
use mclr_shared::bundle::{LinearWeights, MlpWeights};
use mclr_shared::operators::{
    self as cpu, ENCODER_LOGSCALE_RANGE, LOC_CLAMP, PRIOR_LOGSCALE_MAX, SCALE_PRIOR_LN,
    SHIFT_PRIOR, prior_warmup_weight,
};
use mclr_trainer::model::batch_norm::{self, BatchNorm, is_running_stat};
use mclr_trainer::model::coefficients::{
    CoefficientEncoder, CoefficientHeads, PriorNetwork, clamp,
};
use mclr_trainer::model::projection::{ProjectionConfig, ProjectionHead};
use mclr_trainer::model::resnet::{ResNet, ResNetConfig, Stem};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

// ---------------------------------------------------------------- helpers

/// Values of `t` as f64, flattened.
fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

/// The fixtures' norm-wise rule: max|x − ref| ≤ tol · max|ref|.
fn assert_close(name: &str, got: &Tensor, want: &Tensor, tol: f64) {
    let scale = max_abs(want);
    assert_close_to_scale(name, got, want, tol, scale);
}

/// max|x − ref| ≤ tol · `scale`.
fn assert_close_to_scale(name: &str, got: &Tensor, want: &Tensor, tol: f64, scale: f64) {
    assert_eq!(got.dims(), want.dims(), "{name}: shape");
    let err = values(got)
        .iter()
        .zip(values(want))
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        err <= tol * scale,
        "{name}: max abs error {err:e} exceeds {tol:e} × scale {scale:e}"
    );
}

fn max_abs(t: &Tensor) -> f64 {
    values(t).iter().fold(0.0f64, |m, x| m.max(x.abs()))
}

/// Deterministic test data: uniform values in [lo, hi).
fn uniform(rng: &mut ChaCha8Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n)
        .map(|_| lo + (hi - lo) * (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32)
        .collect()
}

fn tensor(rng: &mut ChaCha8Rng, dims: &[usize], lo: f32, hi: f32) -> Tensor {
    let n = dims.iter().product();
    Tensor::from_vec(uniform(rng, n, lo, hi), dims, &Device::Cpu).unwrap()
}

/// Trainable parameters (running statistics excluded) whose names start with `prefix`.
fn parameter_count(varmap: &VarMap, prefix: &str) -> usize {
    varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .filter(|(name, _)| name.starts_with(prefix) && !is_running_stat(name))
        .map(|(_, v)| v.elem_count())
        .sum()
}

fn var_names(varmap: &VarMap) -> Vec<String> {
    let mut names: Vec<String> = varmap.data().lock().unwrap().keys().cloned().collect();
    names.sort();
    names
}

fn var(varmap: &VarMap, name: &str) -> Tensor {
    varmap.data().lock().unwrap()[name].as_tensor().clone()
}

fn running_stats(varmap: &VarMap) -> HashMap<String, Vec<f64>> {
    varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .filter(|(name, _)| is_running_stat(name))
        .map(|(name, v)| (name.clone(), values(v.as_tensor())))
        .collect()
}

fn backbone(config: ResNetConfig, dtype: DType) -> (VarMap, ResNet) {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, dtype, &Device::Cpu);
    let net = ResNet::new(config, vb).unwrap();
    (varmap, net)
}

// ---------------------------------------------------------------- ResNet-18

/// Trainable parameters of ResNet-18 without `fc`, from the architecture: bias-free convolutions
/// (in · out · k²) and BatchNorm weight + bias (2 per channel); stem conv + BN, then four stages of
/// two BasicBlocks (two 3×3 convs + two BNs each), the first block of stages 2–4 with a 1×1 conv +
/// BN shortcut.
fn resnet18_parameter_count(w: usize) -> usize {
    let conv = |i: usize, o: usize, k: usize| i * o * k * k;
    let bn = |c: usize| 2 * c;
    // The stem conv is 3×3 with or without the max-pool, which has no parameters.
    let mut total = conv(3, w, Stem::KERNEL) + bn(w);
    let mut c_in = w;
    for mult in [1, 2, 4, 8] {
        let c = w * mult;
        for _ in 0..2 {
            total += conv(c_in, c, 3) + bn(c) + conv(c, c, 3) + bn(c);
            if c_in != c {
                total += conv(c_in, c, 1) + bn(c);
            }
            c_in = c;
        }
    }
    total
}

#[test]
fn resnet18_at_base_width_64_has_the_torchvision_parameter_count_without_fc() {
    // torchvision resnet18: 11,689,512 parameters. Minus fc (512·1000 + 1000 = 513,000) gives
    // 11,176,512 with the 7×7 stem (3·64·49 = 9,408); the reference's 3×3 stem (3·64·9 = 1,728)
    // is 7,680 fewer: 11,168,832, for every dataset (the max-pool has no parameters).
    const TORCHVISION_RESNET18: usize = 11_689_512;
    const FC: usize = 512 * 1000 + 1000;
    const STEM_7X7_MINUS_3X3: usize = 3 * 64 * 49 - 3 * 64 * 9;
    assert_eq!(TORCHVISION_RESNET18 - FC - STEM_7X7_MINUS_3X3, 11_168_832);
    for stem in [Stem::Conv3x3, Stem::Conv3x3MaxPool] {
        let (varmap, net) = backbone(
            ResNetConfig {
                base_width: 64,
                stem,
            },
            DType::F32,
        );
        assert_eq!(net.feature_dim(), 512);
        assert_eq!(
            parameter_count(&varmap, "backbone."),
            11_168_832,
            "{stem:?}"
        );
        assert_eq!(resnet18_parameter_count(64), 11_168_832, "{stem:?}");
    }
}

#[test]
fn parameter_count_follows_the_architecture_at_small_widths() {
    for w in [1, 8, 16] {
        for stem in [Stem::Conv3x3, Stem::Conv3x3MaxPool] {
            let (varmap, _) = backbone(
                ResNetConfig {
                    base_width: w,
                    stem,
                },
                DType::F32,
            );
            assert_eq!(
                parameter_count(&varmap, "backbone."),
                resnet18_parameter_count(w),
                "w = {w}, {stem:?}"
            );
        }
    }
}

#[test]
fn backbone_variables_use_torchvision_names_under_the_backbone_prefix() {
    let (varmap, _) = backbone(
        ResNetConfig {
            base_width: 2,
            stem: Stem::Conv3x3,
        },
        DType::F32,
    );
    let names = var_names(&varmap);
    for name in [
        "backbone.conv1.weight",
        "backbone.bn1.weight",
        "backbone.bn1.bias",
        "backbone.bn1.running_mean",
        "backbone.bn1.running_var",
        "backbone.layer1.0.conv1.weight",
        "backbone.layer1.1.bn2.bias",
        "backbone.layer2.0.downsample.0.weight",
        "backbone.layer2.0.downsample.1.running_var",
        "backbone.layer4.1.conv2.weight",
    ] {
        assert!(names.iter().any(|n| n == name), "missing {name}");
    }
    assert!(names.iter().all(|n| n.starts_with("backbone.")));
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("backbone.layer1.0.downsample"))
    );
    assert!(!names.iter().any(|n| n.contains("fc")));
    // 1 stem conv + 16 block convs + 3 shortcut convs; a BN after each.
    assert_eq!(
        names.iter().filter(|n| n.ends_with("running_mean")).count(),
        20
    );
    assert_eq!(
        var(&varmap, "backbone.layer4.0.downsample.0.weight").dims(),
        &[16, 8, 1, 1]
    );
}

#[test]
fn backbone_init_is_kaiming_normal_fan_out_but_the_stem_is_torch_default_and_bn_identity() {
    let (varmap, _) = backbone(ResNetConfig::paper(32), DType::F32);
    // layer4.0.conv2: (512, 512, 3, 3), fan_out = 512·9, std = √(2 / 4608) ≈ 0.0208.
    let w = values(&var(&varmap, "backbone.layer4.0.conv2.weight"));
    let n = w.len() as f64;
    let mean = w.iter().sum::<f64>() / n;
    let std = (w.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    let want = (2.0f64 / (512.0 * 9.0)).sqrt();
    assert!(mean.abs() < 0.01 * want, "mean {mean}");
    assert!((std / want - 1.0).abs() < 0.01, "std {std}, want {want}");
    // The stem conv has PyTorch's default conv init instead, U(±1/√27) (fan_in = 3·3·3): the
    // reference creates it after torchvision's init loop (src/model/backbone.py).
    let w = values(&var(&varmap, "backbone.conv1.weight"));
    let bound = 1.0 / 27f64.sqrt();
    assert!(
        w.iter().all(|x| x.abs() <= bound),
        "stem weight beyond ±1/√27"
    );
    let std = (w.iter().map(|x| x * x).sum::<f64>() / w.len() as f64).sqrt();
    assert!(
        (std / (bound / 3f64.sqrt()) - 1.0).abs() < 0.1,
        "stem std {std}, want that of U(±1/√27), {}",
        bound / 3f64.sqrt()
    );
    for (suffix, value) in [
        ("weight", 1.0),
        ("bias", 0.0),
        ("running_mean", 0.0),
        ("running_var", 1.0),
    ] {
        let v = values(&var(&varmap, &format!("backbone.layer3.1.bn2.{suffix}")));
        assert_eq!(v.len(), 256);
        assert!(v.iter().all(|&x| x == value), "{suffix}");
    }
}

#[test]
fn paper_backbone_gives_512_features_for_32_and_64_px_inputs() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for px in [32, 64] {
        let config = ResNetConfig::paper(px);
        assert_eq!(config.stem.has_max_pool(), px == 64);
        let (_, net) = backbone(config, DType::F32);
        let x = tensor(&mut rng, &[2, 3, px, px], -1.0, 1.0);
        let z = net.forward_t(&x, false).unwrap();
        assert_eq!(z.dims(), &[2, 512], "{px} px");
        // After the final ReLU and the average pool, features are non-negative.
        assert!(values(&z).iter().all(|&v| v >= 0.0 && v.is_finite()));
    }
}

#[test]
fn small_backbones_give_8w_features_for_every_stem() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for (w, stem, px) in [
        (8, Stem::Conv3x3, 32),
        (8, Stem::Conv3x3MaxPool, 64),
        (4, Stem::Conv3x3, 9),
        (16, Stem::Conv3x3MaxPool, 17),
    ] {
        let (_, net) = backbone(
            ResNetConfig {
                base_width: w,
                stem,
            },
            DType::F32,
        );
        let x = tensor(&mut rng, &[2, 3, px, px], -1.0, 1.0);
        for train in [false, true] {
            let z = net.forward_t(&x, train).unwrap();
            assert_eq!(z.dims(), &[2, 8 * w], "w = {w}, {stem:?}, {px} px");
        }
    }
}

#[test]
fn backbone_rejects_inputs_that_are_not_rgb_images() {
    let (_, net) = backbone(
        ResNetConfig {
            base_width: 2,
            stem: Stem::Conv3x3,
        },
        DType::F32,
    );
    for dims in [&[2, 1, 8, 8][..], &[2, 3, 8], &[3, 8, 8]] {
        let x = Tensor::zeros(dims, DType::F32, &Device::Cpu).unwrap();
        assert!(net.forward_t(&x, false).is_err(), "{dims:?}");
    }
    assert!(
        ResNet::new(
            ResNetConfig {
                base_width: 0,
                stem: Stem::Conv3x3
            },
            VarBuilder::from_varmap(&VarMap::new(), DType::F32, &Device::Cpu)
        )
        .is_err()
    );
}

#[test]
fn batch_norm_follows_torch_in_train_and_eval_modes() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let bn = BatchNorm::new(3, vb.pp("bn")).unwrap();
    let rows = [
        [1.0f32, -2.0, 0.5],
        [3.0, 0.0, 0.5],
        [-1.0, 4.0, 1.5],
        [5.0, 2.0, -0.5],
    ];
    let x = Tensor::new(&rows, &Device::Cpu).unwrap();
    let eps = batch_norm::EPS;

    // Eval mode with fresh statistics (mean 0, var 1): x / √(1 + ε), nothing updated.
    let y = bn.forward_t(&x, false).unwrap();
    let want = x.affine(1.0 / (1.0 + eps).sqrt(), 0.0).unwrap();
    assert_close("eval output", &y, &want, 1e-6);
    assert_eq!(values(bn.running_mean()), vec![0.0; 3]);
    assert_eq!(values(bn.running_var()), vec![1.0; 3]);

    // Train mode: batch statistics (biased variance) normalise; the running ones move by
    // momentum 0.1, with the unbiased variance.
    let y = bn.forward_t(&x, true).unwrap();
    let n = rows.len() as f64;
    for c in 0..3 {
        let col: Vec<f64> = rows.iter().map(|r| f64::from(r[c])).collect();
        let mean = col.iter().sum::<f64>() / n;
        let ss = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>();
        let want: Vec<f64> = col
            .iter()
            .map(|v| (v - mean) / (ss / n + eps).sqrt())
            .collect();
        let got: Vec<f64> = values(&y).chunks(3).map(|r| r[c]).collect();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5, "channel {c}: {g} vs {w}");
        }
        let rm = values(bn.running_mean())[c];
        let rv = values(bn.running_var())[c];
        assert!((rm - 0.1 * mean).abs() < 1e-6, "running mean {c}");
        assert!(
            (rv - (0.9 + 0.1 * ss / (n - 1.0))).abs() < 1e-5,
            "running var {c}"
        );
    }
    // The map holds the updated statistics (so checkpoints do).
    assert_eq!(
        var(&varmap, "bn.running_mean").to_vec1::<f32>().unwrap(),
        bn.running_mean().to_vec1::<f32>().unwrap()
    );

    // Eval mode now uses them.
    let y_eval = bn.forward_t(&x, false).unwrap();
    let rm = bn.running_mean().reshape((1, 3)).unwrap();
    let rv = bn.running_var().reshape((1, 3)).unwrap();
    let want = x
        .broadcast_sub(&rm)
        .unwrap()
        .broadcast_div(&(rv + eps).unwrap().sqrt().unwrap())
        .unwrap();
    assert_close("eval after update", &y_eval, &want, 1e-6);
}

/// What [`ghost_run`] measures: (output, input gradient, weight gradient, running mean,
/// running variance).
type GhostRun = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);

/// Output, input gradient, weight gradient and running statistics of a fresh batch-norm layer
/// (with its ReLU, and ghost group `group`) on `x`, whose rows are rows `first_row..` of a batch:
/// the loss weighs output element i of the batch by sin(i), whichever rows `x` holds.
fn ghost_run(
    x: &Tensor,
    first_row: usize,
    group: Option<usize>,
    kernels: mclr_trainer::model::Kernels,
) -> GhostRun {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let mut bn = BatchNorm::new(3, vb.pp("bn")).unwrap();
    bn.set_kernels(kernels);
    bn.set_group(group);
    let input = Var::from_tensor(x).unwrap();
    let y = bn.forward_act(input.as_tensor(), true, true).unwrap();
    let offset = (first_row * y.elem_count() / y.dim(0).unwrap()) as f32;
    let weights = Tensor::arange(offset, offset + y.elem_count() as f32, &Device::Cpu)
        .unwrap()
        .reshape(y.dims())
        .unwrap()
        .sin()
        .unwrap();
    let grads = (&y * &weights)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let gamma = var(&varmap, "bn.weight");
    (
        values(&y),
        values(grads.get(input.as_tensor()).unwrap()),
        values(grads.get(&gamma).unwrap()),
        values(bn.running_mean()),
        values(bn.running_var()),
    )
}

#[test]
fn ghost_batch_norm_equals_separate_calls_per_group_and_updates_statistics_from_the_first() {
    // The -thresh configs ran with DataParallel on two GPUs: each replica's BatchNorm normalised
    // its half of the batch, and only the first replica's running statistics were kept.
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let x = tensor(&mut rng, &[8, 3, 2, 2], -2.0, 3.0);
    let (first, second) = (x.narrow(0, 0, 4).unwrap(), x.narrow(0, 4, 4).unwrap());
    for kernels in [
        mclr_trainer::model::Kernels::Fast,
        mclr_trainer::model::Kernels::Reference,
    ] {
        let ghost = ghost_run(&x, 0, Some(4), kernels);
        let a = ghost_run(&first, 0, None, kernels);
        let b = ghost_run(&second, 4, None, kernels);
        let close = |got: &[f64], want: &[f64], what: &str| {
            let err = got
                .iter()
                .zip(want)
                .fold(0.0f64, |m, (g, w)| m.max((g - w).abs()));
            assert!(
                got.len() == want.len() && err < 1e-5,
                "{kernels:?} {what}: {err}"
            );
        };
        close(&ghost.0, &[a.0.clone(), b.0.clone()].concat(), "output");
        close(
            &ghost.1,
            &[a.1.clone(), b.1.clone()].concat(),
            "input gradient",
        );
        // The parameter gradient is the sum of both groups'.
        let summed: Vec<f64> = a.2.iter().zip(&b.2).map(|(p, q)| p + q).collect();
        close(&ghost.2, &summed, "weight gradient");
        close(&ghost.3, &a.3, "running mean (first group only)");
        close(&ghost.4, &a.4, "running var (first group only)");
        // Whole-batch statistics differ: the grouping matters.
        let whole = ghost_run(&x, 0, None, kernels);
        let gap = whole
            .0
            .iter()
            .zip(&ghost.0)
            .fold(0.0f64, |m, (g, w)| m.max((g - w).abs()));
        assert!(
            gap > 1e-3,
            "{kernels:?}: ghost and whole-batch outputs agree"
        );
        // A group at least as large as the batch is the whole batch.
        close(
            &ghost_run(&x, 0, Some(8), kernels).0,
            &whole.0,
            "group = batch",
        );
    }
}

#[test]
fn a_ghost_backbone_equals_the_backbone_on_each_group_alone() {
    // Batch norm is the backbone's only interaction between images, so with groups of 4 the
    // features of 8 images are those of each 4 passed on their own.
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let x = tensor(&mut rng, &[8, 3, 16, 16], -1.0, 1.0);
    let config = ResNetConfig {
        base_width: 4,
        stem: Stem::Conv3x3,
    };
    let seeded = || {
        let varmap = VarMap::new();
        let vb = mclr_trainer::model::init::SeededVarMap::new(varmap.clone(), 3)
            .into_var_builder(&Device::Cpu);
        (varmap.clone(), ResNet::new(config, vb).unwrap())
    };
    let (ghost_map, mut ghost) = seeded();
    ghost.set_bn_group(Some(4));
    let z = ghost.forward_t(&x, true).unwrap();
    let (alone_map, alone) = seeded();
    let first = alone.forward_t(&x.narrow(0, 0, 4).unwrap(), true).unwrap();
    let stats = running_stats(&alone_map);
    let second = alone.forward_t(&x.narrow(0, 4, 4).unwrap(), true).unwrap();
    assert_close(
        "features",
        &z,
        &Tensor::cat(&[first, second], 0).unwrap(),
        1e-5,
    );
    // Running statistics come from the first group only.
    let ghost_stats = running_stats(&ghost_map);
    for (name, want) in &stats {
        let got = &ghost_stats[name];
        let err = got
            .iter()
            .zip(want)
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(err < 1e-5, "{name}: {err}");
    }
}

#[test]
fn ghost_batch_norm_in_the_head_splits_the_pairs_as_data_parallel() {
    let config = mclr_trainer::config::Config::resolve(
        "cifar10-manifoldclr-thresh",
        &[
            "model.base_width=4".to_owned(),
            "method.block_size=8".to_owned(),
            "model.projection_hidden=16".to_owned(),
            "model.bn_group=3".to_owned(),
        ],
    )
    .unwrap();
    let model = mclr_trainer::model::ssl::SslModel::new(&config, 32, &Device::Cpu).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let d = model.backbone.feature_dim();
    let (z0, z1) = (
        tensor(&mut rng, &[6, d], -1.0, 1.0),
        tensor(&mut rng, &[6, d], 0.0, 2.0),
    );
    let (h0, h1) = model.project_pair(&z0, &z1, true).unwrap();
    let stats_after = values(&var(&model.varmap, "projection.bn1.running_mean"));
    // Replica r projects cat[z0_r; z1_r] of its 3 pairs; only replica 0 moves the statistics.
    let fresh = mclr_trainer::model::ssl::SslModel::new(&config, 32, &Device::Cpu).unwrap();
    let fresh_head = fresh.projection.as_ref().unwrap();
    let replica = |r: usize, update: bool| {
        let pair = Tensor::cat(
            &[
                z0.narrow(0, 3 * r, 3).unwrap(),
                z1.narrow(0, 3 * r, 3).unwrap(),
            ],
            0,
        )
        .unwrap();
        values(&fresh_head.forward_replica(&pair, update).unwrap())
    };
    let (r0, r1) = (replica(0, true), replica(1, false));
    let width = h0.dim(1).unwrap();
    let want_h0 = [&r0[..3 * width], &r1[..3 * width]].concat();
    let want_h1 = [&r0[3 * width..], &r1[3 * width..]].concat();
    assert_eq!(values(&h0), want_h0);
    assert_eq!(values(&h1), want_h1);
    assert_eq!(
        stats_after,
        values(&var(&fresh.varmap, "projection.bn1.running_mean"))
    );
}

#[test]
fn batch_norm_rejects_one_value_per_channel_in_training_only() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let head = ProjectionHead::new(
        ProjectionConfig {
            input_dim: 4,
            hidden_dim: 6,
            output_dim: 2,
        },
        vb,
    )
    .unwrap();
    let x = Tensor::ones((1, 4), DType::F32, &Device::Cpu).unwrap();
    assert!(head.forward_t(&x, true).is_err());
    assert_eq!(head.forward_t(&x, false).unwrap().dims(), &[1, 2]);
    assert!(
        head.forward_t(
            &Tensor::ones((2, 5), DType::F32, &Device::Cpu).unwrap(),
            false
        )
        .is_err()
    );
}

#[test]
fn backbone_train_mode_updates_running_stats_and_eval_mode_does_not() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (varmap, net) = backbone(
        ResNetConfig {
            base_width: 8,
            stem: Stem::Conv3x3,
        },
        DType::F32,
    );
    let x = tensor(&mut rng, &[2, 3, 16, 16], -1.0, 1.0);
    let fresh = running_stats(&varmap);

    let eval_a = net.forward_t(&x, false).unwrap();
    let eval_b = net.forward_t(&x, false).unwrap();
    assert_eq!(values(&eval_a), values(&eval_b));
    assert_eq!(
        running_stats(&varmap),
        fresh,
        "eval mode must not touch running stats"
    );

    let train = net.forward_t(&x, true).unwrap();
    let updated = running_stats(&varmap);
    assert_eq!(updated.len(), 2 * 20);
    for (name, v) in &updated {
        assert_ne!(v, &fresh[name], "{name} did not move in train mode");
    }
    let diff = values(&train)
        .iter()
        .zip(values(&eval_a))
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        diff > 1e-3,
        "train and eval outputs should differ (max diff {diff})"
    );

    // The stem's running mean moved to 0.1 × the batch mean of the stem convolution's output.
    let conv = x
        .conv2d(&var(&varmap, "backbone.conv1.weight"), 1, 1, 1, 1)
        .unwrap();
    let batch_mean = conv.mean((0, 2, 3)).unwrap().affine(0.1, 0.0).unwrap();
    assert_close(
        "stem running mean",
        &var(&varmap, "backbone.bn1.running_mean"),
        &batch_mean,
        1e-5,
    );

    // Eval mode after the update differs from eval mode before it.
    let eval_c = net.forward_t(&x, false).unwrap();
    assert_ne!(values(&eval_c), values(&eval_a));
}

/// Replaces every convolution weight by seeded values (uniform with the Kaiming fan-out
/// variance), so that a test does not depend on candle's unseeded CPU generator.
fn reseed_convolutions(varmap: &VarMap, rng: &mut ChaCha8Rng) {
    let map = varmap.data().lock().unwrap();
    let mut names: Vec<&String> = map.keys().collect();
    names.sort();
    for v in names.into_iter().map(|name| &map[name]) {
        if let [out, _, kh, kw] = *v.dims() {
            let bound = (6.0 / (out * kh * kw) as f32).sqrt();
            let w = tensor(rng, v.dims(), -bound, bound)
                .to_dtype(v.dtype())
                .unwrap();
            v.set(&w).unwrap();
        }
    }
}

/// Central differences of `loss` against the gradient candle computes, at a few entries of `v`.
fn check_gradient(name: &str, v: &Var, grad: &Tensor, loss: &dyn Fn() -> f64, entries: &[usize]) {
    let base = v
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let dims = v.dims().to_vec();
    let analytic = values(grad);
    let scale = analytic.iter().fold(0.0f64, |m, g| m.max(g.abs()));
    assert!(
        scale > 0.0,
        "{name}: the gradient vanishes; the check would be vacuous"
    );
    // Small enough that no ReLU or max-pool kink lies within ±h of the point (f64 keeps the
    // rounding error of the difference near 1e-8).
    let h = 1e-7;
    for &i in entries {
        let at = |delta: f64| {
            let mut p = base.clone();
            p[i] += delta;
            v.set(&Tensor::from_vec(p, dims.as_slice(), &Device::Cpu).unwrap())
                .unwrap();
            loss()
        };
        let fd = (at(h) - at(-h)) / (2.0 * h);
        assert!(
            (fd - analytic[i]).abs() <= 1e-6 * scale,
            "{name}[{i}]: finite difference {fd:e} vs backward {:e}",
            analytic[i]
        );
    }
    v.set(&Tensor::from_vec(base, dims.as_slice(), &Device::Cpu).unwrap())
        .unwrap();
}

#[test]
fn backbone_gradients_match_finite_differences_through_max_pool_and_shortcuts() {
    // f64 so that central differences are accurate to ~1e-8; train mode (batch statistics), the
    // max-pool stem and every stride-2 shortcut are on the path. 32 px leaves 2×2 maps in stage 4,
    // so its BatchNorm sees 8 values per channel (with 2 it would output ±1 whatever the weights).
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (varmap, net) = backbone(
        ResNetConfig {
            base_width: 4,
            stem: Stem::Conv3x3MaxPool,
        },
        DType::F64,
    );
    reseed_convolutions(&varmap, &mut rng);
    let x = Var::from_tensor(
        &tensor(&mut rng, &[2, 3, 32, 32], -1.0, 1.0)
            .to_dtype(DType::F64)
            .unwrap(),
    )
    .unwrap();
    let r = tensor(&mut rng, &[2, 32], -1.0, 1.0)
        .to_dtype(DType::F64)
        .unwrap();
    let loss = || {
        (net.forward_t(x.as_tensor(), true).unwrap() * &r)
            .unwrap()
            .sum_all()
            .unwrap()
    };
    let scalar = || loss().to_scalar::<f64>().unwrap();
    let grads = loss().backward().unwrap();

    let entries: Vec<usize> = (0..8).map(|i| (i * 197 + 5) % x.elem_count()).collect();
    check_gradient("x", &x, grads.get(&x).unwrap(), &scalar, &entries);

    let map = varmap.data().lock().unwrap().clone();
    for name in [
        "backbone.conv1.weight",
        "backbone.layer2.0.downsample.0.weight",
        "backbone.layer4.1.conv2.weight",
        "backbone.layer3.0.bn1.weight",
    ] {
        let v = &map[name];
        let g = grads.get(v.as_tensor()).unwrap();
        let entries: Vec<usize> = (0..4).map(|i| (i * 31 + 1) % v.elem_count()).collect();
        check_gradient(name, v, g, &scalar, &entries);
    }
}

// ---------------------------------------------------------------- projection head

#[test]
fn projection_head_maps_backbone_features_to_128_with_its_own_prefix() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let head = ProjectionHead::new(ProjectionConfig::paper(64), vb).unwrap();
    let z = tensor(&mut rng, &[4, 64], 0.0, 2.0);
    for train in [true, false] {
        assert_eq!(head.forward_t(&z, train).unwrap().dims(), &[4, 128]);
    }
    assert_eq!(
        var_names(&varmap),
        [
            "projection.bn1.bias",
            "projection.bn1.running_mean",
            "projection.bn1.running_var",
            "projection.bn1.weight",
            "projection.fc1.bias",
            "projection.fc1.weight",
            "projection.fc2.bias",
            "projection.fc2.weight",
        ]
    );
    assert_eq!(var(&varmap, "projection.fc1.weight").dims(), &[1024, 64]);
    assert_eq!(var(&varmap, "projection.fc2.weight").dims(), &[128, 1024]);
    // PyTorch's Linear init: uniform in ±1/√in.
    let bound = 1.0 / 1024f64.sqrt();
    assert!(
        values(&var(&varmap, "projection.fc2.weight"))
            .iter()
            .all(|w| w.abs() <= bound)
    );
    assert_eq!(
        parameter_count(&varmap, "projection."),
        64 * 1024 + 1024 + 2 * 1024 + 1024 * 128 + 128
    );
}

/// The reference's head on one batch, by hand in f64: Linear, BatchNorm1d with the batch's own
/// (biased) statistics, ReLU, Linear, from the head's variables.
fn head_by_hand(varmap: &VarMap, z: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let w1 = var(varmap, "projection.fc1.weight");
    let (hidden, input) = w1.dims2().unwrap();
    let (w1, b1) = (values(&w1), values(&var(varmap, "projection.fc1.bias")));
    let (gamma, beta) = (
        values(&var(varmap, "projection.bn1.weight")),
        values(&var(varmap, "projection.bn1.bias")),
    );
    let w2 = var(varmap, "projection.fc2.weight");
    let out = w2.dims2().unwrap().0;
    let (w2, b2) = (values(&w2), values(&var(varmap, "projection.fc2.bias")));
    let h: Vec<Vec<f64>> = z
        .iter()
        .map(|row| {
            (0..hidden)
                .map(|j| b1[j] + (0..input).map(|i| w1[j * input + i] * row[i]).sum::<f64>())
                .collect()
        })
        .collect();
    let n = h.len() as f64;
    let normalised: Vec<Vec<f64>> = {
        let mean: Vec<f64> = (0..hidden)
            .map(|j| h.iter().map(|r| r[j]).sum::<f64>() / n)
            .collect();
        let var: Vec<f64> = (0..hidden)
            .map(|j| h.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n)
            .collect();
        h.iter()
            .map(|r| {
                (0..hidden)
                    .map(|j| {
                        let x = (r[j] - mean[j]) / (var[j] + 1e-5).sqrt() * gamma[j] + beta[j];
                        x.max(0.0)
                    })
                    .collect()
            })
            .collect()
    };
    normalised
        .iter()
        .map(|r| {
            (0..out)
                .map(|o| b2[o] + (0..hidden).map(|j| w2[o * hidden + j] * r[j]).sum::<f64>())
                .collect()
        })
        .collect()
}

#[test]
fn the_head_projects_both_views_in_one_batch_as_the_reference_does() {
    // src/model/contrastive/projection_header.py: `self.projector(torch.cat([z0, z1]))`, so the
    // head's BatchNorm normalises over 2B rows, not over each view's B.
    let config = mclr_trainer::config::Config::resolve(
        "cifar10-simclr",
        &[
            "model.base_width=4".to_owned(),
            "model.projection_hidden=16".to_owned(),
        ],
    )
    .unwrap();
    let model = mclr_trainer::model::ssl::SslModel::new(&config, 32, &Device::Cpu).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let (b, d) = (6, model.backbone.feature_dim());
    let z0 = tensor(&mut rng, &[b, d], -1.0, 1.0);
    // A second view with other statistics, so per-view and joint normalisation differ.
    let z1 = tensor(&mut rng, &[b, d], 0.0, 3.0);
    let (h0, h1) = model.project_pair(&z0, &z1, true).unwrap();
    let rows = |t: &Tensor| -> Vec<Vec<f64>> {
        values(t)
            .chunks(t.dim(1).unwrap())
            .map(<[f64]>::to_vec)
            .collect()
    };
    let joint = head_by_hand(&model.varmap, &[rows(&z0), rows(&z1)].concat());
    let got = [rows(&h0), rows(&h1)].concat();
    let err = got
        .iter()
        .flatten()
        .zip(joint.iter().flatten())
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        err < 1e-4,
        "projection of cat[z0; z1] differs from the reference by {err}"
    );
    // The arrangement matters: each view normalised on its own gives other values.
    let separate = [
        head_by_hand(&model.varmap, &rows(&z0)),
        head_by_hand(&model.varmap, &rows(&z1)),
    ]
    .concat();
    let gap = separate
        .iter()
        .flatten()
        .zip(joint.iter().flatten())
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        gap > 100.0 * err.max(1e-6),
        "per-view and joint statistics agree ({gap})"
    );
}

// ---------------------------------------------------------------- coefficient encoder and prior

fn fixture_path(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/reference")
        .join(file)
}

/// Reference layer names (fixtures README §e) and ours, for the encoder and the prior.
const LAYERS: [(&str, &str); 10] = [
    ("enc_feat_extract.0", "encoder.trunk.0"),
    ("enc_feat_extract.2", "encoder.trunk.1"),
    ("enc_feat_extract.4", "encoder.trunk.2"),
    ("enc_scale", "encoder.scale_head"),
    ("enc_shift", "encoder.loc_head"),
    ("prior_feat_extract.0", "prior.trunk.0"),
    ("prior_feat_extract.2", "prior.trunk.1"),
    ("prior_feat_extract.4", "prior.trunk.2"),
    ("prior_scale", "prior.scale_head"),
    ("prior_shift", "prior.loc_head"),
];

/// The reference encoder and prior (fixtures README §e) with the store of their variables and
/// the fixture's tensors.
struct Reference {
    encoder: CoefficientEncoder,
    prior: PriorNetwork,
    fx: HashMap<String, Tensor>,
    varmap: VarMap,
}

/// The reference networks (M = 16, d = 512) with the fixture's weights loaded into the VarMap
/// under our names, as a checkpoint would be.
fn reference() -> Reference {
    let fx =
        candle_core::safetensors::load(fixture_path("coeff_encoder.safetensors"), &Device::Cpu)
            .unwrap();
    let mut varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let encoder = CoefficientEncoder::new(512, 16, vb.clone()).unwrap();
    let prior = PriorNetwork::new(512, 16, vb).unwrap();
    assert_eq!(var_names(&varmap).len(), 2 * LAYERS.len());
    for (theirs, ours) in LAYERS {
        // W = (weight_q − 128) · weight_step, exact in f32.
        let q = fx[&format!("param.{theirs}.weight_q")]
            .to_dtype(DType::F32)
            .unwrap();
        let step = fx[&format!("param.{theirs}.weight_step")]
            .to_scalar::<f32>()
            .unwrap();
        let w = q
            .affine(1.0, -128.0)
            .unwrap()
            .affine(f64::from(step), 0.0)
            .unwrap();
        varmap.set_one(format!("{ours}.weight"), w).unwrap();
        varmap
            .set_one(format!("{ours}.bias"), &fx[&format!("param.{theirs}.bias")])
            .unwrap();
    }
    Reference {
        encoder,
        prior,
        fx,
        varmap,
    }
}

/// The prior warm-up blend of docs/method.md §4 at weight `w` (the sampling module owns the production
/// version): ln b ← w·ln b_p + (1−w)·ln 0.01 and μ ← w·μ_p + (1−w)·0.05·sign(w·μ_p), sign
/// detached.
fn warm_up(prior: &CoefficientHeads, w: f64) -> (Tensor, Tensor) {
    let logscale = prior
        .logscale
        .affine(w, (1.0 - w) * f64::from(SCALE_PRIOR_LN))
        .unwrap();
    let scaled = prior.loc.affine(w, 0.0).unwrap();
    let push = scaled
        .sign()
        .unwrap()
        .detach()
        .affine((1.0 - w) * f64::from(SHIFT_PRIOR), 0.0)
        .unwrap();
    (logscale, (scaled + push).unwrap())
}

#[test]
fn encoder_and_prior_reproduce_the_reference_outputs() {
    let Reference {
        encoder, prior, fx, ..
    } = reference();
    let (x0, x1) = (&fx["input.x0"], &fx["input.x1"]);
    let tol = 1e-4;

    let q = encoder.forward(x0, x1).unwrap();
    assert_close("enc features", &q.features, &fx["output.enc_features"], tol);
    assert_close(
        "enc scale raw",
        &q.scale_raw,
        &fx["output.enc_scale_raw"],
        tol,
    );
    assert_close(
        "enc shift raw",
        &q.loc_raw,
        &fx["output.enc_shift_raw"],
        tol,
    );
    assert_close("enc logscale", &q.logscale, &fx["output.enc_logscale"], tol);
    assert_close("enc shift", &q.loc, &fx["output.enc_shift"], tol);

    let p = prior.forward(x0).unwrap();
    assert_close(
        "prior features",
        &p.features,
        &fx["output.prior_features"],
        tol,
    );
    assert_close(
        "prior scale raw",
        &p.scale_raw,
        &fx["output.prior_scale_raw"],
        tol,
    );
    assert_close(
        "prior shift raw",
        &p.loc_raw,
        &fx["output.prior_shift_raw"],
        tol,
    );
    // The fully warmed prior (iteration ≥ W) is the learned one.
    assert_close(
        "prior logscale",
        &p.logscale,
        &fx["output.prior_logscale_iter5000"],
        tol,
    );
    assert_close(
        "prior shift",
        &p.loc,
        &fx["output.prior_shift_iter5000"],
        tol,
    );

    let warmup = fx["param.prior_warmup_iters"].to_scalar::<i64>().unwrap() as u64;
    for iter in [0u64, 2500, 5000] {
        let w = f64::from(prior_warmup_weight(iter, warmup));
        let (logscale, shift) = warm_up(&p, w);
        let ls_ref = &fx[&format!("output.prior_logscale_iter{iter}")];
        let sh_ref = &fx[&format!("output.prior_shift_iter{iter}")];
        assert_close(&format!("prior logscale @{iter}"), &logscale, ls_ref, tol);
        assert_close(&format!("prior shift @{iter}"), &shift, sh_ref, tol);
        if iter == 0 {
            // Quirk 6: sign(0 · μ_p) = 0, so the location is exactly 0, not 0.05.
            assert!(values(&shift).iter().all(|&v| v == 0.0));
        }
    }

    // Every clamp is active somewhere in this fixture (README §e), so the checks above cover
    // both sides of each clamp.
    let count =
        |t: &Tensor, f: &dyn Fn(f64) -> bool| values(t).into_iter().filter(|&v| f(v)).count();
    assert_eq!(count(&q.scale_raw, &|v| v > 3.0), 11);
    assert_eq!(count(&q.scale_raw, &|v| v < -100.0), 5);
    assert_eq!(count(&q.loc_raw, &|v| v.abs() > 5.0), 17);
    assert_eq!(count(&p.scale_raw, &|v| v > 3.0), 9);
    assert_eq!(count(&p.loc_raw, &|v| v.abs() > 5.0), 17);
}

#[test]
fn input_gradients_through_clamps_and_warm_up_match_the_reference() {
    // The reference differentiates with respect to the inputs, so the stop-gradient is left out
    // here; the VJP sums the four upstream products, the prior's after warm-up at iteration 2500.
    let Reference {
        encoder, prior, fx, ..
    } = reference();
    let x0 = Var::from_tensor(&fx["input.x0"]).unwrap();
    let x1 = Var::from_tensor(&fx["input.x1"]).unwrap();
    let q = encoder
        .forward_without_stop_gradient(x0.as_tensor(), x1.as_tensor())
        .unwrap();
    let p = prior.forward_without_stop_gradient(x0.as_tensor()).unwrap();
    let warmup = fx["param.prior_warmup_iters"].to_scalar::<i64>().unwrap() as u64;
    let w = f64::from(prior_warmup_weight(2500, warmup));
    assert_eq!(w, 0.5);
    let (p_logscale, p_shift) = warm_up(&p, w);

    let dot = |a: &Tensor, key: &str| (a * &fx[key]).unwrap().sum_all().unwrap();
    let vjp = [
        dot(&q.logscale, "upstream.enc_logscale"),
        dot(&q.loc, "upstream.enc_shift"),
        dot(&p_logscale, "upstream.prior_logscale_iter2500"),
        dot(&p_shift, "upstream.prior_shift_iter2500"),
    ]
    .into_iter()
    .reduce(|a, b| (a + b).unwrap())
    .unwrap();
    let grads = vjp.backward().unwrap();
    assert_close("grad x0", grads.get(&x0).unwrap(), &fx["grad.x0"], 1e-4);
    assert_close("grad x1", grads.get(&x1).unwrap(), &fx["grad.x1"], 1e-4);
}

#[test]
fn clamp_gradients_vanish_outside_the_range_and_pass_inside() {
    // The module-level clamps, on the fixture (where every clamp is active). candle keeps
    // gradients of variables only, so read them at the head's bias: d Σ_b out[b, m] / d bias[m]
    // counts the rows whose raw head lies inside the range (1 each), and none outside (0 each).
    let Reference {
        encoder,
        prior,
        fx,
        varmap,
    } = reference();
    let q = encoder.forward(&fx["input.x0"], &fx["input.x1"]).unwrap();
    let p = prior.forward(&fx["input.x0"]).unwrap();
    let loc = f64::from(LOC_CLAMP);
    let (enc_lo, enc_hi) = ENCODER_LOGSCALE_RANGE;
    let enc_logscale = (f64::from(enc_lo), f64::from(enc_hi));
    let prior_logscale = (f64::NEG_INFINITY, f64::from(PRIOR_LOGSCALE_MAX));
    let cases = [
        (
            "enc logscale",
            &q.logscale,
            &q.scale_raw,
            "encoder.scale_head",
            enc_logscale,
        ),
        (
            "enc shift",
            &q.loc,
            &q.loc_raw,
            "encoder.loc_head",
            (-loc, loc),
        ),
        (
            "prior logscale",
            &p.logscale,
            &p.scale_raw,
            "prior.scale_head",
            prior_logscale,
        ),
        (
            "prior shift",
            &p.loc,
            &p.loc_raw,
            "prior.loc_head",
            (-loc, loc),
        ),
    ];
    let map = varmap.data().lock().unwrap().clone();
    for (name, out, raw, head, (lo, hi)) in cases {
        let grads = out.sum_all().unwrap().backward().unwrap();
        let got = values(grads.get(map[&format!("{head}.bias")].as_tensor()).unwrap());
        let raw = values(raw);
        let m = got.len();
        let inside: Vec<f64> = (0..m)
            .map(|j| {
                raw.iter()
                    .skip(j)
                    .step_by(m)
                    .filter(|r| (lo..=hi).contains(*r))
                    .count() as f64
            })
            .collect();
        assert_eq!(got, inside, "{name}");
        let rows = (raw.len() / m) as f64;
        assert!(
            inside.iter().any(|&c| c < rows),
            "{name}: the fixture should exercise the clamp"
        );
    }
    // The stop-gradient: no gradient reaches the inputs through `forward`.
    let x0 = Var::from_tensor(&fx["input.x0"]).unwrap();
    let grads = prior
        .forward(x0.as_tensor())
        .unwrap()
        .loc
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert!(grads.get(&x0).is_none());
}

#[test]
fn clamp_matches_torch_clamp_including_the_boundaries() {
    let x = Var::new(&[-7.0f32, -5.0, -1.0, 0.0, 3.0, 5.0, 9.0], &Device::Cpu).unwrap();
    let y = clamp(x.as_tensor(), -5.0, 5.0).unwrap();
    assert_eq!(
        y.to_vec1::<f32>().unwrap(),
        [-5.0, -5.0, -1.0, 0.0, 3.0, 5.0, 5.0]
    );
    let w = Tensor::new(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], &Device::Cpu).unwrap();
    let grads = (y * &w).unwrap().sum_all().unwrap().backward().unwrap();
    // torch.clamp passes the gradient at the boundaries (candle's own clamp would halve it).
    assert_eq!(
        grads.get(&x).unwrap().to_vec1::<f32>().unwrap(),
        [0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0]
    );
    let y = clamp(x.as_tensor(), f64::NEG_INFINITY, 3.0).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert_eq!(
        grads.get(&x).unwrap().to_vec1::<f32>().unwrap(),
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    );
    assert!(clamp(x.as_tensor(), 1.0, -1.0).is_err());
}

// ---------------------------------------------------------------- export to the shared CPU reference

fn cpu_linear(field: &str, w: &LinearWeights) -> cpu::Linear {
    let shape = w.weight.shape_usize().unwrap();
    assert_eq!(w.bias.shape_usize().unwrap(), [shape[0]]);
    cpu::Linear::new(
        field,
        shape[1],
        shape[0],
        w.weight.to_f32_vec().unwrap(),
        w.bias.to_f32_vec().unwrap(),
    )
    .unwrap()
}

fn cpu_mlp(field: &str, w: &MlpWeights) -> cpu::Mlp {
    let trunk = w
        .trunk
        .iter()
        .enumerate()
        .map(|(i, l)| cpu_linear(&format!("{field}.trunk[{i}]"), l))
        .collect();
    cpu::Mlp::new(
        field,
        trunk,
        cpu_linear(&format!("{field}.scale_head"), &w.scale_head),
        cpu_linear(&format!("{field}.loc_head"), &w.loc_head),
    )
    .unwrap()
}

fn as_tensor(v: &[f32], rows: usize) -> Tensor {
    Tensor::from_vec(v.to_vec(), (rows, v.len() / rows), &Device::Cpu).unwrap()
}

#[test]
fn exported_weights_reproduce_the_candle_forward_on_the_shared_cpu_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let (d, m, rows) = (512, 16, 3);
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let encoder = CoefficientEncoder::new(d, m, vb.clone()).unwrap();
    let prior = PriorNetwork::new(d, m, vb).unwrap();
    // Non-negative features, as the backbone produces, some large enough to reach the clamps.
    let mut z0 = uniform(&mut rng, rows * d, 0.0, 2.0);
    let z1 = uniform(&mut rng, rows * d, 0.0, 2.0);
    for v in &mut z0[(rows - 1) * d..] {
        *v *= 400.0;
    }

    let enc_weights = encoder.export().unwrap();
    assert_eq!(enc_weights.trunk.len(), 3);
    assert_eq!(enc_weights.trunk[0].weight.shape, [2048, 1024]);
    assert_eq!(enc_weights.scale_head.weight.shape, [16, 512]);
    let enc_cpu = cpu_mlp("encoder", &enc_weights);
    let prior_cpu = cpu_mlp("prior", &prior.export().unwrap());
    assert_eq!(prior_cpu.input_dim(), d);

    let (t0, t1) = (as_tensor(&z0, rows), as_tensor(&z1, rows));
    let q = encoder.forward(&t0, &t1).unwrap();
    let concat: Vec<f32> = z0
        .chunks(d)
        .zip(z1.chunks(d))
        .flat_map(|(a, b)| a.iter().chain(b).copied())
        .collect();
    let raw = enc_cpu.forward(&concat).unwrap();
    // The clamped heads are compared with the raw heads' scale: the clamps are 1-Lipschitz, so
    // |clamp(a) − clamp(b)| ≤ |a − b|, while the clamp itself caps max|ref| (the scaled row's
    // raw heads are far beyond it, and carry proportionally larger rounding differences).
    let tol = 1e-5;
    let raw_enc = (as_tensor(&raw.scale, rows), as_tensor(&raw.loc, rows));
    assert_close(
        "enc features",
        &q.features,
        &as_tensor(&raw.features, rows),
        tol,
    );
    assert_close("enc scale raw", &q.scale_raw, &raw_enc.0, tol);
    assert_close("enc loc raw", &q.loc_raw, &raw_enc.1, tol);
    let post = cpu::CoefficientEncoder::new(enc_cpu)
        .unwrap()
        .posterior(&z0, &z1)
        .unwrap();
    let want = as_tensor(&post.logscale, rows);
    assert_close_to_scale("enc logscale", &q.logscale, &want, tol, max_abs(&raw_enc.0));
    let want = as_tensor(&post.loc, rows);
    assert_close_to_scale("enc loc", &q.loc, &want, tol, max_abs(&raw_enc.1));

    let p = prior.forward(&t0).unwrap();
    let raw = prior_cpu.forward(&z0).unwrap();
    let raw_prior = (as_tensor(&raw.scale, rows), as_tensor(&raw.loc, rows));
    assert_close(
        "prior features",
        &p.features,
        &as_tensor(&raw.features, rows),
        tol,
    );
    assert_close("prior scale raw", &p.scale_raw, &raw_prior.0, tol);
    assert_close("prior loc raw", &p.loc_raw, &raw_prior.1, tol);
    let learned = cpu::PriorNetwork::new(prior_cpu).prior(&z0).unwrap();
    let want = as_tensor(&learned.logscale, rows);
    assert_close_to_scale(
        "prior logscale",
        &p.logscale,
        &want,
        tol,
        max_abs(&raw_prior.0),
    );
    let want = as_tensor(&learned.loc, rows);
    assert_close_to_scale("prior loc", &p.loc, &want, tol, max_abs(&raw_prior.1));
    // The scaled row reaches the location clamp, so the comparison covers it.
    assert!(
        values(&p.loc)
            .iter()
            .any(|v| v.abs() == f64::from(LOC_CLAMP))
    );
}

#[test]
fn coefficient_networks_reject_mismatched_inputs() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let encoder = CoefficientEncoder::with_hidden(8, &[6, 4], 3, vb.clone()).unwrap();
    let prior = PriorNetwork::with_hidden(8, &[5], 3, vb.clone()).unwrap();
    let z =
        |rows: usize, width: usize| Tensor::zeros((rows, width), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(
        encoder.forward(&z(2, 8), &z(2, 8)).unwrap().loc.dims(),
        &[2, 3]
    );
    assert_eq!(prior.forward(&z(2, 8)).unwrap().features.dims(), &[2, 5]);
    assert!(encoder.forward(&z(2, 8), &z(3, 8)).is_err());
    assert!(encoder.forward(&z(2, 7), &z(2, 7)).is_err());
    assert!(encoder.forward(&z(0, 8), &z(0, 8)).is_err());
    assert!(prior.forward(&z(2, 9)).is_err());
    assert!(PriorNetwork::with_hidden(8, &[], 3, vb.pp("other")).is_err());
    assert!(CoefficientEncoder::with_hidden(0, &[4], 3, vb.pp("other")).is_err());
}
