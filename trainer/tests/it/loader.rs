//! The batch loaders: shapes, value ranges, normalisation statistics, determinism and epoch
//! bookkeeping, on synthetic in-memory image sets.
// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use crate::support::random_bytes;
use mclr_trainer::augment::color::ColorJitter;
use mclr_trainer::augment::crop::RandomResizedCrop;
use mclr_trainer::augment::{EvalTransform, SslAugment, SslConfig};
use mclr_trainer::data::loader::{
    EvalLoader, LoaderConfig, PairBatch, SslLoader, epoch_permutation,
};
use mclr_trainer::data::{DatasetName, ImageSet, Normalization};

fn class_names() -> Vec<String> {
    (0..10).map(|i| format!("c{i}")).collect()
}

/// `n` random `side × side` images with labels `i % 10`.
fn random_set(n: usize, side: usize, seed: u64) -> Arc<ImageSet> {
    let labels = Some((0..n).map(|i| (i % 10) as u16).collect());
    Arc::new(
        ImageSet::new(
            side,
            side,
            random_bytes(n * side * side * 3, seed),
            labels,
            class_names(),
        )
        .unwrap(),
    )
}

fn config(batch_size: usize) -> LoaderConfig {
    LoaderConfig {
        batch_size,
        prefetch: 2,
        ..LoaderConfig::default()
    }
}

fn ssl_loader(images: Arc<ImageSet>, seed: u64, threads: Option<usize>) -> SslLoader {
    let config = LoaderConfig {
        seed,
        threads,
        ..config(16)
    };
    SslLoader::new(
        images,
        SslAugment::for_dataset(DatasetName::Cifar10),
        config,
    )
    .unwrap()
}

fn epoch_batches(loader: &SslLoader, epoch: u64) -> Vec<PairBatch> {
    loader.epoch(epoch).unwrap().collect()
}

#[test]
fn pair_batches_have_nchw_shapes_labels_indices_and_normalised_ranges() {
    let images = random_set(40, 32, 1);
    let loader = ssl_loader(images.clone(), 0, None);
    let batches = epoch_batches(&loader, 0);
    assert_eq!(batches.len(), 2); // 40 / 16 with drop_last
    let norm = DatasetName::Cifar10.spec().normalization;
    for b in &batches {
        assert_eq!(b.shape(), [16, 3, 32, 32]);
        assert_eq!(b.view0.len(), 16 * 3 * 32 * 32);
        assert_eq!(b.view1.len(), b.view0.len());
        let labels = b.labels.as_ref().unwrap();
        for (&i, &l) in b.indices.iter().zip(labels) {
            assert_eq!(l, images.label(i).unwrap());
        }
        for view in [&b.view0, &b.view1] {
            for (k, &v) in view.iter().enumerate() {
                let c = (k / 1024) % 3;
                let (lo, hi) = (
                    -norm.mean[c] / norm.std[c],
                    (1.0 - norm.mean[c]) / norm.std[c],
                );
                assert!(
                    v.is_finite() && v >= lo - 1e-5 && v <= hi + 1e-5,
                    "{v} outside [{lo}, {hi}]"
                );
            }
        }
        assert_ne!(b.view0, b.view1, "the two views of a pair must differ");
    }
}

#[test]
fn epoch_visits_each_image_once_in_a_seeded_shuffle() {
    let images = random_set(37, 32, 2);
    let config = LoaderConfig {
        drop_last: false,
        ..config(8)
    };
    let loader = SslLoader::new(
        images,
        SslAugment::for_dataset(DatasetName::Cifar10),
        config,
    )
    .unwrap();
    assert_eq!(loader.batches_per_epoch(), 5);
    let batches = epoch_batches(&loader, 3);
    let sizes: Vec<usize> = batches.iter().map(PairBatch::len).collect();
    assert_eq!(sizes, [8, 8, 8, 8, 5]);
    let order: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
    assert_eq!(order, epoch_permutation(0, 3, 37));
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..37).collect::<Vec<_>>());
    assert_ne!(order, (0..37).collect::<Vec<_>>(), "not shuffled");
    assert_ne!(epoch_permutation(0, 3, 37), epoch_permutation(0, 4, 37));
    assert_eq!(epoch_permutation(0, 3, 37), epoch_permutation(0, 3, 37));
}

#[test]
fn same_seed_gives_identical_batches_and_another_seed_differs() {
    let images = random_set(32, 32, 3);
    let a = epoch_batches(&ssl_loader(images.clone(), 11, None), 0);
    let b = epoch_batches(&ssl_loader(images.clone(), 11, None), 0);
    assert_eq!(a, b);
    let c = epoch_batches(&ssl_loader(images.clone(), 12, None), 0);
    assert_ne!(a[0].indices, c[0].indices);
    // Same image, other seed: other views.
    let view_a = ssl_loader(images.clone(), 11, None).batch(0, &[3]);
    let view_c = ssl_loader(images.clone(), 12, None).batch(0, &[3]);
    assert_ne!(view_a.view0, view_c.view0);
    let next_epoch = epoch_batches(&ssl_loader(images, 11, None), 1);
    assert_ne!(a, next_epoch);
}

