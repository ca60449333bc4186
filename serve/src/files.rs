//! Opening the file a route names, once: the answer's validators come from the open handle's
//! metadata (`fstat`) and its body from the same handle, so a file that a writer replaces by
//! rename meanwhile is still sent whole, in the version the validators describe.

use std::fs::{self, File, Metadata};
use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::http::Validators;

/// How often [`open_run_file`] retries when the name was renamed over between its two looks.
const RENAME_RETRIES: usize = 3;

/// An opened regular file and its metadata (from the handle).
pub(crate) struct Opened {
    file: File,
    meta: Metadata,
    /// The path asked for (a folder's `index.html`), whose extension gives the content type.
    path: PathBuf,
}

impl Opened {
    /// The path asked for (before symlinks are resolved).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Length in bytes, as the handle's metadata says.
    pub(crate) fn len(&self) -> u64 {
        self.meta.len()
    }

    /// The validators of this version of the file.
    pub(crate) fn validators(&self) -> Validators {
        let modified_ns = self
            .meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        Validators::new(inode(&self.meta), self.meta.len(), modified_ns)
    }

    /// The whole content, read from the open handle.
    pub(crate) fn read(mut self) -> std::io::Result<Vec<u8>> {
        let mut body = Vec::with_capacity(usize::try_from(self.meta.len()).unwrap_or(0));
        self.file.read_to_end(&mut body)?;
        Ok(body)
    }
}

/// Opens `relative` (plain names only) inside the site folder `root` (canonical), or its
/// `index.html` if it is a folder; `None` if it does not exist, is not a regular file, or
/// resolves (through a symlink) outside `root`. The file opened is the canonical path that
/// was checked.
pub(crate) fn open_site_file(root: &Path, relative: &Path) -> Option<Opened> {
    let mut path = root.join(relative);
    if path.is_dir() {
        path.push("index.html");
    }
    let canonical = path.canonicalize().ok()?;
    if !canonical.starts_with(root) {
        return None;
    }
    let file = File::open(&canonical).ok()?;
    let meta = file.metadata().ok()?;
    meta.is_file().then_some(Opened { file, meta, path })
}

/// Opens the file `name` (a plain name) directly inside the run folder `dir`; `None` unless it
/// is a regular file reached without a symlink. The name is looked at twice, through the open
/// handle and without following links, and both must be the same file; a writer renaming a new
/// version over it in between makes it try again.
pub(crate) fn open_run_file(dir: &Path, name: &str) -> Option<Opened> {
    let path = dir.join(name);
    for _ in 0..RENAME_RETRIES {
        let file = File::open(&path).ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() {
            return None;
        }
        let link = fs::symlink_metadata(&path).ok()?;
        if link.file_type().is_symlink() {
            return None;
        }
        if same_file(&meta, &link) {
            return Some(Opened { file, meta, path });
        }
    }
    None
}

#[cfg(unix)]
fn inode(meta: &Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
fn inode(_meta: &Metadata) -> u64 {
    0
}

#[cfg(unix)]
fn same_file(a: &Metadata, b: &Metadata) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

#[cfg(not(unix))]
fn same_file(a: &Metadata, b: &Metadata) -> bool {
    a.len() == b.len() && a.modified().ok() == b.modified().ok()
}
