//! Durable, atomic file writes, shared by dataset fetching and training checkpoints.
//!
//! A file is written to a temporary name in its target folder (prefix [`PARTIAL_PREFIX`]),
//! flushed to disk (`fsync`), renamed over the target, and the folder itself is flushed so that
//! the rename survives a power loss. Readers see either the old file or the whole new one; a crash
//! leaves at most a `.mclr-partial-*` leftover, which [`remove_partials`] cleans up.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::{Error, Result};

/// Prefix of every temporary file or folder written on the way to its final name.
pub const PARTIAL_PREFIX: &str = ".mclr-partial-";

/// Writes `bytes` to `path` atomically and durably: a temporary file in the same folder, flushed
/// to disk, renamed over `path`, then the folder flushed. Readers see either the old file or the
/// whole new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = partial_file(path)?;
    tmp.write_all(bytes)
        .map_err(|e| Error::io("writing", tmp.path(), e))?;
    persist(tmp, path)
}

/// A temporary file next to `path`, to be [`persist`]ed over it.
pub fn partial_file(path: &Path) -> Result<NamedTempFile> {
    let dir = parent(path);
    tempfile::Builder::new()
        .prefix(PARTIAL_PREFIX)
        .tempfile_in(dir)
        .map_err(|e| Error::io("creating a temporary file in", dir, e))
}

/// Flushes a temporary file to disk, makes it readable like a normally created file (temporary
/// files start owner-only), renames it to `path` and flushes the folder.
pub fn persist(tmp: NamedTempFile, path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io("setting permissions of", tmp.path(), e))?;
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io("syncing", tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| Error::io("renaming into", path, e.error))?;
    sync_dir(parent(path))
}

/// Creates `path` (which must not exist) with `bytes` and flushes it to disk; for files inside a
/// private staging folder that is renamed into place as a whole.
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| Error::io("creating", path, e))?;
    file.write_all(bytes)
        .map_err(|e| Error::io("writing", path, e))?;
    file.sync_all().map_err(|e| Error::io("syncing", path, e))
}

/// Renames `from` to `to` (same file system) and flushes the folder of `to` (and of `from` when it
/// differs), so that the rename is on disk when this returns.
pub fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|e| Error::io("renaming into", to, e))?;
    sync_dir(parent(to))?;
    if parent(from) != parent(to) {
        sync_dir(parent(from))?;
    }
    Ok(())
}

/// Flushes a folder's entries (new, renamed or removed names) to disk. A no-op where folders
/// cannot be opened for syncing.
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let handle = File::open(dir).map_err(|e| Error::io("opening", dir, e))?;
        handle
            .sync_all()
            .map_err(|e| Error::io("syncing folder", dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Removes the files and folders in `dir` whose names start with [`PARTIAL_PREFIX`] (leftovers of
/// an interrupted write); returns what it removed. The caller must make sure that no other process
/// is writing into `dir` (hold its lock).
pub fn remove_partials(dir: &Path) -> Result<Vec<PathBuf>> {
    remove_matching(dir, |name| name.starts_with(PARTIAL_PREFIX))
}

/// Removes the entries of `dir` whose file names satisfy `matches`; returns what it removed.
pub(crate) fn remove_matching(dir: &Path, matches: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(Error::io("listing", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing", dir, e))?;
        if !matches(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let result = if is_dir {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        result.map_err(|e| Error::io("removing", &path, e))?;
        removed.push(path);
    }
    if !removed.is_empty() {
        sync_dir(dir)?;
    }
    Ok(removed)
}

/// The folder holding `path` (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
