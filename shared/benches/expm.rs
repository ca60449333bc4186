//! Throughput of the CPU matrix exponential on the per-step workload of docs/method.md §3: 2·B·K = 8192
//! exponentials of 64×64 blocks with ‖A‖₁ ≈ 3. Reported in matrices/s (criterion "elem/s").
//!
//! Run with `cargo xtask bench` (or `cargo bench -p mclr-shared --bench expm`).
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mclr_shared::expm::{expm_batch, norm1};
use mclr_shared::operators::Operators;

/// Deterministic Gaussian-ish matrices (sum of uniforms) rescaled to an exact 1-norm.
fn batch(count: usize, n: usize, norm: f64) -> Vec<f64> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut out = Vec::with_capacity(count * n * n);
    for _ in 0..count {
        let m: Vec<f64> = (0..n * n)
            .map(|_| (0..4).map(|_| uniform()).sum::<f64>() - 2.0)
            .collect();
        let s = norm / norm1(&m, n);
        out.extend(m.iter().map(|x| x * s));
    }
    out
}

fn bench_expm(c: &mut Criterion) {
    let (count, n) = (8192, 64);
    let a64 = batch(count, n, 3.0);
    let a32: Vec<f32> = a64.iter().map(|&x| x as f32).collect();
    let mut group = c.benchmark_group("expm");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(count as u64));
    group.bench_function("f32_8192x64x64_norm3", |b| {
        b.iter(|| expm_batch(&a32, n).unwrap());
    });
    let small = &a64[..1024 * n * n];
    group.throughput(Throughput::Elements(1024));
    group.bench_function("f64_1024x64x64_norm3", |b| {
        b.iter(|| expm_batch(small, n).unwrap());
    });
    group.finish();
}

fn bench_apply(c: &mut Criterion) {
    // One training batch's worth of transport: B = 512 coefficient rows, M = 16, K = 8, n = 64.
    let (b, m, k, n) = (512, 16, 8, 64);
    let mut i = 0u32;
    let ops = Operators::stable_init(m, k, n, || {
        i = i.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (i >> 8) as f32 / 16_777_216.0
    })
    .unwrap();
    let coeffs: Vec<f32> = (0..b * m)
        .map(|j| ((j * 37 % 101) as f32 / 101.0 - 0.5) * 0.4)
        .collect();
    let z: Vec<f32> = (0..b * k * n).map(|j| (j % 13) as f32 / 13.0).collect();
    let mut group = c.benchmark_group("operators");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(b as u64));
    group.bench_function("apply_B512_M16_K8_n64", |bch| {
        bch.iter(|| ops.apply(&coeffs, &z).unwrap());
    });
    // The same values without forming T(c): each block's exponential acting on its chunk.
    group.bench_function("apply_action_B512_M16_K8_n64", |bch| {
        bch.iter(|| ops.apply_action(&coeffs, &z).unwrap());
    });
    group.finish();
}

criterion_group!(benches, bench_expm, bench_apply);
criterion_main!(benches);
