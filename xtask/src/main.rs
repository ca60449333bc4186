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

use anyhow::Result;
use clap::{Parser, Subcommand};

/// The project's chores: `cargo xtask <verb>`.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    verb: Option<Verb>,
}

/// The verbs.
#[derive(Debug, Subcommand)]
enum Verb {
    /// The full check CI runs (`.ci/run`).
    ///
    /// fmt, clippy (native + wasm32), wasm32 build, the site, the CUDA build (cuda-check), the
    /// fuzz smoke, `demo --smoke`, a short kill test, tests (native, browser end-to-end, GPU
    /// shaders in the browser).
    Ci,
    /// Build the site into www/dist.
    Web {
        /// Debug build, no wasm-opt: faster to build, slower and bigger to load.
        #[arg(long)]
        dev: bool,
    },
    /// Serve www/dist on 127.0.0.1.
    Serve(serve::Options),
    /// Compile the trainer with `cuda` and `cudnn` without a GPU.
    ///
    /// NVIDIA's compiler wheels and the build are cached in ~/.cache/mclr/cuda.
    CudaCheck,
    /// On a machine with an NVIDIA GPU: parity, loss curve, throughput.
    ///
    /// Builds with `cudnn`, runs the parity tests on the GPU, compares a 100-step `demo` loss
    /// curve with the CPU's, and appends training throughput and peak memory to BENCHMARKS.md.
    GpuCheck(gpu_check::Options),
    /// Only the GPU engine's tests in headless Chromium (WebGPU), as ci runs them.
    GpuBrowser,
    /// Run the criterion benchmarks (results go in BENCHMARKS.md by hand).
    Bench {
        /// Passed on to criterion.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// mclr and PyTorch side by side on the same workloads.
    ///
    /// Installs torch into a venv in the target directory.
    BenchTorch(bench_torch::Options),
    /// The whole product, from CIFAR-10 to the viewer on 127.0.0.1:8080.
    ///
    /// Fetches CIFAR-10, builds mclr, trains the `demo` config, evaluates, exports, builds the
    /// viewer and serves both bundles on 127.0.0.1:8080.
    Demo(demo::Args),
    /// The libFuzzer targets in fuzz/ (bundle_decode, share_link) on nightly cargo-fuzz.
    ///
    /// From a corpus seeded in code; default and --smoke: 30 s per target.
    Fuzz(fuzz::Options),
    /// SIGKILL `mclr train` at random moments and check every resume ends bit-identical.
    ///
    /// Half of the kills land during checkpoint writes; after each the run resumes, and the final
    /// weights must be bit-identical to an uninterrupted run's and every checkpoint must load;
    /// then a disk-full write fault. `--kills 4 --epochs 6` for CI.
    KillTest(kill_test::Options),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The chain of contexts says what failed and what to run next; a backtrace would not.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> Result<()> {
    let Some(verb) = cli.verb else {
        // `cargo xtask` alone: the list of verbs, as before.
        let mut cmd = <Cli as clap::CommandFactory>::command();
        cmd.print_help()?;
        return Ok(());
    };
    match verb {
        Verb::Ci => ci::run(),
        Verb::Bench { args } => ci::bench(&args),
        Verb::BenchTorch(o) => bench_torch::run(&o),
        Verb::Web { dev } => web::build(dev).map(drop),
        Verb::Serve(o) => serve::run(&o),
        Verb::GpuBrowser => ci::gpu_browser(),
        Verb::CudaCheck => cuda::check(),
        Verb::GpuCheck(o) => gpu_check::run(&o),
        Verb::Demo(a) => demo::pipeline(&a.into()),
        Verb::Fuzz(o) => fuzz::run(&o),
        Verb::KillTest(o) => kill_test::run(&o),
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{Cli, Verb};

    fn parse(args: &[&str]) -> Verb {
        Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied()))
            .unwrap()
            .verb
            .unwrap()
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_command_lines_of_the_readme_and_ci_parse() {
        assert!(matches!(parse(&["ci"]), Verb::Ci));
        assert!(matches!(parse(&["web", "--dev"]), Verb::Web { dev: true }));
        let Verb::Demo(d) = parse(&["demo", "--smoke", "--no-serve"]) else {
            panic!("the command line did not parse as `demo`")
        };
        assert!(d.smoke && d.no_serve && !d.offline && d.port == 8080);
        let Verb::KillTest(k) =
            parse(&["kill-test", "--kills", "4", "--epochs", "6", "--seed", "1"])
        else {
            panic!("the command line did not parse as `kill-test`")
        };
        assert_eq!((k.kills, k.epochs, k.seed), (4, 6, Some(1)));
        let Verb::BenchTorch(b) = parse(&["bench-torch", "--only", "a,b"]) else {
            panic!("the command line did not parse as `bench-torch`")
        };
        assert_eq!(b.only, Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!((b.rounds, b.iters), (2, 3));
        let Verb::GpuCheck(g) = parse(&["gpu-check", "--data", "DIR", "--no-cudnn"]) else {
            panic!("the command line did not parse as `gpu-check`")
        };
        assert!(g.no_cudnn && g.data.as_deref() == Some(std::path::Path::new("DIR")));
        let Verb::Fuzz(f) = parse(&["fuzz", "--smoke"]) else {
            panic!("the command line did not parse as `fuzz`")
        };
        assert!(f.smoke && f.target.is_none());
        let Verb::Serve(s) = parse(&["serve", "--port", "9000"]) else {
            panic!("the command line did not parse as `serve`")
        };
        assert_eq!(s.port, 9000);
        let Verb::Bench { args } = parse(&["bench", "--bench", "expm"]) else {
            panic!("the command line did not parse as `bench`")
        };
        assert_eq!(args, ["--bench", "expm"]);
    }

    #[test]
    fn wrong_options_are_errors() {
        let bad = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied())).is_err()
        };
        assert!(bad(&["ci", "--fast"]));
        assert!(bad(&["fuzz", "--target", "nope"]));
        assert!(bad(&["fuzz", "--seconds", "5", "--runs", "9"]));
        assert!(bad(&["serve", "--port", "http"]));
        assert!(bad(&["nonsense"]));
    }
}
