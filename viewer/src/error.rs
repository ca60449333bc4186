//! The viewer's one error type. Every variant reads as a sentence a person can act on, because it
//! is shown in the page's error panel.
//!
//! The page shows an error with its causes, [`mclr_shared::error_chain`] (`message: cause: its
//! cause`), so a variant's message says what the viewer was doing and its `source()` says why: the
//! cause is never also copied into the message. The one exception is [`ViewerError::Bundle`], whose
//! message *replaces* the shared error's technical words with plain ones (no hex dumps), and so
//! does not return it from `source()` either.

use mclr_shared::Error as SharedError;

/// Everything that can go wrong while loading a bundle or computing a view.
#[derive(Debug, thiserror::Error)]
pub enum ViewerError {
    /// The bundle file was read but is not a usable bundle. The message explains the shared error
    /// in plain words instead of chaining it (see the module docs).
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
    #[cfg(target_arch = "wasm32")]
    #[error("The WebGPU engine failed (reload the page with ?cpu=1 to use the CPU instead)")]
    Gpu(#[source] mclr_shared::gpu::GpuError),
    /// Objects of one engine were handed to the other: a bug, reported rather than a panic.
    #[error(
        "The WebGPU engine failed: objects of the CPU and GPU engines were mixed. Reload the page \
         with ?cpu=1 to use the CPU instead."
    )]
    EngineMismatch,
    /// A part of the bundle that a view needs (the prior, the encoder) could not be built when the
    /// bundle was loaded; the rest of the viewer works without it.
    #[error("The bundle's {part} cannot be used")]
    Unusable {
        /// Which part, e.g. "prior".
        part: &'static str,
        /// Why not.
        #[source]
        source: SharedError,
    },
    /// A computation on a loaded bundle failed (a shape or value the bundle's checks let through).
    #[error("Could not compute the view")]
    Compute(#[source] SharedError),
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
        SharedError::Read { source, .. } => format!(
            "the file could not be read ({})",
            mclr_shared::error_chain(source)
        ),
        other => format!(
            "its contents are invalid ({})",
            mclr_shared::error_chain(other)
        ),
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
    fn the_shown_chain_carries_the_cause_once() {
        use std::error::Error as _;
        let cause = SharedError::TrailingBytes { extra: 3 };
        let cause_text = cause.to_string();

        // A bundle error is put in plain words, not chained.
        let error = ViewerError::Bundle(cause.clone());
        assert!(error.source().is_none(), "{error:?}");
        assert!(error.to_string().contains("3 unexpected bytes"), "{error}");

        // A computation's error is the source: the message says what failed, the chain says why.
        let error = ViewerError::Compute(cause.clone());
        assert!(error.source().is_some(), "{error:?}");
        assert!(!error.to_string().contains(&cause_text), "{error}");
        let shown = mclr_shared::error_chain(&error);
        assert_eq!(shown, format!("Could not compute the view: {cause_text}"));

        let error = ViewerError::Unusable {
            part: "prior",
            source: cause,
        };
        let shown = mclr_shared::error_chain(&error);
        assert_eq!(shown.matches(&cause_text).count(), 1, "{shown}");
        assert!(
            shown.starts_with("The bundle's prior cannot be used: "),
            "{shown}"
        );
    }

    #[test]
    fn a_bundle_error_in_plain_words_keeps_its_causes() {
        // The plain words name the shared error's causes too: they would be lost if only the
        // shared error's own message were shown, since `Bundle` returns no source.
        let error = ViewerError::Bundle(SharedError::Read {
            section: "payload",
            source: mclr_shared::Cause::new(std::io::Error::other("connection reset")),
        });
        let message = error.to_string();
        assert!(message.contains("could not be read"), "{message}");
        assert_eq!(message.matches("connection reset").count(), 1, "{message}");

        let error = ViewerError::Bundle(SharedError::Unusable {
            field: "pca".to_owned(),
            what: "the first two axes cannot be plotted".to_owned(),
            source: Box::new(SharedError::invalid(
                "pca.components",
                "rows are not orthonormal",
            )),
        });
        let message = error.to_string();
        assert!(
            message.contains("the first two axes cannot be plotted"),
            "{message}"
        );
        assert_eq!(message.matches("not orthonormal").count(), 1, "{message}");
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
