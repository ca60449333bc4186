//! The paper's feature-augmentation ablations (`simclr-gaussian`, `simclr-mixup`): the noise and
//! the mixing against hand computations and moments, their seeded and resumable stream, a
//! training step of each, and their configs.

// A panic in a test is a failure with a message, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::reference::{Lcg, flat_f64};
use candle_core::{DType, Device, Tensor, Var};
use mclr_trainer::config::{Config, Method};
use mclr_trainer::feature_aug::{Layout, gaussian_noise, mixup};
use mclr_trainer::model::ssl::{Group, SslModel};
use mclr_trainer::sampling::NoiseSource;
use mclr_trainer::train::step::{NOISE_STREAM, Objective, ObjectiveState};

const CPU: Device = Device::Cpu;

/// A built-in config shrunk to a 32-d backbone (base width 4).
fn shrunk(name: &str, extra: &[&str]) -> Config {
    let mut sets = vec!["model.base_width=4".to_owned()];
    sets.extend(extra.iter().map(|s| (*s).to_owned()));
    Config::resolve(name, &sets).unwrap()
}

fn tensor(rows: usize, cols: usize, values: &[f32]) -> Tensor {
    Tensor::from_slice(values, (rows, cols), &CPU).unwrap()
}

fn random(rows: usize, cols: usize, seed: u64) -> Tensor {
    let values = Lcg::new(seed).normals(rows * cols, 1.0);
    tensor(rows, cols, &values)
}

fn rows(t: &Tensor) -> Vec<Vec<f64>> {
    let (_, d) = t.dims2().unwrap();
    flat_f64(t).chunks(d).map(<[f64]>::to_vec).collect()
}

/// Mean and variance of `values`.
fn moments(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var)
}

#[test]
fn the_noise_stream_draws_standard_normals() {
    let mut source = NoiseSource::new(3);
    let values = flat_f64(&source.normal((1000, 101), &CPU).unwrap());
    let (mean, var) = moments(&values);
    assert!(mean.abs() < 0.01, "mean {mean}");
    assert!((var - 1.0).abs() < 0.02, "variance {var}");
    let within = values.iter().filter(|v| v.abs() < 1.0).count() as f64 / values.len() as f64;
    assert!((within - 0.6827).abs() < 0.01, "P(|x| < 1) = {within}");
    // Same seed, same values; an odd count is a prefix of the next even one.
    let a = flat_f64(&NoiseSource::new(9).normal(7, &CPU).unwrap());
    let b = flat_f64(&NoiseSource::new(9).normal(8, &CPU).unwrap());
    assert_eq!(a[..], b[..7]);
}

#[test]
fn gaussian_augmentation_adds_noise_of_the_configured_std_from_the_seeded_stream() {
    let config = shrunk(
        "cifar10-simclr-gaussaug",
        &["method.feature_noise_scale=0.5", "run.seed=11"],
    );
    let model = SslModel::new(&config, 32, &CPU).unwrap();
    let (b, d) = (2048, config.feature_dim());
    assert_eq!(d, 32);
    // z1 = z0 + a step of length r_i ∈ {1, 4, 9, 16} along one axis: the std of row i is
    // 0.5 · sqrt(r_i).
    let z0 = random(b, d, 1);
    let radius: Vec<f64> = (0..b).map(|i| ((i % 4 + 1) * (i % 4 + 1)) as f64).collect();
    let mut offset = vec![0f32; b * d];
    for i in 0..b {
        offset[i * d + i % d] = radius[i] as f32;
    }
    let z1 = (&z0 + tensor(b, d, &offset)).unwrap();
    let mut objective = Objective::new(&config);
    let out = objective.head_step(&model, &z0, &z1, 0).unwrap();
    let z_aug = out.tensors.z_aug.clone().unwrap();

    let noise = rows(&(&z_aug - &z0).unwrap());
    let mut standardised = Vec::new();
    for (i, row) in noise.iter().enumerate() {
        let std = 0.5 * radius[i].sqrt();
        standardised.extend(row.iter().map(|v| v / std));
    }
    let (mean, var) = moments(&standardised);
    assert!(mean.abs() < 0.02, "mean {mean}");
    assert!((var - 1.0).abs() < 0.03, "variance {var}");
    // Each distance group on its own has unit variance after dividing by its own std.
    for group in 0..4 {
        let values: Vec<f64> = noise
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 4 == group)
            .flat_map(|(i, row)| {
                let std = 0.5 * radius[i].sqrt();
                row.iter().map(move |v| v / std)
            })
            .collect();
        let (_, var) = moments(&values);
        assert!((var - 1.0).abs() < 0.05, "group {group}: variance {var}");
    }

    // Exactly the stream's first (B, d) normals, scaled by the row's std.
    let eps = NoiseSource::new(11 ^ NOISE_STREAM)
        .normal((b, d), &CPU)
        .unwrap();
    let want = gaussian_noise(&z0, &z1, &eps, 0.5, Layout::PerSample).unwrap();
    assert_eq!(flat_f64(&z_aug), flat_f64(&want));
    let terms = out.read_terms().unwrap();
    assert!(terms.contrastive.is_finite() && terms.contrastive > 0.0);
    assert_eq!(terms.total, terms.contrastive);
    assert_eq!((terms.manifold, terms.kl, terms.shift), (0.0, 0.0, 0.0));
}

