//! The viewer's one error type. Every variant reads as a sentence a person can act on, because the
//! message is shown as-is in the page's error panel.
//!
//! The page shows an error as one string (`to_string()`), so each message is complete on its own:
//! a variant that wraps a [`SharedError`] puts the cause into its words (in plain terms for a
//! bundle, as-is for a computation) and does not also return it from `source()`, so that nothing
//! that walks the chain prints the cause twice.

use mclr_shared::Error as SharedError;

/// Everything that can go wrong while loading a bundle or computing a view.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ViewerError {
    /// The bundle file was read but is not a usable bundle.
    #[error("{}", describe_bundle_error(.0))]
    Bundle(SharedError),
    /// The bundle could not be downloaded.
    #[error("Could not download the bundle from {url}: {reason}.")]
    Fetch {
        /// The address that was asked for (shown as text, never as HTML).
        url: String,
        /// What went wrong, e.g. "the server answered 404 Not Found".
        reason: String,
    },
    /// A dropped or picked file could not be read.
    #[error("Could not read the file {name}: {reason}.")]
    File {
        /// The file's name.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// The download is bigger than the viewer accepts.
    #[error("The bundle is {size_mib:.0} MiB, more than the {limit_mib:.0} MiB this viewer opens.")]
    TooLarge {
        /// Size of the download (or what the server announced), in MiB.
        size_mib: f64,
        /// The viewer's limit, in MiB.
        limit_mib: f64,
    },
    /// The browser refused something the viewer needs (a canvas, an image decoder, ...).
    #[error("The browser could not {action}: {reason}.")]
    Browser {
        /// What the viewer tried to do, e.g. "decode the thumbnails".
        action: String,
        /// The browser's explanation.
        reason: String,
    },
    /// The GPU engine failed (device lost, out of memory, a limit exceeded).
    #[error("The WebGPU engine failed: {0}. Reload the page with ?cpu=1 to use the CPU instead.")]
    Gpu(String),
    /// A computation on a loaded bundle failed (a shape or value the bundle's checks let through).
    #[error("Could not compute the view: {0}.")]
    Compute(SharedError),
}

impl From<SharedError> for ViewerError {
    fn from(error: SharedError) -> Self {
        Self::Compute(error)
    }
}

/// Result with [`ViewerError`].
pub type Result<T, E = ViewerError> = std::result::Result<T, E>;

/// The plain-words explanation of why a bundle file cannot be opened.
fn describe_bundle_error(error: &SharedError) -> String {
    let detail = match error {
        SharedError::BadMagic { .. } => {
            "this is not an mclr bundle (a .mclr file starts with a fixed signature, and this one \
             does not)"
                .to_owned()
        }
        SharedError::UnsupportedVersion { found, supported } => format!(
            "it was written in format version {found}, and this viewer reads version {supported}; \
             open it with a newer viewer"
        ),
        SharedError::Truncated { expected, got, .. } => {
            format!("the file is incomplete ({got} of {expected} bytes); download it again")
        }
        SharedError::TrailingBytes { extra } => {
            format!("the file has {extra} unexpected bytes after its end")
        }
        SharedError::ChecksumMismatch { .. } => {
            "the file is corrupted (its checksum does not match); download it again".to_owned()
        }
        SharedError::TooLarge { len, limit, .. } => format!(
            "it is {:.0} MiB, more than the {:.0} MiB this viewer opens",
            mib(*len),
            mib(*limit)
        ),
        SharedError::OverLimit {
            field,
            what,
            found,
            limit,
        } => format!("its {field} has {what} {found}, more than the {limit} this viewer can open"),
        other => format!("its contents are invalid ({other})"),
    };
    format!("This bundle cannot be opened: {detail}.")
}

/// Bytes to MiB, for messages.
pub(crate) fn mib(bytes: u64) -> f64 {
    // Precision loss above 2^53 bytes does not matter for a message.
    #[allow(clippy::cast_precision_loss)]
    let bytes = bytes as f64;
    bytes / f64::from(1u32 << 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_magic_is_explained_without_hex_dumps() {
        let message = ViewerError::Bundle(SharedError::BadMagic {
            found: [0; 8],
            expected: mclr_shared::bundle::MAGIC,
        })
        .to_string();
        assert!(message.contains("not an mclr bundle"), "{message}");
        assert!(!message.contains("0x"), "{message}");
    }

    #[test]
    fn messages_carry_their_cause_and_no_chain_repeats_it() {
        use std::error::Error as _;
        let cause = SharedError::TrailingBytes { extra: 3 };
        for error in [
            ViewerError::Bundle(cause.clone()),
            ViewerError::Compute(cause.clone()),
        ] {
            assert!(error.source().is_none(), "{error:?}");
            assert!(error.to_string().contains('3'), "{error}");
        }
    }

    #[test]
    fn decoding_garbage_gives_a_plain_words_message() {
        let error = mclr_shared::bundle::decode(b"<html>not found</html> padding padding")
            .map_err(ViewerError::Bundle)
            .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("This bundle cannot be opened:")
        );
    }
}
