//! The workloads of the side-by-side comparison with PyTorch (`cargo xtask bench-torch`), one per
//! invocation, timed on this process's rayon pool:
//!
//! | name | what one iteration is |
//! |---|---|
//! | `train_step` | ResNet-18 (full width, 32 px) forward + backward + AdamW, batch 64 |
//! | `eval_forward` | ResNet-18 forward in evaluation mode, batch 256 |
//! | `head_step` | the ManifoldCLR head of `cifar10-manifoldclr` (d 512, M 16, 8 blocks of 64) on features of 64 pairs: encoder, prior, sampling, transport, losses, backward, AdamW |
//! | `manifoldclr_step` | a full `cifar10-manifoldclr` step on 64 pairs |
//! | `simclr_step` | a full `cifar10-simclr` step on 64 pairs |
//! | `demo_step` | a full step of the CPU-sized `demo` config (width 8) on 64 pairs |
//! | `expm_forward` | the trainer's expm of 8192 64×64 f32 matrices |
//! | `expm_backward` | the same, forward + backward |
//! | `expm_shared` | `mclr-shared`'s CPU expm of the same batch |
//! | `augment` | two-view CIFAR-10 augmentation of 512 images |
//! | `conv{64,128,256,512}` | one 3×3 convolution of ResNet-18's stage with that width (32, 16, 8, 4 px), forward + both gradients, batch 64 |
//!
//! `cargo bench -p mclr-trainer --bench workloads -- NAME [--iters N] [--warmup N]` prints one JSON
//! line (without a name it runs `demo_step` once, as a smoke test): the workload, the items (images, pairs or matrices) per iteration, and each timed
//! iteration's seconds. The torch versions are in `bench/torch/workloads.py`; the inputs follow the
//! same recipes (random normal images and features, expm inputs of std 0.05).
// Benchmarks read results back to check them; the training step itself is measured as is.
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device, Tensor, Var};
use mclr_trainer::augment::SslAugment;
use mclr_trainer::config::Config;
use mclr_trainer::data::loader::{LoaderConfig, SslLoader};
use mclr_trainer::data::{DatasetName, ImageSet};
use mclr_trainer::model::ssl::SslModel;
use mclr_trainer::train::optimizer_for;
use mclr_trainer::train::step::Objective;

/// Images (or pairs) per training batch, as in the table.
const BATCH: usize = 64;
/// Images per evaluation batch.
const EVAL_BATCH: usize = 256;
/// Matrices per expm batch: 2·B·K at the paper's B = 512, K = 8.
const EXPM_MATRICES: usize = 8192;
/// Block size of the expm workloads.
const EXPM_N: usize = 64;

