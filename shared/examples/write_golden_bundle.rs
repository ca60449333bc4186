//! Writes the golden fixture of the current bundle format version,
//! `shared/tests/golden/bundle_v{FORMAT_VERSION}.mclr`:
//!
//! ```text
//! cargo run -p mclr-shared --example write_golden_bundle
//! ```
//!
//! The fixture is a small synthetic bundle (a few KB). `shared/tests/it/bundle.rs` decodes it and
//! re-encodes it byte for byte, which is what proves that files written by a released version
//! still open. So a fixture, once committed, is frozen: this program refuses to overwrite one.
//! Run it once when a new format version is introduced (the old version's fixture stays), or pass
//! `--force` only if the committed fixture of the *current, unreleased* version must change.

use std::io::Write;
use std::path::PathBuf;

use mclr_shared::bundle::synthetic::{SyntheticSpec, synthetic_bundle};
use mclr_shared::bundle::{self, FORMAT_VERSION, RunRecord, TrainingLog, WeightPrecision};

/// The spec of the golden bundle: every section present, everything small. The test in
/// `shared/tests/it/bundle.rs` asserts these sizes.
fn golden_spec() -> SyntheticSpec {
    SyntheticSpec {
        operators: 2,
        blocks: 2,
        block_size: 4,
        gallery: 8,
        classes: 3,
        hidden: 4,
        tile_px: 4,
        seed: 1,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let force = std::env::args().skip(1).any(|arg| arg == "--force");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden")
        .join(format!("bundle_v{FORMAT_VERSION}.mclr"));
    if path.exists() && !force {
        return Err(format!(
            "{} exists and golden fixtures are frozen; pass --force to overwrite it",
            path.display()
        )
        .into());
    }

    let mut golden = synthetic_bundle(&golden_spec())?;
    // Fixed text, so that the fixture does not depend on the crate version that wrote it.
    golden.metadata.producer = "mclr-shared write_golden_bundle".to_owned();
    golden.metadata.epochs = 3;
    golden.metadata.steps = 1234;
    // v2's new storage: the MLP weights as int8 with per-row scales.
    golden.prior = golden.prior.with_precision(WeightPrecision::I8)?;
    golden.encoder = golden.encoder.with_precision(WeightPrecision::I8)?;
    // v3's new section: the run record with two short training logs.
    golden.run = RunRecord {
        saved_unix_ms: 1_796_515_200_000,
        live: false,
        training_logs: vec![
            TrainingLog {
                label: "manifoldclr".to_owned(),
                jsonl: "{\"step\":0,\"loss\":{\"total\":4.5,\"kl\":50.0}}\n\
                        {\"step\":10,\"loss\":{\"total\":4.25,\"kl\":0.5}}\n"
                    .to_owned(),
            },
            TrainingLog {
                label: "simclr".to_owned(),
                jsonl: "{\"step\":0,\"loss\":{\"total\":4.75}}\n".to_owned(),
            },
        ],
    };
    let bytes = bundle::encode(&golden)?;
    // Prove the file opens before writing it.
    if bundle::decode(&bytes)? != golden {
        return Err("the golden bundle does not survive a round trip".into());
    }

    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A native developer tool: the crate's no-filesystem rule is for code that runs in the browser.
    #[allow(clippy::disallowed_methods)]
    std::fs::write(&path, &bytes)?;
    writeln!(
        std::io::stdout().lock(),
        "wrote {} ({} bytes, format v{FORMAT_VERSION})",
        path.display(),
        bytes.len()
    )?;
    Ok(())
}
