//! `cargo xtask web [--dev]`: builds the static site into `www/dist/` — the viewer compiled to
//! wasm32, its JS glue from wasm-bindgen (run as a library, so nothing else needs installing),
//! optionally shrunk by wasm-opt, the page and its stylesheet, and a demo bundle.
//!
//! `cargo xtask serve` serves the result.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use mclr_shared::bundle::{self, synthetic::SyntheticSpec};

use crate::cmd::{self, command, output};
use crate::setup::WASM_TARGET;
use crate::workspace;

/// Where `www/` is, relative to the workspace root.
pub const WWW: &str = "www";

/// Where the built site goes.
pub const DIST: &str = "www/dist";

/// The viewer's crate and the file name stem of its module and glue.
const VIEWER: &str = "mclr-viewer";
const OUT_NAME: &str = "mclr_viewer";

/// The oldest wasm-opt (binaryen) whose output for this module works; Debian's 108 breaks it.
const MIN_WASM_OPT: u32 = 116;

/// Builds the site into [`DIST`] and returns that folder. `dev` builds the debug profile and
/// skips wasm-opt: faster to build, slower and bigger to load.
pub fn build(dev: bool) -> Result<PathBuf> {
    let root = workspace::root()?;
    let lock = fs::read_to_string(root.join("Cargo.lock")).context("reading Cargo.lock")?;
    check_bindgen_version(&lock)?;

    let profile = if dev { "dev" } else { "wasm-release" };
    cmd::run(&mut command(
        "cargo",
        &[
            "build",
            "--locked",
            "-p",
            VIEWER,
            "--target",
            WASM_TARGET,
            "--profile",
            profile,
        ],
    ))?;
    let profile_dir = if dev { "debug" } else { profile };
    let wasm = workspace::target_dir()?
        .join(WASM_TARGET)
        .join(profile_dir)
        .join(format!("{OUT_NAME}.wasm"));
    if !wasm.is_file() {
        bail!(
            "{} was not produced although the build succeeded: the viewer must be a `cdylib` \
             crate",
            wasm.display()
        );
    }

    let dist = root.join(DIST);
    let pkg = dist.join("pkg");
    if dist.exists() {
        fs::remove_dir_all(&dist).with_context(|| format!("clearing {}", dist.display()))?;
    }
    fs::create_dir_all(&pkg).with_context(|| format!("creating {}", pkg.display()))?;
    eprintln!(
        "\x1b[1mwasm-bindgen {} (target web) → {}\x1b[0m",
        wasm.display(),
        pkg.display()
    );
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&wasm)
        .web(true)?
        .out_name(OUT_NAME)
        .typescript(false)
        .debug(dev)
        .keep_debug(dev)
        // The profile keeps symbol names (see `strip` in the root Cargo.toml); drop them here.
        .remove_name_section(!dev)
        .remove_producers_section(!dev)
        .generate(&pkg)
        .with_context(|| format!("wasm-bindgen failed on {}", wasm.display()))?;

    let module = pkg.join(format!("{OUT_NAME}_bg.wasm"));
    if dev {
        println!("wasm-opt: skipped (--dev)");
    } else {
        optimise(&root, &module)?;
    }
    copy_site_files(&root.join(WWW), &dist)?;
    write_demo_bundle(&root.join(WWW), &dist)?;

    let bytes = fs::read(&module).with_context(|| format!("reading {}", module.display()))?;
    println!(
        "viewer wasm: {} raw, {} gzip -9 ({})",
        kib(bytes.len()),
        kib(gzip_len(&bytes)?),
        module.strip_prefix(&root).unwrap_or(&module).display()
    );
    println!(
        "site ready in {}: serve it with `cargo xtask serve`",
        dist.display()
    );
    Ok(dist)
}

/// The versions of package `name` recorded in a Cargo.lock text.
pub fn locked_versions(lock: &str, name: &str) -> Vec<String> {
    let wanted = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    let mut found = Vec::new();
    while let Some(line) = lines.next() {
        if line.trim() == wanted
            && let Some(v) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = \""))
                .and_then(|v| v.strip_suffix('"'))
        {
            found.push(v.to_owned());
        }
    }
    found
}

