//! The crate's one error type: what the browser launcher and the WebDriver client can fail with,
//! each variant naming what was being done (the site server has its own, `mclr_serve::Error`). The
//! error that caused one (an OS error, the HTTP client's) is its `source()`, not part of its
//! message: print it with [`mclr_shared::error_chain`].

use std::path::PathBuf;

/// Everything this crate's helpers can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or socket operation failed.
    #[error("{context}")]
    Io {
        /// What was being done, e.g. "finding a free port".
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A program the browser tests need is not installed.
    #[error("`{}` is missing; install it with: {install}", program.display())]
    MissingProgram {
        /// The program that was looked for.
        program: PathBuf,
        /// The command that installs it.
        install: &'static str,
    },
    /// An HTTP request to the WebDriver server failed below the protocol (connection, I/O).
    #[error("WebDriver request {method} {path} failed")]
    Http {
        /// HTTP method of the request.
        method: &'static str,
        /// Path of the request, e.g. `/session/…/url`.
        path: String,
        /// The transport error.
        #[source]
        source: Box<ureq::Error>,
    },
    /// The WebDriver server answered with a W3C error object.
    #[error("WebDriver {method} {path}: {error}: {message}")]
    WebDriver {
        /// HTTP method of the request.
        method: &'static str,
        /// Path of the request.
        path: String,
        /// The W3C error code, e.g. `no such element`.
        error: String,
        /// The server's message.
        message: String,
    },
    /// A base64 field of an answer (a screenshot) that does not decode.
    #[error("WebDriver sent a {what} that is not valid base64")]
    Base64 {
        /// Which field, e.g. "screenshot".
        what: &'static str,
        /// The decoder's error.
        #[source]
        source: base64::DecodeError,
    },
    /// An answer was not the JSON shape the protocol promises.
    #[error("unexpected WebDriver answer to {what}: {found}")]
    Protocol {
        /// Which request or field.
        what: String,
        /// What came back instead (shortened).
        found: String,
    },
    /// A condition polled in the browser did not become true in time.
    #[error("timed out after {secs} s waiting for {expected}; last seen: {found}")]
    Timeout {
        /// What was expected, e.g. `#badge[data-backend="webgpu"]`.
        expected: String,
        /// What the page showed at the last poll.
        found: String,
        /// How long we waited.
        secs: u64,
    },
    /// The chromedriver process did not start listening in time.
    #[error("chromedriver did not answer on port {port} within {secs} s (its output: {output})")]
    DriverStart {
        /// The port it was told to listen on.
        port: u16,
        /// How long we waited.
        secs: u64,
        /// What it printed, if anything.
        output: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with a description of what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
