//! Two-view SSL augmentation throughput, in image pairs per second: the loader's batch builder
//! (jitter, greyscale, random resized crop with bicubic resampling, flip, normalisation, two views
//! per image, NCHW output) on random images of each dataset's size.
//!
//! `cargo bench -p mclr-trainer --bench augment`; the target is ≥ 5,000 pairs/s on two
//! cores for the 32-px CIFAR-10 recipe.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_main};
use mclr_trainer::augment::SslAugment;
use mclr_trainer::data::loader::{LoaderConfig, SslLoader};
use mclr_trainer::data::{DatasetName, ImageSet};

/// Pseudo-random image bytes (SplitMix64), so the hue and clamp branches see varied colours.
fn random_images(n: usize, side: usize) -> Arc<ImageSet> {
    let mut state = 0_u64;
    let pixels = (0..n * side * side * 3)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 56) as u8
        })
        .collect();
    match ImageSet::new(side, side, pixels, None, Vec::new()) {
        Ok(set) => Arc::new(set),
        Err(e) => unreachable!("the benchmark's image set is well formed: {e}"),
    }
}

fn bench_pairs(c: &mut Criterion, name: DatasetName, batch: usize, threads: Option<usize>) {
    let spec = name.spec();
    let images = random_images(4 * batch, spec.image_size);
    let config = LoaderConfig {
        batch_size: batch,
        threads,
        ..LoaderConfig::default()
    };
    let loader = match SslLoader::new(images, SslAugment::for_dataset(name), config) {
        Ok(l) => l,
        Err(e) => unreachable!("the benchmark's loader settings are valid: {e}"),
    };
    let order = loader.order(0);
    let threads_label = threads.map_or_else(|| "all-threads".to_owned(), |t| format!("{t}-thread"));
    let mut group = c.benchmark_group("ssl_two_view_pairs");
    group.throughput(Throughput::Elements(batch as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));
    let id = format!(
        "{}_{}px_batch{batch}_{threads_label}",
        spec.name, spec.ssl_size
    );
    let mut epoch = 0_u64;
    group.bench_function(id, |b| {
        b.iter(|| {
            epoch += 1;
            let k = (epoch as usize % 4) * batch;
            black_box(loader.batch(epoch, &order[k..k + batch]))
        });
    });
    group.finish();
}

fn augment(c: &mut Criterion) {
    bench_pairs(c, DatasetName::Cifar10, 512, None);
    bench_pairs(c, DatasetName::Cifar10, 512, Some(1));
    bench_pairs(c, DatasetName::Stl10, 256, None);
    bench_pairs(c, DatasetName::TinyImageNet, 256, None);
}

// `criterion_group!` defines an undocumented `pub fn benches`.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::augment);
}
use group::benches;
criterion_main!(benches);