/// Fails unless Cargo.lock holds exactly one `wasm-bindgen` and the same version of
/// `wasm-bindgen-cli-support`: the glue generator must come from the release that compiled the
/// module's bindings, or the page fails at load time with a schema mismatch.
pub fn check_bindgen_version(lock: &str) -> Result<String> {
    let lib = locked_versions(lock, "wasm-bindgen");
    let cli = locked_versions(lock, "wasm-bindgen-cli-support");
    match (lib.as_slice(), cli.as_slice()) {
        ([lib], [cli]) if lib == cli => Ok(lib.clone()),
        ([lib], [cli]) => bail!(
            "Cargo.lock has wasm-bindgen {lib} but xtask uses wasm-bindgen-cli-support {cli}: \
             set `wasm-bindgen-cli-support = \"={lib}\"` in xtask/Cargo.toml (or pin the \
             wasm-bindgen crate to {cli}) so that both come from the same release"
        ),
        ([], _) => bail!(
            "Cargo.lock has no wasm-bindgen: the viewer must depend on it for `cargo xtask web`"
        ),
        (lib, cli) => bail!(
            "Cargo.lock must hold one wasm-bindgen and one wasm-bindgen-cli-support, found \
             {lib:?} and {cli:?}: align them with `cargo update -p wasm-bindgen --precise <v>`"
        ),
    }
}

/// The wasm-opt to use: `node_modules/.bin/wasm-opt` (npm `binaryen`) or one on PATH at least
/// version [`MIN_WASM_OPT`]. `None` (with the reason) when there is none usable.
fn find_wasm_opt(root: &Path) -> std::result::Result<PathBuf, String> {
    let local = root.join("node_modules/.bin/wasm-opt");
    let candidates = [local, PathBuf::from("wasm-opt")];
    let mut reasons = Vec::new();
    for candidate in candidates {
        let Some(text) = output(&mut command(&candidate.to_string_lossy(), &["--version"])) else {
            continue;
        };
        match parse_wasm_opt_version(&text) {
            Some(v) if v >= MIN_WASM_OPT => return Ok(candidate),
            Some(v) => reasons.push(format!(
                "{} is binaryen {v}, older than {MIN_WASM_OPT} (its output breaks this module)",
                candidate.display()
            )),
            None => reasons.push(format!("{} printed no version", candidate.display())),
        }
    }
    if reasons.is_empty() {
        reasons.push("no wasm-opt found".to_owned());
    }
    Err(reasons.join("; "))
}