#[test]
fn batches_do_not_depend_on_the_number_of_threads() {
    let images = random_set(48, 32, 4);
    let one = epoch_batches(&ssl_loader(images.clone(), 5, Some(1)), 2);
    let two = epoch_batches(&ssl_loader(images.clone(), 5, Some(2)), 2);
    let three = epoch_batches(&ssl_loader(images, 5, Some(3)), 2);
    assert_eq!(one, two);
    assert_eq!(one, three);
}

#[test]
fn a_view_depends_on_the_image_not_on_the_batch_it_falls_in() {
    let images = random_set(10, 32, 5);
    let loader = ssl_loader(images, 9, None);
    let alone = loader.batch(4, &[7]);
    let together = loader.batch(4, &[2, 7, 5]);
    let n = 3 * 32 * 32;
    assert_eq!(&together.view0[n..2 * n], &alone.view0[..]);
    assert_eq!(&together.view1[n..2 * n], &alone.view1[..]);
}

#[test]
fn ssl_view_without_randomness_is_the_normalised_image_and_flip_mirrors_it() {
    let images = random_set(2, 32, 6);
    let norm = DatasetName::Cifar10.spec().normalization;
    let plain = SslConfig {
        jitter: ColorJitter {
            p: 0.0,
            ..ColorJitter::SIMCLR
        },
        grayscale_p: 0.0,
        crop: RandomResizedCrop {
            size: 32,
            scale: (1.0, 1.0),
            ratio: (1.0, 1.0),
        },
        flip_p: 0.0,
        normalization: norm,
    };
    let build = |config: SslConfig| {
        let loader = SslLoader::new(
            images.clone(),
            SslAugment::new(config).unwrap(),
            config_no_shuffle(),
        )
        .unwrap();
        loader.batch(0, &[1])
    };
    let straight = build(plain);
    let flipped = build(SslConfig {
        flip_p: 1.0,
        ..plain
    });
    let rgb = images.image(1).unwrap();
    for c in 0..3 {
        for y in 0..32 {
            for x in 0..32 {
                let want =
                    (f32::from(rgb[(y * 32 + x) * 3 + c]) / 255.0 - norm.mean[c]) / norm.std[c];
                let got = straight.view0[c * 1024 + y * 32 + x];
                assert!((got - want).abs() < 1e-5, "({c},{y},{x}): {got} vs {want}");
                assert_eq!(flipped.view0[c * 1024 + y * 32 + (31 - x)], got);
            }
        }
    }
}

fn config_no_shuffle() -> LoaderConfig {
    LoaderConfig {
        shuffle: false,
        ..config(4)
    }
}

#[test]
fn grayscale_views_have_equal_channels_before_normalisation() {
    let images = random_set(4, 32, 7);
    let norm = DatasetName::Cifar10.spec().normalization;
    let config = SslConfig {
        grayscale_p: 1.0,
        ..SslConfig::for_dataset(DatasetName::Cifar10)
    };
    let loader = SslLoader::new(
        images,
        SslAugment::new(config).unwrap(),
        config_no_shuffle(),
    )
    .unwrap();
    let batch = loader.batch(0, &[0, 1, 2, 3]);
    for image in batch.view0.chunks_exact(3 * 1024) {
        for p in 0..1024 {
            let v: Vec<f32> = (0..3)
                .map(|c| image[c * 1024 + p] * norm.std[c] + norm.mean[c])
                .collect();
            assert!(
                (v[0] - v[1]).abs() < 1e-5 && (v[1] - v[2]).abs() < 1e-5,
                "{v:?}"
            );
        }
    }
}

