//! Tiny ImageNet: extracting the official zip into a staging folder and moving its tree into the
//! target folder under an install journal, so that an interrupted installation can be resumed
//! without ever replacing an entry it did not create.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use super::archive::obtain_archive;
use super::{FetchOptions, FileRecord, PARTIAL_PREFIX, Source, kept, write_atomic, written};
use crate::data::{DatasetName, tiny_imagenet};
use crate::error::{Error, Result};

pub(super) fn fetch_tiny_imagenet(
    dir: &Path,
    options: &FetchOptions,
) -> Result<(Source, Vec<FileRecord>)> {
    // `wnids.txt` is moved into place last, so its presence means a complete installation.
    let marker = dir.join(tiny_imagenet::WNIDS_FILE);
    if marker.exists() {
        return Ok((Source::AlreadyPresent, vec![kept(marker, None)]));
    }
    let (archive, source) = obtain_archive(DatasetName::TinyImageNet, dir, options)?;
    let staging = tempfile::Builder::new()
        .prefix(PARTIAL_PREFIX)
        .tempdir_in(dir)
        .map_err(|e| Error::io("creating a temporary folder in", dir, e))?;
    tracing::info!("extracting {}", archive.path().display());
    let file = File::open(archive.path()).map_err(|e| Error::io("opening", archive.path(), e))?;
    let mut zip =
        zip::ZipArchive::new(io::BufReader::new(file)).map_err(|e| Error::ArchiveRead {
            path: archive.path().to_path_buf(),
            what: "it as a zip".to_owned(),
            source: Box::new(e),
        })?;
    zip.extract_unwrapped_root_dir(staging.path(), zip::read::root_dir_common_filter)
        .map_err(|e| Error::ArchiveRead {
            path: archive.path().to_path_buf(),
            what: "its members".to_owned(),
            source: Box::new(e),
        })?;
    if !staging.path().join(tiny_imagenet::WNIDS_FILE).exists() {
        return Err(Error::Archive {
            path: archive.path().to_path_buf(),
            reason: format!("no {} at the archive's root", tiny_imagenet::WNIDS_FILE),
        });
    }
    let files = install_tiny_imagenet(staging.path(), dir)?;
    Ok((source, files))
}

/// Name of the journal an installation of Tiny ImageNet writes into the target folder before it
/// moves anything: the entries it is about to create, one per line. Removed once `wnids.txt` is
/// in place.
pub const TINY_IMAGENET_JOURNAL: &str = ".mclr-tiny-imagenet-install";

/// Moves the extracted Tiny ImageNet tree in `staging` into `dir`, `wnids.txt` last (its presence
/// marks a complete installation). An entry of `dir` is replaced only when an earlier, interrupted
/// installation created it (it is listed in [`TINY_IMAGENET_JOURNAL`]); any other existing entry
/// with a name from the archive (`train/`, `val/`, `test/`, ...) makes the installation stop before
/// it moves anything, naming it.
///
/// # Errors
/// [`Error::WouldReplace`] for an entry the installation did not create; I/O errors.
pub fn install_tiny_imagenet(staging: &Path, dir: &Path) -> Result<Vec<FileRecord>> {
    let mut entries: Vec<PathBuf> = fs::read_dir(staging)
        .map_err(|e| Error::io("listing", staging, e))?
        .map(|e| {
            e.map(|e| e.path())
                .map_err(|e| Error::io("listing", staging, e))
        })
        .collect::<Result<_>>()?;
    entries.sort_by_key(|p| {
        (
            p.file_name()
                .is_some_and(|n| n == tiny_imagenet::WNIDS_FILE),
            p.clone(),
        )
    });
    let names: Vec<String> = entries
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let journal = dir.join(TINY_IMAGENET_JOURNAL);
    let ours: Vec<String> = match fs::read_to_string(&journal) {
        Ok(text) => text.lines().map(str::to_owned).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io("reading", &journal, e)),
    };
    for name in &names {
        let to = dir.join(name);
        if to.symlink_metadata().is_ok() && !ours.contains(name) {
            return Err(Error::WouldReplace {
                path: to,
                reason: format!(
                    "it is not from an earlier Tiny ImageNet installation (not listed in {}); move it away, or fetch into another folder",
                    journal.display()
                ),
            });
        }
    }
    let mut listed = ours.clone();
    listed.extend(names.iter().filter(|n| !ours.contains(n)).cloned());
    write_atomic(&journal, format!("{}\n", listed.join("\n")).as_bytes())?;
    let mut files = Vec::new();
    for (from, name) in entries.iter().zip(&names) {
        let to = dir.join(name);
        match to.symlink_metadata() {
            Ok(meta) if meta.is_dir() => {
                fs::remove_dir_all(&to).map_err(|e| Error::io("removing", &to, e))?;
            }
            Ok(_) => fs::remove_file(&to).map_err(|e| Error::io("removing", &to, e))?,
            Err(_) => {}
        }
        crate::durable::rename(from, &to)?;
        files.push(written(to, None));
    }
    fs::remove_file(&journal).map_err(|e| Error::io("removing", &journal, e))?;
    crate::durable::sync_dir(dir)?;
    Ok(files)
}