/// The binaryen version in `wasm-opt --version` output, e.g. `wasm-opt version 132 (version_132)`.
pub fn parse_wasm_opt_version(text: &str) -> Option<u32> {
    let rest = text.split("version").nth(1)?;
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Runs wasm-opt -Oz on the module in place when a usable one exists; says so either way.
fn optimise(root: &Path, module: &Path) -> Result<()> {
    let wasm_opt = match find_wasm_opt(root) {
        Ok(p) => p,
        Err(why) => {
            println!(
                "wasm-opt: skipped ({why}); for a smaller module: npm install --no-save \
                 binaryen@132"
            );
            return Ok(());
        }
    };
    let optimised = module.with_extension("opt.wasm");
    let module_s = module.to_string_lossy();
    let optimised_s = optimised.to_string_lossy();
    cmd::run(&mut command(
        &wasm_opt.to_string_lossy(),
        &[
            "-Oz",
            // The features rustc's wasm32 target emits by default.
            "--enable-bulk-memory",
            "--enable-nontrapping-float-to-int",
            "--enable-sign-ext",
            "--enable-mutable-globals",
            "--enable-reference-types",
            "--enable-multivalue",
            &module_s,
            "-o",
            &optimised_s,
        ],
    ))?;
    fs::rename(&optimised, module)
        .with_context(|| format!("replacing {} with the optimised module", module.display()))
}

/// Copies the page's own files (every plain file directly in `www/`, e.g. `index.html`,
/// `style.css`, `demo.mclr`) into `dist`.
fn copy_site_files(www: &Path, dist: &Path) -> Result<()> {
    if !www.join("index.html").is_file() {
        bail!(
            "{} is missing: the viewer's page must exist before the site can be built",
            www.join("index.html").display()
        );
    }
    let entries = fs::read_dir(www).with_context(|| format!("listing {}", www.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", www.display()))?;
        let name = entry.file_name();
        let hidden = name.to_string_lossy().starts_with('.');
        if hidden || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let to = dist.join(&name);
        fs::copy(entry.path(), &to)
            .with_context(|| format!("copying {} to {}", entry.path().display(), to.display()))?;
    }
    Ok(())
}

/// The spec of the synthetic demo bundle used until a real one is committed as `www/demo.mclr`:
/// enough images and operators that paths visibly move through the gallery.
pub fn demo_spec() -> SyntheticSpec {
    SyntheticSpec {
        operators: 8,
        blocks: 4,
        block_size: 8,
        gallery: 400,
        classes: 10,
        hidden: 32,
        tile_px: 16,
        seed: 7,
    }
}

/// Leaves `dist/demo.mclr` as copied from `www/`, or writes a synthetic one (and says so).
fn write_demo_bundle(www: &Path, dist: &Path) -> Result<()> {
    let demo = dist.join("demo.mclr");
    if www.join("demo.mclr").is_file() {
        println!("demo bundle: www/demo.mclr");
        return Ok(());
    }
    let spec = demo_spec();
    let bytes = bundle::synthetic::synthetic_bundle(&spec)
        .and_then(|b| bundle::encode(&b))
        .context("building the synthetic demo bundle")?;
    fs::write(&demo, &bytes).with_context(|| format!("writing {}", demo.display()))?;
    println!(
        "demo bundle: no www/demo.mclr yet, wrote a SYNTHETIC bundle ({} operators, {} images in \
         {} classes, {}; nothing in it was learned)",
        spec.operators,
        spec.gallery,
        spec.classes,
        kib(bytes.len())
    );
    Ok(())
}

/// Size of `bytes` after gzip at level 9, what a server's precompressed copy would weigh.
fn gzip_len(bytes: &[u8]) -> Result<usize> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).context("gzip")?;
    Ok(enc.finish().context("gzip")?.len())
}

fn kib(n: usize) -> String {
    // Display only: the rounding of a size in KiB does not matter.
    #[allow(clippy::cast_precision_loss)]
    let k = n as f64 / 1024.0;
    format!("{k:.1} KiB ({n} B)")
}

#[cfg(test)]
mod tests {
    use super::{check_bindgen_version, locked_versions, parse_wasm_opt_version};

    const LOCK: &str = r#"
[[package]]
name = "wasm-bindgen"
version = "0.2.130"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "wasm-bindgen-cli-support"
version = "0.2.130"

[[package]]
name = "wasm-bindgen-futures"
version = "0.4.57"
"#;

    #[test]
    fn matching_bindgen_versions_pass_and_a_mismatch_names_the_fix() {
        assert_eq!(locked_versions(LOCK, "wasm-bindgen"), ["0.2.130"]);
        assert_eq!(check_bindgen_version(LOCK).unwrap(), "0.2.130");
        let skewed = LOCK.replacen("0.2.130", "0.2.131", 1);
        let err = check_bindgen_version(&skewed).unwrap_err().to_string();
        assert!(err.contains("0.2.131") && err.contains("=0.2.131"), "{err}");
    }

    #[test]
    fn the_real_lock_file_pins_one_bindgen_release() {
        let lock = include_str!("../../Cargo.lock");
        check_bindgen_version(lock).unwrap();
    }

    #[test]
    fn wasm_opt_versions_parse_from_both_spellings() {
        assert_eq!(parse_wasm_opt_version("wasm-opt version 108"), Some(108));
        assert_eq!(
            parse_wasm_opt_version("wasm-opt version 132 (version_132)\n"),
            Some(132)
        );
        assert_eq!(parse_wasm_opt_version("nonsense"), None);
    }
}