#[test]
fn eval_transform_of_uniform_images_has_the_expected_channel_statistics() {
    let images = random_set(200, 32, 8);
    let loader = EvalLoader::new(
        images,
        EvalTransform::for_dataset(DatasetName::Cifar10),
        LoaderConfig {
            drop_last: false,
            ..config(64)
        },
    )
    .unwrap();
    let norm = DatasetName::Cifar10.spec().normalization;
    let mut sums = [(0.0_f64, 0.0_f64); 3];
    let mut count = 0.0;
    let batches: Vec<_> = loader.iter().unwrap().collect();
    assert_eq!(
        batches.iter().map(|b| b.len()).collect::<Vec<_>>(),
        [64, 64, 64, 8]
    );
    for b in &batches {
        assert_eq!(b.shape()[1..], [3, 32, 32]);
        for image in b.images.chunks_exact(3 * 1024) {
            for (c, plane) in image.chunks_exact(1024).enumerate() {
                for &v in plane {
                    sums[c].0 += f64::from(v);
                    sums[c].1 += f64::from(v) * f64::from(v);
                }
            }
        }
        count += (b.len() * 1024) as f64;
    }
    // Bytes uniform on 0..=255: mean 0.5, std √((256² − 1) / 12) / 255 ≈ 0.28979 in [0, 1].
    let uniform_std = ((256.0_f64 * 256.0 - 1.0) / 12.0).sqrt() / 255.0;
    for (c, &(sum, sum_sq)) in sums.iter().enumerate() {
        let mean = sum / count;
        let std = (sum_sq / count - mean * mean).sqrt();
        let want_mean = (0.5 - f64::from(norm.mean[c])) / f64::from(norm.std[c]);
        let want_std = uniform_std / f64::from(norm.std[c]);
        assert!(
            (mean - want_mean).abs() < 0.01,
            "channel {c}: mean {mean} vs {want_mean}"
        );
        assert!(
            (std / want_std - 1.0).abs() < 0.01,
            "channel {c}: std {std} vs {want_std}"
        );
    }
}

#[test]
fn stl10_eval_resizes_to_70_and_crops_64_keeping_constant_images_constant() {
    let n = 3;
    let values = [10_u8, 128, 250];
    let pixels: Vec<u8> = values.iter().flat_map(|&v| vec![v; 96 * 96 * 3]).collect();
    let images =
        Arc::new(ImageSet::new(96, 96, pixels, Some(vec![0, 1, 2]), class_names()).unwrap());
    let transform = EvalTransform::for_dataset(DatasetName::Stl10);
    assert_eq!(transform.output_size(96, 96).unwrap(), (64, 64));
    let loader = EvalLoader::new(
        images,
        transform,
        LoaderConfig {
            drop_last: false,
            ..config(2)
        },
    )
    .unwrap();
    let batches: Vec<_> = loader.iter().unwrap().collect();
    let norm = DatasetName::Stl10.spec().normalization;
    let mut k = 0;
    for b in &batches {
        assert_eq!(b.shape()[1..], [3, 64, 64]);
        for image in b.images.chunks_exact(3 * 64 * 64) {
            for (c, plane) in image.chunks_exact(64 * 64).enumerate() {
                let want = (f32::from(values[k]) / 255.0 - norm.mean[c]) / norm.std[c];
                assert!(
                    plane.iter().all(|v| (v - want).abs() < 1e-5),
                    "image {k} channel {c}"
                );
            }
            k += 1;
        }
    }
    assert_eq!(k, n);
}

#[test]
fn normalisation_identity_leaves_values_in_unit_range() {
    let images = random_set(3, 32, 9);
    let transform =
        EvalTransform::new(DatasetName::Cifar10.spec().eval, Normalization::IDENTITY).unwrap();
    let loader = EvalLoader::new(images.clone(), transform, config_no_shuffle()).unwrap();
    let b = loader.batch(&[2]);
    let rgb = images.image(2).unwrap();
    for (p, px) in rgb.chunks_exact(3).enumerate() {
        for (c, &v) in px.iter().enumerate() {
            assert_eq!(b.images[c * 1024 + p], f32::from(v) / 255.0);
        }
    }
    let bad = Normalization {
        mean: [0.0; 3],
        std: [1.0, 0.0, 1.0],
    };
    assert!(EvalTransform::new(DatasetName::Cifar10.spec().eval, bad).is_err());
}

#[test]
fn dropping_an_epoch_early_stops_the_producer() {
    let images = random_set(256, 32, 10);
    let loader = SslLoader::new(
        images,
        SslAugment::for_dataset(DatasetName::Cifar10),
        LoaderConfig {
            prefetch: 1,
            ..config(8)
        },
    )
    .unwrap();
    let mut epoch = loader.epoch(0).unwrap();
    assert_eq!(epoch.len(), 32);
    let first = epoch.next().unwrap();
    assert_eq!(first.len(), 8);
    drop(epoch); // Must return (joins the producer) rather than hang on the full queue.
}

#[test]
fn unlabelled_sets_give_batches_without_labels() {
    let images =
        Arc::new(ImageSet::new(32, 32, random_bytes(8 * 3072, 11), None, Vec::new()).unwrap());
    let loader = ssl_loader(images, 0, None);
    let b = loader.batch(0, &[0, 1]);
    assert_eq!(b.labels, None);
    assert_eq!(b.indices, [0, 1]);
}

#[test]
fn zero_batch_size_and_zero_prefetch_are_rejected() {
    let images = random_set(4, 32, 12);
    let aug = SslAugment::for_dataset(DatasetName::Cifar10);
    assert!(SslLoader::new(images.clone(), aug.clone(), config(0)).is_err());
    assert!(
        SslLoader::new(
            images,
            aug,
            LoaderConfig {
                prefetch: 0,
                ..config(4)
            }
        )
        .is_err()
    );
}