#[test]
fn gaussian_noise_matches_a_hand_computation_in_both_layouts() {
    // Distances 4 and 9 (std 2 and 3).
    let z0 = tensor(2, 2, &[1.0, 2.0, 3.0, 4.0]);
    let z1 = tensor(2, 2, &[1.0, 6.0, -6.0, 4.0]);
    let eps = tensor(2, 2, &[0.5, -1.0, 2.0, 0.25]);
    let got = gaussian_noise(&z0, &z1, &eps, 1.0, Layout::PerSample).unwrap();
    assert_eq!(
        flat_f64(&got),
        [1.0 + 1.0, 2.0 - 2.0, 3.0 + 6.0, 4.0 + 0.75]
    );
    // The reference's broadcast: column j gets eps_j · sqrt(dist_j) in every row.
    let eps = tensor(1, 2, &[0.5, -1.0]);
    let got = gaussian_noise(&z0, &z1, &eps, 2.0, Layout::PerDimension).unwrap();
    assert_eq!(flat_f64(&got), [1.0 + 2.0, 2.0 - 6.0, 3.0 + 2.0, 4.0 - 6.0]);
    // Per dimension needs B = d.
    let z = random(3, 2, 5);
    assert!(gaussian_noise(&z, &z, &eps, 1.0, Layout::PerDimension).is_err());
}

#[test]
fn gaussian_noise_passes_gradients_to_z0_only_as_an_identity() {
    let (z0, z1) = (Var::from_tensor(&random(4, 3, 1)).unwrap(), random(4, 3, 2));
    let eps = random(4, 3, 3);
    let out = gaussian_noise(z0.as_tensor(), &z1, &eps, 1.0, Layout::PerSample).unwrap();
    let grads = out.sum_all().unwrap().backward().unwrap();
    assert_eq!(flat_f64(grads.get(z0.as_tensor()).unwrap()), vec![1.0; 12]);
}

#[test]
fn per_sample_mixup_equals_a_hand_computation() {
    let z0 = tensor(
        3,
        4,
        &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0],
    );
    let z1 = tensor(
        3,
        4,
        &[
            4.0, 5.0, 6.0, 7.0, -4.0, -4.0, -4.0, -4.0, 0.0, 0.0, 0.0, 0.0,
        ],
    );
    let lambda = tensor(3, 1, &[0.25, 0.5, 0.0]);
    let got = mixup(&z0, &z1, &lambda, Layout::PerSample).unwrap();
    // Every dimension of row i uses λ_i: 0.25·z1 + 0.75·z0, 0.5·z1 + 0.5·z0, z0.
    let want = [
        1.0, 2.0, 3.0, 4.0, //
        0.0, 0.5, 1.0, 1.5, //
        8.0, 9.0, 10.0, 11.0,
    ];
    assert_eq!(flat_f64(&got), want);

    // The reference's broadcast (B = d): column j uses λ_j in every row.
    let z0 = tensor(2, 2, &[0.0, 0.0, 4.0, 8.0]);
    let z1 = tensor(2, 2, &[4.0, 8.0, 0.0, 0.0]);
    let lambda = tensor(1, 2, &[0.25, 0.5]);
    let got = mixup(&z0, &z1, &lambda, Layout::PerDimension).unwrap();
    assert_eq!(flat_f64(&got), [1.0, 4.0, 3.0, 4.0]);
    // Wrong draw shapes are refused.
    assert!(mixup(&z0, &z1, &tensor(2, 2, &[0.0; 4]), Layout::PerSample).is_err());
    let z = random(3, 2, 1);
    assert!(mixup(&z, &z, &tensor(1, 2, &[0.5; 2]), Layout::PerDimension).is_err());
}

