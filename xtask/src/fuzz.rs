//! `cargo xtask fuzz`: the libFuzzer targets in `fuzz/` (bundle decoding and validation, the share
//! link parser) under cargo-fuzz on nightly, from a corpus seeded here in code: the golden
//! bundles, synthetic bundles like the tests build, and damaged copies of them (truncated,
//! bit-flipped with the CRC fixed, with forged lengths). Nothing binary is committed.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use mclr_shared::bundle::synthetic::{SyntheticSpec, synthetic_bundle};
use mclr_shared::bundle::{self, HEADER_LEN};

use crate::cmd::{self, command};
use crate::workspace;

/// The targets, in the order they run.
const TARGETS: [&str; 2] = ["bundle_decode", "share_link"];

/// Seconds per target of `--smoke` (two targets: one minute of fuzzing, well under two with the
/// build).
const SMOKE_SECONDS: u64 = 30;

/// What `cargo xtask fuzz` was asked to do: which targets, and how long each runs.
#[derive(Debug, Clone, Default, clap::Args)]
#[group(id = "budget", multiple = false, args = ["seconds", "runs", "smoke"])]
pub struct Options {
    /// Only this target.
    #[arg(long, value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(TARGETS))]
    pub target: Option<String>,
    /// Fuzz each target for N seconds.
    #[arg(long, value_name = "N")]
    pub seconds: Option<u64>,
    /// Fuzz each target for N runs.
    #[arg(long, value_name = "N")]
    pub runs: Option<u64>,
    /// 30 s per target, as CI runs it (also the default).
    #[arg(long)]
    pub smoke: bool,
}

impl Options {
    /// `--smoke`: every target, [`SMOKE_SECONDS`] each.
    pub fn smoke() -> Self {
        Self {
            smoke: true,
            ..Self::default()
        }
    }
}

/// `cargo xtask fuzz [--target NAME] [--seconds N | --runs N | --smoke]`.
pub fn run(opts: &Options) -> Result<()> {
    let targets: Vec<&str> = match &opts.target {
        Some(name) => match TARGETS.iter().find(|t| *t == name) {
            Some(&t) => vec![t],
            None => bail!(
                "unknown fuzz target `{name}` (targets: {})",
                TARGETS.join(", ")
            ),
        },
        None => TARGETS.to_vec(),
    };
    let limit = match (opts.seconds, opts.runs) {
        (_, Some(r)) => format!("-runs={r}"),
        (Some(s), None) => format!("-max_total_time={s}"),
        (None, None) => format!("-max_total_time={SMOKE_SECONDS}"),
    };
    crate::setup::fuzz_tools()?;
    let root = workspace::root()?;
    let fuzz_dir = root.join("fuzz");
    for target in targets {
        let corpus = fuzz_dir.join("corpus").join(target);
        let seeds = write_seeds(&root, target, &corpus)?;
        eprintln!("{target}: {seeds} seeds in {}", corpus.display());
        let corpus_arg = corpus.to_string_lossy().into_owned();
        cmd::run(
            command(
                "cargo",
                &[
                    "+nightly",
                    "fuzz",
                    "run",
                    "--fuzz-dir",
                    &fuzz_dir.to_string_lossy(),
                    "-O",
                    target,
                    &corpus_arg,
                    "--",
                    &limit,
                    "-max_len=65536",
                    "-rss_limit_mb=2048",
                    "-print_final_stats=1",
                ],
            )
            .current_dir(&root),
        )?;
    }
    Ok(())
}

/// Writes the seed inputs of `target` into `corpus` (created if missing); returns how many.
fn write_seeds(root: &Path, target: &str, corpus: &Path) -> Result<usize> {
    fs::create_dir_all(corpus).with_context(|| format!("creating {}", corpus.display()))?;
    let seeds = match target {
        "bundle_decode" => bundle_seeds(root)?,
        _ => link_seeds(),
    };
    for (i, seed) in seeds.iter().enumerate() {
        let path: PathBuf = corpus.join(format!("seed-{i:04}"));
        fs::write(&path, seed).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(seeds.len())
}

/// Golden and synthetic bundles, and damaged copies of each.
fn bundle_seeds(root: &Path) -> Result<Vec<Vec<u8>>> {
    let mut whole = Vec::new();
    for name in ["bundle_v1.mclr", "bundle_v2.mclr"] {
        let path = root.join("shared/tests/golden").join(name);
        whole.push(fs::read(&path).with_context(|| format!("reading {}", path.display()))?);
    }
    for spec in [
        SyntheticSpec {
            operators: 2,
            blocks: 1,
            block_size: 4,
            gallery: 6,
            classes: 2,
            hidden: 4,
            tile_px: 2,
            seed: 1,
        },
        SyntheticSpec {
            gallery: 12,
            tile_px: 4,
            ..SyntheticSpec::default()
        },
    ] {
        whole.push(bundle::encode(&synthetic_bundle(&spec)?)?);
    }
    let mut seeds = whole.clone();
    for file in &whole {
        let payload = file.get(HEADER_LEN..).unwrap_or_default();
        // Truncated: the header as written, and the header fixed to the shorter payload.
        for cut in [
            0,
            1,
            payload.len() / 3,
            payload.len() / 2,
            payload.len().saturating_sub(1),
        ] {
            let short = payload.get(..cut).unwrap_or_default();
            seeds.push([file.get(..HEADER_LEN).unwrap_or_default(), short].concat());
            seeds.push(reframe(file, short));
        }
        // Bit flips with the CRC fixed, spread over the payload.
        let step = (payload.len() / 24).max(1);
        for (n, at) in (0..payload.len()).step_by(step).enumerate() {
            let mut flipped = payload.to_vec();
            if let Some(byte) = flipped.get_mut(at) {
                *byte ^= 1 << (n % 8);
            }
            seeds.push(reframe(file, &flipped));
        }
        // Forged lengths: a varint claiming 2^40 (and 2^31 - 1) spliced in at several offsets,
        // the first of which is the length of `metadata.dataset`.
        for at in (0..payload.len().min(4096)).step_by(97) {
            for forged in [1_u64 << 40, (1 << 31) - 1] {
                let mut bytes = payload.get(..at).unwrap_or_default().to_vec();
                bytes.push(253);
                bytes.extend_from_slice(&forged.to_le_bytes());
                bytes.extend_from_slice(payload.get(at.saturating_add(1)..).unwrap_or_default());
                seeds.push(reframe(file, &bytes));
            }
        }
    }
    Ok(seeds)
}

/// `file`'s header (magic and version) with `payload`, its length and its CRC.
fn reframe(file: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = file.get(..12).unwrap_or_default().to_vec();
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// CRC-32 (IEEE), as bundle headers store it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0_u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Share links: one of each parameter, malformed values, repeats, junk.
fn link_seeds() -> Vec<Vec<u8>> {
    let junk: String = (0..500).map(|i| format!("k{i}=v&")).collect();
    [
        "?bundle=https%3A%2F%2Fexample.org%2Fa.mclr&anchor=12&ops=3:1.0,7:-0.5&T=2.5&t=0.75&mode=path&cpu=1",
        "mode=transport&anchor=1&b=2&t=0.5&seed=18446744073709551615",
        "mode=prior&S=64&seed=7&op=3",
        "mode=inspect&op=0",
        "ops=3:1,x:2,4:inf,5,6:9,3:2,7:-0.5,,8:1e-3",
        "anchor=1&anchor=2&T=0&t=nan&%ZZ=%&&&=",
        "t=1e40&T=1e-30&mode=PATH&cpu=yes",
        &junk,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}
