//! The crate's one error type: what starting a server can fail with. Each message says what was
//! being done; the operating system's reason is the [`source`](std::error::Error::source), never
//! repeated in the message, so that a printed error chain names it once.

use std::net::SocketAddr;
use std::path::PathBuf;

/// What starting a [`Server`](crate::Server) can fail with (answering requests never fails the
/// server: a broken connection only ends its own thread).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A folder to serve could not be found or resolved.
    #[error("cannot open the {what} folder {}", path.display())]
    OpenFolder {
        /// Which mount: `site` or `run`.
        what: &'static str,
        /// The folder as given.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A path to serve as a folder is something else.
    #[error("the {what} folder {} is not a folder", path.display())]
    NotAFolder {
        /// Which mount: `site` or `run`.
        what: &'static str,
        /// The path as given.
        path: PathBuf,
    },
    /// The address could not be bound (in use, not an address of this machine, no permission).
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The thread that accepts connections could not be started.
    #[error("cannot start the server's accept thread")]
    Thread {
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, Error>;