#[test]
fn mixup_passes_gradients_to_both_views() {
    let (z0, z1) = (
        Var::from_tensor(&random(2, 3, 1)).unwrap(),
        Var::from_tensor(&random(2, 3, 2)).unwrap(),
    );
    let lambda = tensor(2, 1, &[0.25, 0.75]);
    let out = mixup(z0.as_tensor(), z1.as_tensor(), &lambda, Layout::PerSample).unwrap();
    let grads = out.sum_all().unwrap().backward().unwrap();
    let g0 = flat_f64(grads.get(z0.as_tensor()).unwrap());
    let g1 = flat_f64(grads.get(z1.as_tensor()).unwrap());
    assert_eq!(g0, [0.75, 0.75, 0.75, 0.25, 0.25, 0.25]);
    assert_eq!(g1, [0.25, 0.25, 0.25, 0.75, 0.75, 0.75]);
}

#[test]
fn the_mixup_objective_draws_one_lambda_per_row_from_the_seeded_stream() {
    let config = shrunk("cifar10-simclr-mixup", &["run.seed=5"]);
    let model = SslModel::new(&config, 32, &CPU).unwrap();
    let (b, d) = (16, config.feature_dim());
    let (z0, z1) = (random(b, d, 1), random(b, d, 2));
    let out = Objective::new(&config)
        .head_step(&model, &z0, &z1, 0)
        .unwrap();
    let z_aug = out.tensors.z_aug.clone().unwrap();
    let lambda = flat_f64(
        &NoiseSource::new(5 ^ NOISE_STREAM)
            .uniform((b, 1), &CPU)
            .unwrap(),
    );
    for (i, ((a, x0), x1)) in rows(&z_aug)
        .iter()
        .zip(rows(&z0))
        .zip(rows(&z1))
        .enumerate()
    {
        let l = lambda[i] + 0.5;
        assert!((0.0..1.0).contains(&l));
        for j in 0..d {
            let want = (l as f32) * x1[j] as f32 + (1.0 - l as f32) * x0[j] as f32;
            assert!(
                (a[j] - f64::from(want)).abs() < 1e-5,
                "row {i}, dim {j}: {} vs {want}",
                a[j]
            );
        }
    }
}

/// Two steps of `config`'s objective on fixed features: their z_aug and losses, and the state
/// after the first.
fn two_steps(config: &Config, state: Option<&ObjectiveState>) -> (Vec<Vec<f64>>, ObjectiveState) {
    let model = SslModel::new(config, 32, &CPU).unwrap();
    let d = config.feature_dim();
    let mut objective = Objective::with_state(config, state);
    let mut seen = Vec::new();
    let mut after_first = None;
    for step in 0..2 {
        let (z0, z1) = (random(8, d, 10 + step), random(8, d, 20 + step));
        let out = objective.head_step(&model, &z0, &z1, step).unwrap();
        let mut values = flat_f64(&out.tensors.z_aug.clone().unwrap());
        values.push(out.read_terms().unwrap().total);
        seen.push(values);
        after_first.get_or_insert_with(|| objective.state());
    }
    (seen, after_first.unwrap())
}

#[test]
fn the_augmentation_is_reproducible_and_resumes_exactly() {
    for name in ["cifar10-simclr-gaussaug", "cifar10-simclr-mixup"] {
        let config = shrunk(name, &["run.seed=3"]);
        let (first, state) = two_steps(&config, None);
        let (again, _) = two_steps(&config, None);
        assert_eq!(first, again, "{name}: same seed, same draws");
        assert_ne!(first[0], first[1], "{name}: the stream moves on");
        // A resumed objective (state after step 0, through its serialised form) draws step 1's
        // noise for its first step.
        let state: ObjectiveState =
            serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
        let model = SslModel::new(&config, 32, &CPU).unwrap();
        let d = config.feature_dim();
        let (z0, z1) = (random(8, d, 11), random(8, d, 21));
        let out = Objective::with_state(&config, Some(&state))
            .head_step(&model, &z0, &z1, 1)
            .unwrap();
        let mut resumed = flat_f64(&out.tensors.z_aug.clone().unwrap());
        resumed.push(out.read_terms().unwrap().total);
        assert_eq!(resumed, first[1], "{name}: resumed continuation");
        let other = shrunk(name, &["run.seed=4"]);
        assert_ne!(two_steps(&other, None).0, first, "{name}: another seed");
    }
}