fn main() -> Result<()> {
    // SAFETY: the first statement of main; no other thread exists yet. As `mclr` does.
    #[allow(unsafe_code)]
    unsafe {
        mclr_trainer::prefer_rayon_threads();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` appends `--bench`; it carries no meaning here.
    let args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--bench")
        .collect();
    // Without a name (as `cargo test --all-targets` runs every bench target), one iteration of the
    // small `demo_step`: a smoke test of the harness, not a measurement.
    let (name, rest, mut iters, mut warmup) = match args.split_first() {
        Some((&name, rest)) => (name, rest, 5usize, 1usize),
        None => ("demo_step", &[][..], 1, 0),
    };
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        let value: usize = value
            .parse()
            .with_context(|| format!("{flag} takes a count, got {value}"))?;
        match *flag {
            "--iters" => iters = value.max(1),
            "--warmup" => warmup = value,
            other => bail!("unknown option {other}"),
        }
    }
    let mut workload = workload(name)?;
    for _ in 0..warmup {
        workload.run()?;
    }
    let mut seconds = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        workload.run()?;
        seconds.push(t.elapsed().as_secs_f64());
    }
    let record = serde_json::json!({
        "workload": name,
        "items": workload.items,
        "threads": rayon::current_num_threads(),
        "seconds": seconds,
        "peak_rss_mib": peak_rss_mib(),
    });
    // The bench's output is its result.
    #[allow(clippy::print_stdout)]
    {
        println!("{record}");
    }
    Ok(())
}

/// This process's peak resident set (`VmHWM` of /proc/self/status), in MiB; null where unknown.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// One prepared workload: `run` does one iteration.
struct Workload {
    items: usize,
    run: Box<dyn FnMut() -> Result<()>>,
}

impl Workload {
    fn run(&mut self) -> Result<()> {
        (self.run)()
    }
}

/// Random normal values from a seeded generator (Box–Muller on an LCG).
fn normal(shape: &[usize], std: f64, seed: u64) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut uniform = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let values: Vec<f32> = (0..n)
        .map(|_| {
            let (u, v) = (uniform(), uniform());
            (std * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
        })
        .collect();
    Ok(Tensor::from_vec(values, shape, &Device::Cpu)?)
}

fn config(name: &str) -> Result<Config> {
    Config::resolve(name, &[]).with_context(|| format!("resolving config {name}"))
}

/// A full step of `config_name` (two views of `BATCH` images) with its optimiser.
fn full_step(config_name: &str) -> Result<Workload> {
    let config = config(config_name)?;
    let model = SslModel::new(&config, 32, &Device::Cpu)?;
    let mut optimizer = optimizer_for(&config, &model, 1000)?;
    let mut objective = Objective::new(&config);
    let x0 = normal(&[BATCH, 3, 32, 32], 1.0, 1)?;
    let x1 = normal(&[BATCH, 3, 32, 32], 1.0, 2)?;
    let mut iter = 0;
    Ok(Workload {
        items: BATCH,
        run: Box::new(move || {
            let out = objective.step(&model, &x0, &x1, iter)?;
            let grads = out.loss.backward()?;
            optimizer.step_deferred(&grads)?;
            iter += 1;
            Ok(())
        }),
    })
}

fn workload(name: &str) -> Result<Workload> {
    Ok(match name {
        "train_step" => {
            let config = config("cifar10-simclr-nohead")?;
            let model = SslModel::new(&config, 32, &Device::Cpu)?;
            let mut optimizer = optimizer_for(&config, &model, 1000)?;
            let x = normal(&[BATCH, 3, 32, 32], 1.0, 1)?;
            Workload {
                items: BATCH,
                run: Box::new(move || {
                    let z = model.features(&x, true)?;
                    let loss = z.sqr()?.mean_all()?;
                    optimizer.step_deferred(&loss.backward()?)?;
                    Ok(())
                }),
            }
        }
        "eval_forward" => {
            let config = config("cifar10-simclr-nohead")?;
            let model = SslModel::new(&config, 32, &Device::Cpu)?;
            let x = normal(&[EVAL_BATCH, 3, 32, 32], 1.0, 1)?;
            Workload {
                items: EVAL_BATCH,
                run: Box::new(move || {
                    black_box(model.infer_features(&x)?);
                    Ok(())
                }),
            }
        }
        "head_step" => {
            let config = config("cifar10-manifoldclr")?;
            let model = SslModel::new(&config, 32, &Device::Cpu)?;
            let mut optimizer = optimizer_for(&config, &model, 1000)?;
            let mut objective = Objective::new(&config);
            let d = model.backbone.feature_dim();
            let z0 = Var::from_tensor(&normal(&[BATCH, d], 1.0, 3)?)?;
            let z1 = Var::from_tensor(&normal(&[BATCH, d], 1.0, 4)?)?;
            // Past the prior warm-up, so every term is active.
            let mut iter = 10_000;
            Workload {
                items: BATCH,
                run: Box::new(move || {
                    let out = objective.head_step(&model, z0.as_tensor(), z1.as_tensor(), iter)?;
                    optimizer.step_deferred(&out.loss.backward()?)?;
                    iter += 1;
                    Ok(())
                }),
            }
        }
        "manifoldclr_step" => full_step("cifar10-manifoldclr")?,
        "simclr_step" => full_step("cifar10-simclr")?,
        "demo_step" => full_step("demo")?,
        "expm_forward" | "expm_backward" => {
            let backward = name == "expm_backward";
            let a = Var::from_tensor(&normal(&[EXPM_MATRICES, EXPM_N, EXPM_N], 0.05, 5)?)?;
            let g = normal(&[EXPM_MATRICES, EXPM_N, EXPM_N], 1.0, 6)?;
            Workload {
                items: EXPM_MATRICES,
                run: Box::new(move || {
                    if backward {
                        let e = mclr_trainer::expm::expm(a.as_tensor())?;
                        black_box((e * &g)?.sum_all()?.backward()?);
                    } else {
                        let e = mclr_trainer::expm::expm(&a.as_tensor().detach())?;
                        black_box(e);
                    }
                    Ok(())
                }),
            }
        }
        "expm_shared" => {
            let a: Vec<f32> = normal(&[EXPM_MATRICES, EXPM_N, EXPM_N], 0.05, 5)?
                .flatten_all()?
                .to_vec1()?;
            let mut out = vec![0.0f32; a.len()];
            Workload {
                items: EXPM_MATRICES,
                run: Box::new(move || {
                    mclr_shared::expm::expm_batch_into(&a, EXPM_N, &mut out)?;
                    black_box(&out);
                    Ok(())
                }),
            }
        }
        "augment" => {
            let n = 512;
            let bytes: Vec<u8> = normal(&[n * 32 * 32 * 3], 1.0, 7)?
                .to_dtype(DType::F32)?
                .to_vec1::<f32>()?
                .iter()
                .map(|v| ((v * 64.0 + 128.0).clamp(0.0, 255.0)) as u8)
                .collect();
            let images = Arc::new(ImageSet::new(32, 32, bytes, None, Vec::new())?);
            let loader_config = LoaderConfig {
                batch_size: n,
                ..LoaderConfig::default()
            };
            let loader = SslLoader::new(
                images,
                SslAugment::for_dataset(DatasetName::Cifar10),
                loader_config,
            )?;
            let order = loader.order(0);
            let mut epoch = 0;
            Workload {
                items: n,
                run: Box::new(move || {
                    epoch += 1;
                    black_box(loader.batch(epoch, &order));
                    Ok(())
                }),
            }
        }
        "conv64" | "conv128" | "conv256" | "conv512" => {
            let width: usize = name.trim_start_matches("conv").parse()?;
            let px = 32 * 64 / width;
            let x = Var::from_tensor(&normal(&[BATCH, width, px, px], 1.0, 8)?)?;
            let w = Var::from_tensor(&normal(&[width, width, 3, 3], 0.05, 9)?)?;
            Workload {
                items: BATCH,
                run: Box::new(move || {
                    let y = mclr_trainer::model::conv::conv2d(x.as_tensor(), w.as_tensor(), 1, 1)?;
                    black_box(y.sum_all()?.backward()?);
                    Ok(())
                }),
            }
        }
        other => bail!("unknown workload `{other}` (see the file's documentation for the list)"),
    })
}
