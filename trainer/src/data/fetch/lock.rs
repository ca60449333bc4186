//! Serialising fetches into one folder: an exclusive lock file, held for the whole fetch, under
//! which the leftovers of an interrupted fetch (`.mclr-partial-*`) can be removed safely.

use std::fs::File;
use std::path::Path;

use crate::error::{Error, Result};

/// The lock file that serialises fetches into one folder.
pub const LOCK_FILE: &str = ".mclr-fetch.lock";

/// Takes an exclusive lock on `dir`'s lock file (released when the returned file is dropped).
pub(super) fn lock_dir(dir: &Path) -> Result<File> {
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
pub(super) fn remove_partials(dir: &Path) -> Result<()> {
    for path in crate::durable::remove_partials(dir)? {
        tracing::info!("removed {} left by an interrupted fetch", path.display());
    }
    Ok(())
}
