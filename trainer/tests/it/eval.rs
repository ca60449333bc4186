//! Evaluation protocols on synthetic features whose answer is known: well-separated Gaussian
//! clusters (every protocol near 100%), the same features with shuffled labels (near chance), a
//! brute-force f64 kNN oracle, closed-form purities, and elongated clusters on which an
//! augmentation that follows the class structure must help the few-labels classifier.

// Tests unwrap: a panic is a test failure with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use candle_core::{Device, Tensor};
use mclr_shared::operators::{LaplaceParams, Linear, Mlp, Operators, PriorNetwork};
use mclr_trainer::Error;
use mclr_trainer::augment::rng::StreamRng;
use mclr_trainer::eval::knn::KnnClassifier;
use mclr_trainer::eval::semisup::sample_beta;
use mclr_trainer::eval::{
    AugmentNnSetting, AugmentationNnConfig, Features, IdentityConfig, KMeansConfig, KnnVote,
    LinearProbe, LinearProbeConfig, Method, Report, SemiSupervisedConfig, augmentation_nn,
    identity_preservation, kmeans, kmeans_purity, knn_accuracy, knn_predict, linear_probe,
    mean_scales, purity, semi_supervised,
};

/// The evaluation heads train on the CPU here.
const CPU: &Device = &Device::Cpu;

