//! Official archives: obtaining one (the user's own, MD5-checked, or a download) and walking the
//! members of a `.tar.gz`, either extracting named members into place through temporary files
//! or reading them into memory. Every archive-level failure names the archive.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::download::download;
use super::{FetchOptions, FileRecord, Member, Source, check_archive, copy_hashed, written};
use crate::data::DatasetName;
use crate::durable::{partial_file, persist};
use crate::error::{Error, Result};

/// An official archive on disk: downloaded into a temporary file, or the user's own.
pub(super) enum Archive {
    Downloaded(NamedTempFile),
    Local(PathBuf),
}

impl Archive {
    pub(super) fn path(&self) -> &Path {
        match self {
            Self::Downloaded(t) => t.path(),
            Self::Local(p) => p,
        }
    }
}

/// The verified official archive: the user's (`options.archive`) or a download.
pub(super) fn obtain_archive(
    name: DatasetName,
    dir: &Path,
    options: &FetchOptions,
) -> Result<(Archive, Source)> {
    let spec = name.spec();
    if let Some(path) = &options.archive {
        check_archive(path, spec.archive_md5)?;
        return Ok((
            Archive::Local(path.clone()),
            Source::LocalArchive { path: path.clone() },
        ));
    }
    if options.offline {
        return Err(Error::OfflineUnavailable {
            dataset: spec.title,
            url: spec.url,
            dir: dir.to_path_buf(),
        });
    }
    let tmp = download(
        spec.url,
        dir,
        spec.archive_md5,
        spec.archive_bytes,
        options.progress,
    )?;
    Ok((
        Archive::Downloaded(tmp),
        Source::Download {
            url: spec.url.to_owned(),
        },
    ))
}

/// Extracts the named members of `root/` in a `.tar.gz` into `dir`, streaming each through a
/// temporary file, checking its MD5 (when given) before renaming it into place.
pub(super) fn extract_tar_members(
    archive: &Path,
    root: &str,
    members: &[Member],
    dir: &Path,
) -> Result<Vec<FileRecord>> {
    let archive_err = |reason: String| Error::Archive {
        path: archive.to_path_buf(),
        reason,
    };
    let mut out = Vec::new();
    for_each_tar_entry(archive, |name, entry| {
        let name = name.trim_start_matches("./");
        let Some(&(file, md5)) = members
            .iter()
            .find(|(f, _)| name.strip_prefix(root).and_then(|n| n.strip_prefix('/')) == Some(*f))
        else {
            return Ok(());
        };
        let path = dir.join(file);
        tracing::info!("extracting {}", path.display());
        let mut tmp = partial_file(&path)?;
        let (_, found) =
            copy_hashed(&mut &mut *entry, &mut tmp).map_err(|e| Error::ArchiveRead {
                path: archive.to_path_buf(),
                what: format!("member {name}"),
                source: Box::new(e),
            })?;
        if let Some(expected) = md5.filter(|&m| m != found) {
            return Err(Error::ChecksumMismatch {
                path,
                expected: expected.to_owned(),
                found,
            });
        }
        persist(tmp, &path)?;
        out.push(written(path, md5.map(|_| found)));
        Ok(())
    })?;
    if let Some((missing, _)) = members
        .iter()
        .find(|(f, _)| !out.iter().any(|r| r.path == dir.join(f)))
    {
        return Err(archive_err(format!("member {root}/{missing} is missing")));
    }
    Ok(out)
}

/// Reads the named members of a `.tar.gz` (full member paths) into memory.
pub(super) fn read_tar_members(archive: &Path, names: &[String]) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for_each_tar_entry(archive, |name, entry| {
        if names.iter().any(|n| n == name) {
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| Error::ArchiveRead {
                    path: archive.to_path_buf(),
                    what: format!("member {name}"),
                    source: Box::new(e),
                })?;
            out.push((name.to_owned(), bytes));
        }
        Ok(())
    })?;
    Ok(out)
}

/// Walks the entries of a `.tar.gz`, calling `visit` with each member's path (as stored) and a
/// reader of its bytes; archive-level failures become [`Error::ArchiveRead`] naming `archive`.
fn for_each_tar_entry(
    archive: &Path,
    mut visit: impl FnMut(&str, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    let archive_err = |what: &str, e: io::Error| Error::ArchiveRead {
        path: archive.to_path_buf(),
        what: what.to_owned(),
        source: Box::new(e),
    };
    let file = File::open(archive).map_err(|e| Error::io("opening", archive, e))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(io::BufReader::new(file)));
    for entry in tar.entries().map_err(|e| archive_err("its entries", e))? {
        let mut entry = entry.map_err(|e| archive_err("an entry", e))?;
        let name = entry
            .path()
            .map_err(|e| archive_err("an entry's path", e))?
            .to_string_lossy()
            .into_owned();
        visit(&name, &mut entry)?;
    }
    Ok(())
}
