//! The crate's one error type, the [`Cause`] that its variants hold when another error caused
//! them, and [`error_chain`], which prints an error with its causes on one line.

use std::fmt;
use std::sync::Arc;

/// Everything that can go wrong in `mclr-shared`, grouped by concern. Each message names the fault
/// and, where there is one, the field, so that a person reading it knows what to fix. An error
/// that caused it (an I/O error, the encoder's) is its `source()`, not part of its message: print
/// the whole chain with [`error_chain`] (or anyhow's `{:#}`).
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    // ---- bundle container ----
    /// The first eight bytes are not the `.mclr` magic.
    #[error("not an mclr bundle (magic {found:02x?}, expected {expected:02x?})")]
    BadMagic {
        /// The bytes found where the magic belongs.
        found: [u8; 8],
        /// The magic this build writes.
        expected: [u8; 8],
    },
    /// The bundle was written by a format version this build cannot read.
    #[error("bundle format v{found} is not supported by this build (it reads v{supported})")]
    UnsupportedVersion {
        /// Version in the header.
        found: u32,
        /// Versions this build reads, e.g. "1" or "1..=2".
        supported: String,
    },
    /// The input ended before the part named `section` was complete.
    #[error("bundle truncated in the {section}: expected {expected} bytes, got {got}")]
    Truncated {
        /// "header" or "payload".
        section: &'static str,
        /// Bytes the header (or the fixed header size) promises.
        expected: u64,
        /// Bytes actually present.
        got: u64,
    },
    /// Bytes follow the payload that the header does not account for.
    #[error("bundle has {extra} unexpected bytes after the payload")]
    TrailingBytes {
        /// How many.
        extra: u64,
    },
    /// The payload's CRC-32 differs from the header's: the file was corrupted in transit or on disk.
    #[error(
        "bundle checksum mismatch: header says {expected:#010x}, payload hashes to {found:#010x}"
    )]
    ChecksumMismatch {
        /// CRC-32 stored in the header.
        expected: u32,
        /// CRC-32 of the payload as read.
        found: u32,
    },
    /// A length exceeds the configured limit; nothing was allocated for it.
    #[error("bundle {what} of {len} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// What was too large ("payload", or a field name).
        what: String,
        /// Its size in bytes.
        len: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// A size inside the bundle (a count, a dimension, a string length) is over the cap this
    /// build sets for it (see `bundle::limits`); nothing was allocated or computed for it.
    #[error("field `{field}`: {what} is {found}, over the limit of {limit}")]
    OverLimit {
        /// Dotted path of the field.
        field: String,
        /// What was counted, e.g. "block size n" or "bytes".
        what: String,
        /// The size found.
        found: u64,
        /// The cap.
        limit: u64,
    },
    /// The payload passed the checksum but does not decode as a bundle of this version.
    #[error("bundle payload is malformed: {reason}")]
    Malformed {
        /// The decoder's explanation: which field, at which offset, and what is wrong with it.
        reason: String,
    },
    /// A string of the payload is not UTF-8.
    #[error("bundle payload is malformed: `{field}` at offset {offset} is not UTF-8")]
    NotUtf8 {
        /// Dotted path of the field.
        field: String,
        /// Offset of the string's first byte in the payload.
        offset: usize,
        /// Where the bytes stop being UTF-8.
        #[source]
        source: std::str::Utf8Error,
    },
    /// Reading the bundle failed below the format (the file or the connection), before its bytes
    /// could be checked.
    #[error("reading the bundle {section} failed")]
    Read {
        /// "header" or "payload".
        section: &'static str,
        /// The I/O error.
        #[source]
        source: Cause,
    },
    /// The bundle could not be serialised.
    #[error("could not encode bundle")]
    Encode {
        /// The encoder's error.
        #[source]
        source: Cause,
    },

    // ---- shapes and values ----
    /// An array's shape disagrees with what its field requires.
    #[error("field `{field}`: expected shape {expected:?}, found {found:?}")]
    Shape {
        /// Dotted path of the field, e.g. `gallery.features`.
        field: String,
        /// Shape the field must have.
        expected: Vec<usize>,
        /// Shape it has.
        found: Vec<usize>,
    },
    /// An array's byte length does not match its dtype and shape.
    #[error(
        "field `{field}`: {dtype} array of shape {shape:?} needs {expected} bytes, found {found}"
    )]
    ByteLength {
        /// Dotted path of the field.
        field: String,
        /// Declared element type.
        dtype: String,
        /// Declared shape.
        shape: Vec<usize>,
        /// Bytes the dtype and shape need.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// An array has the wrong element type for its field.
    #[error("field `{field}`: expected dtype {expected}, found {found}")]
    DType {
        /// Dotted path of the field.
        field: String,
        /// Allowed dtype(s).
        expected: String,
        /// Dtype present.
        found: String,
    },
    /// A float array holds NaN or ±inf.
    #[error("field `{field}`: non-finite value {value} at flat index {index}")]
    NonFinite {
        /// Dotted path of the field.
        field: String,
        /// Flat index of the first offending element.
        index: usize,
        /// The value, as text ("NaN", "inf", "-inf").
        value: String,
    },
    /// A value is outside the range its field allows (a label past the class list, k = 0, ...).
    #[error("field `{field}`: {reason}")]
    Invalid {
        /// Dotted path of the field or argument.
        field: String,
        /// What is wrong with it, in this crate's words (never another error's message: that is
        /// [`Error::Unusable`]).
        reason: String,
    },
    /// A field whose values pass their own checks but that a computation of this crate refuses
    /// (PCA axes that cannot be plotted, ...); the cause is that computation's error.
    #[error("field `{field}`: {what}")]
    Unusable {
        /// Dotted path of the field.
        field: String,
        /// What cannot be done with it, e.g. "the first two axes cannot be plotted".
        what: String,
        /// The computation's error.
        #[source]
        source: Box<Error>,
    },

    // ---- training logs ----
    /// A line of a `metrics.jsonl` training log is not a record (see [`crate::curves::parse`]).
    #[error("training log line {line} {reason}")]
    TrainingLog {
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line, e.g. "is not valid JSON (column 7)".
        reason: String,
    },
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A [`Error::Shape`] for `field`.
    pub fn shape(field: impl Into<String>, expected: &[usize], found: &[usize]) -> Self {
        Self::Shape {
            field: field.into(),
            expected: expected.to_vec(),
            found: found.to_vec(),
        }
    }

    /// An [`Error::Invalid`] for `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The error that caused an [`Error`], whatever its type, shared so that [`Error`] stays `Clone`.
///
/// It displays as the error it holds and returns that error's causes from `source()`, so a chain
/// that runs through it reads as if the error were held directly. Two causes are equal when their
/// messages are: the types behind them (I/O, encoder errors) have no equality of their own.
#[derive(Debug, Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl Cause {
    /// Wraps `error`.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(error))
    }

    /// The error held, as its concrete type if it is a `T`.
    pub fn downcast_ref<T: std::error::Error + 'static>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

/// `err` and each of its causes, joined with `: `, for the places that show an error as one line
/// (a log message, a report, the viewer's error panel) rather than through anyhow's chain.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

/// Fails with [`Error::NonFinite`] naming `field` at the first NaN or infinity in `values`.
pub(crate) fn ensure_finite(field: &str, values: impl IntoIterator<Item = f32>) -> Result<()> {
    match values.into_iter().enumerate().find(|(_, v)| !v.is_finite()) {
        None => Ok(()),
        Some((index, v)) => Err(Error::NonFinite {
            field: field.to_owned(),
            index,
            value: v.to_string(),
        }),
    }
}