/// A standard normal draw (Box–Muller) from the library's seeded stream.
fn normal(rng: &mut StreamRng) -> f32 {
    let u1 = 1.0 - rng.unit(); // (0, 1]
    let u2 = rng.unit();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// `per_class` rows of each of `classes` isotropic Gaussian clusters in `dim` dimensions, centred at
/// `spread · e_c` with standard deviation `sigma` (well separated when `spread ≫ sigma`).
fn clusters(
    classes: usize,
    per_class: usize,
    dim: usize,
    spread: f32,
    sigma: f32,
    seed: u64,
) -> Features {
    assert!(classes <= dim);
    let mut rng = StreamRng::from_words(&[seed]);
    let mut data = Vec::new();
    let mut labels = Vec::new();
    for i in 0..classes * per_class {
        let c = i % classes;
        for j in 0..dim {
            let centre = if j == c { spread } else { 0.0 };
            data.push(centre + sigma * normal(&mut rng));
        }
        labels.push(c as u16);
    }
    Features::new(data, dim, labels, classes).unwrap()
}

/// `features` with its labels permuted by a seeded shuffle: the features say nothing about them.
fn shuffled(features: &Features, seed: u64) -> Features {
    let mut labels = features.labels().to_vec();
    StreamRng::from_words(&[seed, 7]).shuffle(&mut labels);
    features.with_labels(labels).unwrap()
}

// ---- Features ----

#[test]
fn features_reject_ragged_data_out_of_range_labels_and_nan() {
    assert!(matches!(
        Features::new(vec![0.0; 5], 2, vec![0, 1], 2),
        Err(Error::Shape {
            expected: 4,
            found: 5,
            ..
        })
    ));
    assert!(matches!(
        Features::new(vec![0.0; 4], 2, vec![0, 2], 2),
        Err(Error::InvalidSetting {
            setting: "labels",
            ..
        })
    ));
    assert!(matches!(
        Features::new(vec![0.0, f32::NAN, 0.0, 0.0], 2, vec![0, 1], 2),
        Err(Error::InvalidSetting {
            setting: "features",
            ..
        })
    ));
    assert!(Features::new(vec![], 3, vec![], 2).unwrap().is_empty());
}

#[test]
fn sample_draws_distinct_rows_reproducibly() {
    let features = clusters(3, 20, 4, 5.0, 0.5, 1);
    let a = features.sample(25, 9);
    assert_eq!(a, features.sample(25, 9));
    assert_eq!(a.len(), 25);
    let mut rows: Vec<Vec<u32>> = a
        .data()
        .chunks(4)
        .map(|r| r.iter().map(|v| v.to_bits()).collect())
        .collect();
    rows.sort();
    rows.dedup();
    assert_eq!(rows.len(), 25);
    assert_eq!(features.sample(1000, 9).len(), 60);
}

// ---- linear probe ----

/// A probe short enough for a test: 40 epochs of minibatches of 100, decaying only to 1e-4 (the
/// full decay to 1e-6 squeezed into 40 epochs would leave it undertrained).
fn short_probe() -> LinearProbeConfig {
    LinearProbeConfig {
        epochs: 40,
        batch_size: 100,
        final_lr: 1e-4,
        ..LinearProbeConfig::default()
    }
}

#[test]
fn linear_probe_separates_gaussian_clusters() {
    let train = clusters(8, 60, 16, 5.0, 0.5, 1);
    let test = clusters(8, 30, 16, 5.0, 0.5, 2);
    let result = linear_probe(&train, &test, &short_probe(), CPU).unwrap();
    assert!(result.top1 > 0.99, "top-1 {}", result.top1);
    assert!(result.top5 >= result.top1);
    assert_eq!(
        (result.epochs, result.train_rows, result.test_rows),
        (40, 480, 240)
    );
}

#[test]
fn linear_probe_on_shuffled_labels_is_at_chance() {
    let train = shuffled(&clusters(8, 60, 16, 5.0, 0.5, 1), 1);
    let test = shuffled(&clusters(8, 60, 16, 5.0, 0.5, 2), 2);
    let result = linear_probe(&train, &test, &short_probe(), CPU).unwrap();
    assert!(
        (result.top1 - 1.0 / 8.0).abs() < 0.06,
        "top-1 {}",
        result.top1
    );
    assert!(
        (result.top5 - 5.0 / 8.0).abs() < 0.08,
        "top-5 {}",
        result.top5
    );
}

#[test]
fn linear_probe_is_reproducible_for_a_seed() {
    let train = clusters(3, 20, 4, 1.0, 1.0, 3);
    let config = LinearProbeConfig {
        epochs: 5,
        batch_size: 16,
        seed: 4,
        ..LinearProbeConfig::default()
    };
    let a = linear_probe(&train, &train, &config, CPU).unwrap();
    let b = linear_probe(&train, &train, &config, CPU).unwrap();
    assert_eq!(a, b);
}

#[test]
fn linear_probe_rejects_zero_epochs_and_mismatched_test_features() {
    let train = clusters(3, 5, 4, 5.0, 0.5, 1);
    let zero = LinearProbeConfig {
        epochs: 0,
        ..short_probe()
    };
    assert!(matches!(
        linear_probe(&train, &train, &zero, CPU),
        Err(Error::InvalidSetting {
            setting: "linear.epochs",
            ..
        })
    ));
    let other = clusters(3, 5, 5, 5.0, 0.5, 1);
    assert!(matches!(
        linear_probe(&train, &other, &short_probe(), CPU),
        Err(Error::InvalidSetting { .. })
    ));
}

// ---- kNN ----

#[test]
fn knn_votes_classify_separated_clusters() {
    let train = clusters(8, 60, 16, 5.0, 0.5, 1);
    let test = clusters(8, 30, 16, 5.0, 0.5, 2);
    let majority = knn_accuracy(&train, &test, KnnVote::PAPER).unwrap();
    let weighted = knn_accuracy(&train, &test, KnnVote::LIGHTLY).unwrap();
    assert!(majority.top1 > 0.99, "majority {}", majority.top1);
    assert!(weighted.top1 > 0.99, "weighted {}", weighted.top1);
    assert_eq!((majority.k, majority.temperature), (5, None));
    assert_eq!((weighted.k, weighted.temperature), (200, Some(0.1)));
}

#[test]
fn knn_votes_on_shuffled_labels_are_at_chance() {
    let train = shuffled(&clusters(8, 60, 16, 5.0, 0.5, 1), 1);
    let test = shuffled(&clusters(8, 60, 16, 5.0, 0.5, 2), 2);
    let knn = KnnClassifier::new(&train).unwrap();
    for vote in [KnnVote::PAPER, KnnVote::LIGHTLY] {
        let top1 = knn.evaluate(&test, vote).unwrap().top1;
        assert!((top1 - 1.0 / 8.0).abs() < 0.06, "{vote:?}: {top1}");
    }
}

/// Cosine similarities in f64, all neighbours sorted best first (ties to the lower row).
fn brute_force_neighbours(train: &Features, query: &[f32]) -> Vec<(usize, f64)> {
    let norm = |v: &[f32]| v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    let mut sims: Vec<(usize, f64)> = train
        .data()
        .chunks(train.dim())
        .enumerate()
        .map(|(i, row)| {
            let dot: f64 = row
                .iter()
                .zip(query)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            (i, dot / (norm(row) * norm(query)))
        })
        .collect();
    sims.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    sims
}

#[test]
fn knn_predictions_match_a_brute_force_oracle() {
    let train = clusters(4, 15, 6, 1.0, 1.0, 5); // overlapping clusters: votes are not unanimous
    let queries = clusters(4, 10, 6, 1.0, 1.0, 6);
    for (vote, k, temperature) in [
        (KnnVote::PAPER, 5, None),
        (
            KnnVote::Weighted {
                k: 7,
                temperature: 0.5,
            },
            7,
            Some(0.5),
        ),
        (KnnVote::LIGHTLY, 200, Some(0.1)), // k above the gallery size: every row votes
    ] {
        let predicted = knn_predict(&train, queries.data(), vote).unwrap();
        for (q, query) in queries.data().chunks(6).enumerate() {
            let mut scores = [0.0_f64; 4];
            for &(i, sim) in brute_force_neighbours(&train, query).iter().take(k) {
                let label = train.labels()[i] as usize;
                scores[label] += temperature.map_or(1.0, |t: f64| (sim / t).exp());
            }
            let best = scores.iter().copied().fold(f64::MIN, f64::max);
            let expected = scores.iter().position(|&s| s == best).unwrap() as u16;
            assert_eq!(
                predicted[q], expected,
                "{vote:?}, query {q}: scores {scores:?}"
            );
        }
    }
}

#[test]
fn knn_majority_tie_goes_to_the_smallest_tied_class() {
    // The query's two nearest rows are of classes 2 and 1 (one vote each): class 1 wins.
    let train = Features::new(vec![1.0, 0.0, 1.0, 0.1, -1.0, 0.0], 2, vec![2, 1, 0], 3).unwrap();
    let predicted = knn_predict(&train, &[1.0, 0.04], KnnVote::Majority { k: 2 }).unwrap();
    assert_eq!(predicted, vec![1]);
}

#[test]
fn knn_rejects_zero_k_and_non_positive_temperature() {
    let train = clusters(3, 5, 4, 5.0, 0.5, 1);
    assert!(matches!(
        knn_predict(&train, train.data(), KnnVote::Majority { k: 0 }),
        Err(Error::InvalidSetting {
            setting: "knn.k",
            ..
        })
    ));
    assert!(matches!(
        knn_predict(
            &train,
            train.data(),
            KnnVote::Weighted {
                k: 3,
                temperature: 0.0
            }
        ),
        Err(Error::InvalidSetting {
            setting: "knn.temperature",
            ..
        })
    ));
}

// ---- k-means ----

#[test]
fn kmeans_purity_is_one_on_separated_clusters() {
    let features = clusters(8, 50, 16, 10.0, 0.5, 3);
    let result = kmeans_purity(&features, &KMeansConfig::default()).unwrap();
    assert!(result.purity > 0.999, "purity {}", result.purity);
    assert_eq!((result.clusters, result.rows), (8, 400));
}

#[test]
fn kmeans_purity_on_uniform_noise_with_shuffled_labels_is_near_chance() {
    let mut rng = StreamRng::from_words(&[11]);
    let rows = 2000;
    let data: Vec<f32> = (0..rows * 8)
        .map(|_| rng.uniform(-1.0, 1.0) as f32)
        .collect();
    let labels: Vec<u16> = (0..rows).map(|i| (i % 4) as u16).collect();
    let features = shuffled(&Features::new(data, 8, labels, 4).unwrap(), 3);
    let result = kmeans_purity(&features, &KMeansConfig::default()).unwrap();
    // Taking each cluster's majority biases purity a little above 1/4.
    assert!(
        (0.25..0.32).contains(&result.purity),
        "purity {}",
        result.purity
    );
}

#[test]
fn the_kmeans_subset_is_numpys_integer_linspace() {
    use mclr_trainer::eval::kmeans::evenly_spaced;
    // np.linspace(0, n - 1, k, dtype=int) for each (n, k), computed by hand.
    assert_eq!(evenly_spaced(10, 4), [0, 3, 6, 9]);
    assert_eq!(evenly_spaced(10, 3), [0, 4, 9]);
    assert_eq!(evenly_spaced(100, 7), [0, 16, 33, 49, 66, 82, 99]);
    assert_eq!(evenly_spaced(5, 1), [0]);
    assert_eq!(evenly_spaced(3, 8), [0, 1, 2]);
    // Tiny ImageNet's validation set is sorted by class (50 per class): the first 5,000 rows
    // hold 100 of the 200 classes, the evenly spaced ones all 200.
    let classes: std::collections::BTreeSet<usize> =
        evenly_spaced(10_000, 5000).iter().map(|i| i / 50).collect();
    assert_eq!(classes.len(), 200);
}

#[test]
fn kmeans_keeps_the_lowest_inertia_of_its_restarts() {
    let features = clusters(6, 30, 8, 1.5, 1.0, 9);
    let single = |seed| {
        let config = KMeansConfig {
            seed,
            restarts: 1,
            ..KMeansConfig::default()
        };
        kmeans_purity(&features, &config).unwrap().inertia
    };
    let best = kmeans_purity(&features, &KMeansConfig::default()).unwrap();
    assert!(
        best.inertia <= single(0),
        "{} > {}",
        best.inertia,
        single(0)
    );
    let config = KMeansConfig {
        restarts: 0,
        ..KMeansConfig::default()
    };
    assert!(matches!(
        kmeans_purity(&features, &config),
        Err(Error::InvalidSetting {
            setting: "kmeans.restarts",
            ..
        })
    ));
}

#[test]
fn kmeans_converges_to_the_means_of_its_clusters() {
    let features = clusters(3, 40, 5, 2.0, 1.0, 4);
    let fit = kmeans(features.data(), 5, 3, 300, 0).unwrap();
    assert!(fit.converged);
    let mut inertia = 0.0;
    for c in 0..3 {
        let rows: Vec<&[f32]> = features
            .data()
            .chunks(5)
            .zip(&fit.assignments)
            .filter(|&(_, &a)| a == c)
            .map(|(r, _)| r)
            .collect();
        assert!(!rows.is_empty());
        for j in 0..5 {
            let mean = rows.iter().map(|r| f64::from(r[j])).sum::<f64>() / rows.len() as f64;
            assert!((mean - f64::from(fit.centroids[c * 5 + j])).abs() < 1e-5);
        }
        for r in &rows {
            // Each row is at least as near its own centroid as any other.
            let dist = |k: usize| -> f64 {
                r.iter()
                    .zip(&fit.centroids[k * 5..k * 5 + 5])
                    .map(|(&a, &b)| f64::from(a - b).powi(2))
                    .sum()
            };
            assert!((0..3).all(|k| dist(c) <= dist(k) + 1e-5));
            inertia += dist(c);
        }
    }
    assert!((inertia - fit.inertia).abs() < 1e-3 * inertia);
}

#[test]
fn purity_counts_each_clusters_majority_class() {
    // Cluster 0: labels 0,0,1 (majority 2); cluster 1: 1,2 (1); cluster 2: 2 (1): 4 of 6.
    let purity = purity(&[0, 0, 0, 1, 1, 2], &[0, 0, 1, 1, 2, 2], 3, 3);
    assert!((purity - 4.0 / 6.0).abs() < 1e-12);
}

#[test]
fn kmeans_rejects_more_clusters_than_rows() {
    let features = clusters(2, 2, 2, 5.0, 0.5, 1);
    let config = KMeansConfig {
        clusters: Some(5),
        ..KMeansConfig::default()
    };
    assert!(matches!(
        kmeans_purity(&features, &config),
        Err(Error::InvalidSetting {
            setting: "kmeans.clusters",
            ..
        })
    ));
}

// ---- semi-supervised ----

/// Signal dimensions (class means `SEPARATION · e_c`) and nuisance dimensions (within-class
/// spread, the same for every class) of the elongated clusters.
const SIGNAL: usize = 4;
const NUISANCE: usize = 12;
const NUISANCE_SIGMA: f32 = 3.0;

/// Elongated clusters: each class is tight in the signal dimensions and spread widely along the
/// nuisance ones. With 5 labels per class (20 points in 16 dimensions) a classifier can fit the
/// labels through the nuisance dimensions, which do not generalise.
fn elongated(per_class: usize, seed: u64) -> Features {
    let mut rng = StreamRng::from_words(&[seed, 99]);
    let mut data = Vec::new();
    let mut labels = Vec::new();
    for i in 0..SIGNAL * per_class {
        let c = i % SIGNAL;
        for j in 0..SIGNAL {
            data.push(if j == c { 2.0 } else { 0.0 } + 0.4 * normal(&mut rng));
        }
        for _ in 0..NUISANCE {
            data.push(NUISANCE_SIGMA * normal(&mut rng));
        }
        labels.push(c as u16);
    }
    Features::new(data, SIGNAL + NUISANCE, labels, SIGNAL).unwrap()
}

/// Moves each row along the within-class (nuisance) directions: a class-preserving augmentation.
fn along_nuisance(z: &Tensor, _: &[u32], rng: &mut StreamRng) -> mclr_trainer::Result<Tensor> {
    let (rows, dim) = z.dims2()?;
    let shift: Vec<f32> = (0..rows * dim)
        .map(|i| {
            if i % dim >= SIGNAL {
                NUISANCE_SIGMA * normal(rng)
            } else {
                0.0
            }
        })
        .collect();
    Ok((z + Tensor::from_vec(shift, (rows, dim), z.device())?)?)
}

#[test]
fn structure_following_augmentation_beats_supervised_only_with_few_labels() {
    let train = elongated(200, 1);
    let test = elongated(100, 2);
    // Shortened for a test: few iterations, so a faster rate and a shorter EMA.
    let config = SemiSupervisedConfig {
        trials: 3,
        iterations: 300,
        hidden: 128,
        lr: 3e-3,
        ema_decay: 0.95,
        ..SemiSupervisedConfig::default()
    };
    let supervised = semi_supervised(&train, &test, Method::SupervisedOnly, &config, CPU).unwrap();
    let augmented = semi_supervised(
        &train,
        &test,
        Method::Augmented {
            name: "along-nuisance",
            augment: &along_nuisance,
        },
        &config,
        CPU,
    )
    .unwrap();
    assert_eq!(supervised.method, "supervised-only");
    assert_eq!(augmented.method, "along-nuisance");
    assert_eq!(augmented.trials.len(), 3);
    assert!(
        augmented.mean > supervised.mean + 0.15,
        "augmented {augmented:?}\nsupervised {supervised:?}"
    );
}

/// Three well-separated clusters of 30 rows in 4 dimensions, with a small, fast semi-supervised
/// setting of 2 trials × `iterations`.
fn three_clusters(iterations: usize) -> (Features, SemiSupervisedConfig) {
    let config = SemiSupervisedConfig {
        trials: 2,
        iterations,
        hidden: 16,
        lr: 1e-2,
        ema_decay: 0.5,
        ..SemiSupervisedConfig::default()
    };
    (clusters(3, 30, 4, 5.0, 0.5, 1), config)
}

#[test]
fn semi_supervised_trials_are_reproducible_and_pseudo_labelling_runs() {
    let (train, config) = three_clusters(20);
    let a = semi_supervised(&train, &train, Method::PseudoLabel, &config, CPU).unwrap();
    let b = semi_supervised(&train, &train, Method::PseudoLabel, &config, CPU).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.method, "pseudo-label");
    let mean = a.trials.iter().sum::<f64>() / 2.0;
    let std = (a.trials.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
    assert!((a.mean - mean).abs() < 1e-12 && (a.std - std).abs() < 1e-12);
}

#[test]
fn pseudo_labels_are_counted_against_the_hidden_labels_in_the_first_and_last_tenth() {
    // 3 classes × 30 rows, 5 labelled per class: 75 unlabelled rows, all of them in every batch.
    let (train, config) = three_clusters(95);
    let pseudo = semi_supervised(&train, &train, Method::PseudoLabel, &config, CPU).unwrap();
    let trend = pseudo.pseudo_labels.unwrap();
    // Each window is ⌈95 / 10⌉ = 10 iterations of 75 rows, in each of 2 trials.
    for window in [trend.first, trend.last] {
        assert_eq!(window.rows, 2 * 10 * 75, "{trend:?}");
        assert!(window.correct <= window.confident && window.confident <= window.rows);
    }
    // Well-separated clusters: the classifier ends confident, and right, on nearly every row.
    assert!(trend.last.confident_share() > 0.9, "{trend:?}");
    assert!(trend.last.accuracy().unwrap() > 0.95, "{trend:?}");
    assert!(trend.last.confident > trend.first.confident, "{trend:?}");
    for method in [Method::SupervisedOnly, Method::Mixup] {
        let result = semi_supervised(&train, &train, method, &config, CPU).unwrap();
        assert_eq!(result.pseudo_labels, None, "{}", result.method);
    }
}

#[test]
fn augmentation_that_changes_the_shape_is_rejected() {
    let train = clusters(2, 10, 3, 5.0, 0.5, 1);
    let config = SemiSupervisedConfig {
        trials: 1,
        iterations: 50,
        hidden: 8,
        lr: 1e-1,
        threshold: 0.0,
        ..SemiSupervisedConfig::default()
    };
    let drop_row = |z: &Tensor, _: &[u32], _: &mut StreamRng| -> mclr_trainer::Result<Tensor> {
        Ok(z.narrow(0, 1, 2)?)
    };
    let result = semi_supervised(
        &train,
        &train,
        Method::Augmented {
            name: "bad",
            augment: &drop_row,
        },
        &config,
        CPU,
    );
    assert!(
        matches!(
            result,
            Err(Error::Shape {
                what: "augmented unlabelled features",
                ..
            })
        ),
        "{result:?}"
    );
}

// ---- report ----

#[test]
fn report_round_trips_through_json() {
    let train = clusters(3, 10, 4, 5.0, 0.5, 1);
    let report = Report {
        knn: Some(knn_accuracy(&train, &train, KnnVote::PAPER).unwrap()),
        kmeans: Some(kmeans_purity(&train, &KMeansConfig::default()).unwrap()),
        ..Report::default()
    };
    let json = serde_json::to_string(&report).unwrap();
    assert_eq!(serde_json::from_str::<Report>(&json).unwrap(), report);
}

// ---- semi-supervised: mixup and FeatMatch ----

#[test]
fn beta_half_half_sampler_has_the_arcsine_mean_and_variance() {
    let mut rng = StreamRng::from_words(&[42]);
    let draws: Vec<f64> = (0..200_000)
        .map(|_| sample_beta(&mut rng, 0.5, 0.5).unwrap())
        .collect();
    assert!(draws.iter().all(|x| (0.0..=1.0).contains(x)));
    let n = draws.len() as f64;
    let mean = draws.iter().sum::<f64>() / n;
    let variance = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    // Beta(½, ½): mean ½, variance ab / ((a + b)² (a + b + 1)) = 1/8; the standard errors at this
    // many draws are about 8e-4 and 3e-4.
    assert!((mean - 0.5).abs() < 4e-3, "mean {mean}");
    assert!((variance - 0.125).abs() < 2e-3, "variance {variance}");
    // The arcsine law puts a quarter of its mass below sin²(π/8) ≈ 0.1464.
    let low = draws
        .iter()
        .filter(|&&x| x < (std::f64::consts::PI / 8.0).sin().powi(2));
    assert!((low.count() as f64 / n - 0.25).abs() < 5e-3);
}

#[test]
fn beta_sampler_refuses_shapes_outside_zero_one() {
    let mut rng = StreamRng::from_words(&[1]);
    for (a, b) in [(0.0, 0.5), (2.0, 0.5), (0.5, f64::NAN)] {
        assert!(matches!(
            sample_beta(&mut rng, a, b),
            Err(Error::InvalidSetting {
                setting: "beta shape",
                ..
            })
        ));
    }
}

/// A small, fast semi-supervised setting for overlapping clusters.
fn small_semisup() -> SemiSupervisedConfig {
    SemiSupervisedConfig {
        trials: 3,
        iterations: 200,
        unlabelled_batch: 128,
        hidden: 64,
        lr: 3e-3,
        ema_decay: 0.95,
        ..SemiSupervisedConfig::default()
    }
}

#[test]
fn mixup_and_featmatch_match_or_beat_supervised_only_and_are_reproducible() {
    let train = clusters(4, 60, 8, 2.5, 0.8, 11);
    let test = clusters(4, 50, 8, 2.5, 0.8, 12);
    let config = small_semisup();
    let supervised = semi_supervised(&train, &test, Method::SupervisedOnly, &config, CPU).unwrap();
    for method in [Method::Mixup, Method::FeatMatch] {
        let a = semi_supervised(&train, &test, method, &config, CPU).unwrap();
        let b = semi_supervised(&train, &test, method, &config, CPU).unwrap();
        assert_eq!(a, b, "{method:?} is not reproducible");
        assert_eq!(a.trials.len(), 3);
        // The consistency term is active: the classifier differs from the supervised one. Each
        // labelled batch is all 20 labelled rows (32 drawn without replacement from 20), so only
        // the consistency term can make the two differ, not the batch draws.
        assert_ne!(a.trials, supervised.trials, "{method:?}");
        // Within one test row in 200 per trial of supervised-only, or better.
        assert!(
            a.mean >= supervised.mean - 0.01,
            "{a:?}\nsupervised {supervised:?}"
        );
    }
    assert_eq!(Method::Mixup.name(), "mixup");
    assert_eq!(Method::FeatMatch.name(), "featmatch");
}

// ---- identity preservation and augmentation nearest neighbours ----

/// A prior network `d → hidden → (M, M)` with small random trunk weights, zero head weights and
/// the given head biases: every point gets log-scale `min(scale_bias, 3) + ln 0.01` and location
/// `clamp(loc_bias, ±5)` (plus a small input-dependent part when `input_weight > 0`).
fn prior_network(
    d: usize,
    m: usize,
    scale_bias: f32,
    loc_bias: f32,
    input_weight: f32,
    seed: u64,
) -> PriorNetwork {
    let hidden = 16;
    let mut rng = StreamRng::from_words(&[seed, 5]);
    let mut draw =
        |n: usize, s: f32| -> Vec<f32> { (0..n).map(|_| s * normal(&mut rng)).collect() };
    let trunk = Linear::new("trunk", d, hidden, draw(d * hidden, 0.3), vec![0.0; hidden]).unwrap();
    let scale = Linear::new(
        "scale",
        hidden,
        m,
        draw(hidden * m, input_weight),
        vec![scale_bias; m],
    )
    .unwrap();
    let loc = Linear::new(
        "loc",
        hidden,
        m,
        draw(hidden * m, input_weight),
        vec![loc_bias; m],
    )
    .unwrap();
    PriorNetwork::new(Mlp::new("prior", vec![trunk], scale, loc).unwrap())
}

/// Operators whose generators are random skew-symmetric `n × n` blocks times `magnitude`, so each
/// `T(c)` is a rotation of every block.
fn skew_operators(m: usize, k: usize, n: usize, magnitude: f32, seed: u64) -> Operators {
    let mut rng = StreamRng::from_words(&[seed, 6]);
    let mut psi = vec![0.0; m * k * n * n];
    for block in psi.chunks_exact_mut(n * n) {
        for i in 0..n {
            for j in i + 1..n {
                let v = magnitude * normal(&mut rng);
                block[i * n + j] = v;
                block[j * n + i] = -v;
            }
        }
    }
    Operators::new(m, k, n, psi).unwrap()
}

#[test]
fn zero_operators_preserve_identity_exactly() {
    let (train, test) = (
        clusters(3, 40, 8, 3.0, 1.0, 1),
        clusters(3, 30, 8, 3.0, 1.0, 2),
    );
    let operators = Operators::new(4, 2, 4, vec![0.0; 4 * 2 * 16]).unwrap();
    let prior = prior_network(8, 4, 1.0, 0.5, 0.5, 3);
    let config = IdentityConfig {
        samples_per_image: 3,
        probe: short_probe(),
        repeats: 3,
        ..IdentityConfig::default()
    };
    let result =
        identity_preservation(&train, &test, &operators, &prior, 0.01, 7, &config).unwrap();
    assert!(result.clean.mean > 0.5, "{result:?}");
    // With Ψ = 0 every move is the identity, and dist = 0 leaves the random controls in place.
    for row in [
        result.learned_prior,
        result.fixed_prior,
        result.random,
        result.fixed_prior_mean_scale,
        result.random_matched,
    ] {
        assert_eq!(row, result.clean);
    }
    assert_eq!(result.mean_relative_shift, 0.0);
    assert_eq!((result.samples_per_image, result.threshold), (3, 0.01));
    // 90 test rows, fewer than a batch of 1,000: all are scored.
    assert_eq!((result.repeats, result.moved_rows), (3, 90));
    // Each repeat's clean score is its probe's own top-1 (probe seed = config seed + repeat).
    let clean: Vec<f64> = (0..3)
        .map(|r| {
            let probe_config = LinearProbeConfig {
                seed: short_probe().seed + r,
                ..short_probe()
            };
            let probe = LinearProbe::fit(&train, &probe_config, CPU).unwrap();
            probe.evaluate(&test).unwrap().top1
        })
        .collect();
    assert_eq!(result.clean, mclr_trainer::eval::MeanStd::of(&clean));
}

#[test]
fn large_random_rotations_break_identity_and_are_reproducible() {
    let (train, test) = (
        clusters(3, 40, 8, 5.0, 0.5, 1),
        clusters(3, 30, 8, 5.0, 0.5, 2),
    );
    let operators = skew_operators(4, 2, 4, 3.0, 4);
    // Locations of order 1 that vary from point to point: a different large rotation per row.
    let prior = prior_network(8, 4, 0.0, 0.0, 1.0, 3);
    let config = IdentityConfig {
        samples_per_image: 1,
        probe: short_probe(),
        repeats: 1,
        ..IdentityConfig::default()
    };
    let result = identity_preservation(&train, &test, &operators, &prior, 0.0, 7, &config).unwrap();
    assert!(result.clean.mean > 0.95, "{result:?}");
    assert!(
        result.learned_prior.mean < result.clean.mean - 0.2,
        "{result:?}"
    );
    // The authors' fixed prior is the hyperprior Laplace(0.05, 0.01): small, similar moves for
    // every row, which keep identity where the learned prior's large ones do not.
    assert!(
        result.fixed_prior.mean > result.learned_prior.mean + 0.1,
        "{result:?}"
    );
    // A rotation keeps the norm: the shift is large but finite.
    assert!(result.mean_relative_shift > 0.3 && result.mean_relative_shift <= 2.0);
    let again = identity_preservation(&train, &test, &operators, &prior, 0.0, 7, &config).unwrap();
    assert_eq!(result, again);
}

#[test]
fn the_authors_random_control_moves_by_dist_squared_and_the_variant_by_dist() {
    use mclr_trainer::eval::identity::random_moves;
    // z = (3, 4), its learned move z' = z + (1.2, 1.6): dist = 2.
    let z = [3.0f32, 4.0];
    let moved = [4.2f32, 5.6];
    let mut rng = StreamRng::from_words(&[5]);
    let out = random_moves(&z, &moved, 2, &mut rng);
    let step =
        |v: &[f32]| -> Vec<f64> { v.iter().zip(&z).map(|(a, b)| f64::from(a - b)).collect() };
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let (squared, matched) = (step(&out.squared), step(&out.matched));
    assert!(
        (norm(&squared) - 4.0).abs() < 1e-5,
        "dist² = 4: {squared:?}"
    );
    assert!((norm(&matched) - 2.0).abs() < 1e-5, "dist = 2: {matched:?}");
    // The same direction for both.
    assert!(
        (squared[0] / matched[0] - 2.0).abs() < 1e-4
            && (squared[1] / matched[1] - 2.0).abs() < 1e-4
    );
    assert!((out.relative_shift - 2.0 / 5.0).abs() < 1e-6);
}

#[test]
fn moves_are_scored_on_whole_batches_of_a_thousand_rows() {
    use mclr_trainer::eval::identity::scored_rows;
    assert_eq!(scored_rows(10_000, 1000), 10_000);
    assert_eq!(scored_rows(8_000, 1000), 8_000);
    assert_eq!(scored_rows(2_500, 1000), 2_000);
    assert_eq!(scored_rows(999, 1000), 999);
}

#[test]
fn fixed_prior_scales_are_the_mean_learned_scales() {
    let params = LaplaceParams {
        loc: vec![0.0; 6],
        logscale: [1.0_f32, 2.0, 0.5, 3.0, 6.0, 0.5]
            .iter()
            .map(|b| b.ln())
            .collect(),
    };
    let scales = mean_scales(&params, 3).unwrap();
    for (got, want) in scales.iter().zip([2.0, 4.0, 0.5]) {
        assert!((got - want).abs() < 1e-6, "{scales:?}");
    }
    let ragged = LaplaceParams {
        loc: vec![0.0; 5],
        logscale: vec![0.0; 5],
    };
    assert!(matches!(
        mean_scales(&ragged, 3),
        Err(Error::InvalidSetting { .. })
    ));
}

#[test]
fn identity_rejects_operators_of_another_dimension() {
    let test = clusters(3, 10, 8, 3.0, 1.0, 2);
    let operators = Operators::new(4, 3, 4, vec![0.0; 4 * 3 * 16]).unwrap();
    let prior = prior_network(8, 4, 0.0, 0.0, 0.0, 3);
    let result = identity_preservation(
        &test,
        &test,
        &operators,
        &prior,
        0.0,
        0,
        &IdentityConfig::default(),
    );
    assert!(
        matches!(
            result,
            Err(Error::InvalidSetting {
                setting: "operators",
                ..
            })
        ),
        "{result:?}"
    );
}

#[test]
fn augmentation_nn_with_zero_operators_equals_clean_one_nn_agreement() {
    let (train, test) = (
        clusters(3, 40, 8, 1.5, 1.0, 1),
        clusters(3, 30, 8, 1.5, 1.0, 2),
    );
    let operators = Operators::new(4, 2, 4, vec![0.0; 4 * 2 * 16]).unwrap();
    let prior = prior_network(8, 4, 1.0, 0.5, 0.5, 3);
    let config = AugmentationNnConfig {
        setting: AugmentNnSetting::CosineSample,
        queries: 1000,
        ..AugmentationNnConfig::default()
    };
    let result = augmentation_nn(&train, &test, &operators, &prior, 0.0, 5, &config).unwrap();
    let one_nn = knn_accuracy(&train, &test, KnnVote::Majority { k: 1 }).unwrap();
    assert_eq!(result.clean_agreement, one_nn.top1);
    assert_eq!(result.agreement, result.clean_agreement);
    assert!(
        result.clean_agreement < 1.0,
        "overlapping clusters: {result:?}"
    );
    assert_eq!((result.queries, result.samples_per_query), (90, 8));
}

#[test]
fn augmentation_nn_by_default_queries_20_training_rows_from_1337_with_euclidean_distance() {
    // The authors' src/eval/nn_aug.py: z[start_idx + i] for i < 20, start_idx = 1337, nearest
    // training feature by pairwise (Euclidean) distance.
    let operators = Operators::new(4, 2, 4, vec![0.0; 4 * 2 * 16]).unwrap();
    let prior = prior_network(8, 4, 1.0, 0.5, 0.5, 3);
    let train = clusters(3, 460, 8, 1.5, 1.0, 1);
    let test = clusters(3, 10, 8, 1.5, 1.0, 2);
    let config = AugmentationNnConfig::default();
    let resolved = mclr_trainer::config::Config::resolve("demo", &[]).unwrap();
    assert_eq!(resolved.eval.augment_nn, AugmentNnSetting::Reference);
    let cosine = ["eval.augment_nn=cosine-sample".to_owned()];
    let resolved = mclr_trainer::config::Config::resolve("demo", &cosine).unwrap();
    assert_eq!(resolved.eval.augment_nn, AugmentNnSetting::CosineSample);
    let result = augmentation_nn(&train, &test, &operators, &prior, 0.0, 5, &config).unwrap();
    assert_eq!((result.queries, result.samples_per_query), (20, 8));
    // With Ψ = 0 every move is the identity and each query finds itself in the gallery.
    assert_eq!((result.agreement, result.clean_agreement), (1.0, 1.0));
    assert!(result.setting.contains("1337"), "{}", result.setting);

    // Euclidean, not cosine: a row at twice a query's feature, earlier and of another label, is
    // as near as the query itself by cosine (ties go to the lower index) but not by distance. A
    // training set of 25 rows is queried at its last 20.
    let small = clusters(5, 5, 8, 1.5, 1.0, 4);
    let (mut data, mut labels) = (small.data().to_vec(), small.labels().to_vec());
    for j in 0..8 {
        data[j] = 2.0 * data[5 * 8 + j];
    }
    labels[0] = (labels[5] + 1) % 5;
    let small = Features::new(data, 8, labels, 5).unwrap();
    let small_test = clusters(5, 2, 8, 1.5, 1.0, 6);
    let result = augmentation_nn(&small, &small_test, &operators, &prior, 0.0, 5, &config).unwrap();
    assert_eq!(result.queries, 20);
    assert_eq!((result.agreement, result.clean_agreement), (1.0, 1.0));
    let cosine = knn_accuracy(
        &small,
        &small.subset(&[5]).unwrap(),
        KnnVote::Majority { k: 1 },
    )
    .unwrap();
    assert_eq!(cosine.top1, 0.0, "cosine picks the earlier, scaled row");
}

#[test]
fn augmentation_nn_agreement_is_near_one_on_separated_clusters() {
    let (train, test) = (
        clusters(3, 40, 8, 5.0, 0.5, 1),
        clusters(3, 30, 8, 5.0, 0.5, 2),
    );
    let operators = skew_operators(4, 2, 4, 0.05, 4);
    let prior = prior_network(8, 4, 2.0, 0.3, 0.2, 3);
    let config = AugmentationNnConfig {
        setting: AugmentNnSetting::CosineSample,
        queries: 50,
        ..AugmentationNnConfig::default()
    };
    let result = augmentation_nn(&train, &test, &operators, &prior, 0.01, 5, &config).unwrap();
    assert_eq!(result.queries, 50);
    assert_eq!(result.clean_agreement, 1.0);
    assert!(result.agreement > 0.97, "{result:?}");
    let again = augmentation_nn(&train, &test, &operators, &prior, 0.01, 5, &config).unwrap();
    assert_eq!(result, again);
}