#[test]
fn a_training_step_of_each_ablation_reaches_the_backbone() {
    for name in ["cifar10-simclr-gaussaug", "cifar10-simclr-mixup"] {
        for per_dimension in [false, true] {
            // Per dimension needs B = d = 32.
            let batch = if per_dimension { 32 } else { 8 };
            let config = shrunk(
                name,
                &[
                    &format!("method.feature_aug_per_dimension={per_dimension}"),
                    &format!("optim.batch_size={batch}"),
                ],
            );
            let model = SslModel::new(&config, 32, &CPU).unwrap();
            assert!(model.manifold.is_none() && model.projection.is_none());
            let images = |seed| {
                let values = Lcg::new(seed).normals(batch * 3 * 32 * 32, 0.5);
                Tensor::from_vec(values, (batch, 3, 32, 32), &CPU).unwrap()
            };
            let out = Objective::new(&config)
                .step(&model, &images(1), &images(2), 0)
                .unwrap();
            let terms = out.read_terms().unwrap();
            assert!(
                terms.total.is_finite() && terms.total > 0.0,
                "{name}: {terms:?}"
            );
            let grads = out.loss.backward().unwrap();
            let backbone = model.group_vars(Group::Backbone);
            assert!(!backbone.is_empty());
            let mut reached = 0;
            for (var_name, var) in &backbone {
                let Some(g) = grads.get(var.as_tensor()) else {
                    continue;
                };
                let g = flat_f64(&g.to_dtype(DType::F64).unwrap());
                assert!(g.iter().all(|x| x.is_finite()), "{name}: {var_name}");
                if g.iter().any(|x| *x != 0.0) {
                    reached += 1;
                }
            }
            assert!(
                reached * 2 > backbone.len(),
                "{name} (per dimension {per_dimension}): gradients reached {reached} of {} \
                 backbone variables",
                backbone.len()
            );
        }
    }
}

#[test]
fn the_ablation_configs_resolve_with_the_references_values() {
    for ds in ["cifar10", "stl10", "tin"] {
        for (suffix, kind) in [
            ("gaussaug", Method::SimclrGaussian),
            ("mixup", Method::SimclrMixup),
        ] {
            let name = format!("{ds}-simclr-{suffix}");
            let c = Config::resolve(&name, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(c.name, name);
            assert_eq!(c.method.kind, kind, "{name}");
            assert!(!c.model.projection_head, "{name}");
            assert_eq!(c.loss.temperature, 0.5, "{name}");
            assert_eq!(c.method.feature_noise_scale, 1.0, "{name}");
            assert!(!c.method.feature_aug_per_dimension, "{name}");
            let lr = if ds == "cifar10" { 3e-3 } else { 2e-3 };
            assert_eq!(c.optim.backbone.lr, lr, "{name}");
            assert_eq!(c.optim.backbone.weight_decay, 1e-5, "{name}");
            assert_eq!((c.optim.epochs, c.optim.batch_size), (1000, 512), "{name}");
            assert_eq!(c.optim.warmup_epochs, 10.0, "{name}");
            assert_eq!(c.model.base_width, 64, "{name}");
            // The reference's per-dimension broadcast fits the paper's B = d = 512.
            Config::resolve(&name, &["method.feature_aug_per_dimension=true".into()]).unwrap();
        }
    }
    assert_eq!(
        Config::resolve("cifar10-simclr-mixup", &[])
            .unwrap()
            .method
            .kind
            .name(),
        "simclr-mixup"
    );
    // The kind round-trips through the resolved TOML a run saves.
    let c = Config::resolve("stl10-simclr-gaussaug", &[]).unwrap();
    assert!(c.to_toml().unwrap().contains("kind = \"simclr-gaussian\""));
}

#[test]
fn the_ablations_refuse_a_head_and_a_per_dimension_batch_other_than_d() {
    let err = Config::resolve(
        "cifar10-simclr-mixup",
        &["model.projection_head=true".into()],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("model.projection_head"), "{err}");
    let err = Config::resolve(
        "cifar10-simclr-gaussaug",
        &[
            "method.feature_aug_per_dimension=true".into(),
            "optim.batch_size=256".into(),
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("optim.batch_size") && err.contains("512"),
        "{err}"
    );
    let err = Config::resolve(
        "cifar10-simclr-gaussaug",
        &["method.feature_noise_scale=-1".into()],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("method.feature_noise_scale"), "{err}");
}
