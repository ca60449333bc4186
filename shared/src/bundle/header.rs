//! The fixed 24-byte header that precedes a bundle's payload.

use super::{HEADER_LEN, MAGIC, SUPPORTED_VERSIONS};
use crate::error::{Error, Result};

/// The header fields after the magic, as read from or written to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    /// Format version of the payload.
    pub(super) version: u32,
    /// Payload length in bytes.
    pub(super) payload_len: u64,
    /// CRC-32 of the payload.
    pub(super) crc: u32,
}

impl Header {
    /// The header as it appears on disk.
    pub(super) fn to_bytes(self) -> [u8; HEADER_LEN] {
        let (version, payload_len, crc) = (
            self.version.to_le_bytes(),
            self.payload_len.to_le_bytes(),
            self.crc.to_le_bytes(),
        );
        let mut out = [0_u8; HEADER_LEN];
        let fields = MAGIC.iter().chain(&version).chain(&payload_len).chain(&crc);
        for (slot, byte) in out.iter_mut().zip(fields) {
            *slot = *byte;
        }
        out
    }

    /// Parses the start of a file: checks the magic (so that a file that is not a bundle is named
    /// as such even when it is shorter than the header), the header's length and the version.
    /// The payload is not looked at.
    pub(super) fn parse(bytes: &[u8]) -> Result<Self> {
        let Some((magic, rest)) = bytes.split_first_chunk::<8>() else {
            return Err(if MAGIC.starts_with(bytes) {
                truncated_header(bytes.len())
            } else {
                let mut found = [0_u8; 8];
                for (slot, byte) in found.iter_mut().zip(bytes) {
                    *slot = *byte;
                }
                Error::BadMagic {
                    found,
                    expected: MAGIC,
                }
            });
        };
        if *magic != MAGIC {
            return Err(Error::BadMagic {
                found: *magic,
                expected: MAGIC,
            });
        }
        let (Some((version, rest)), true) =
            (rest.split_first_chunk::<4>(), bytes.len() >= HEADER_LEN)
        else {
            return Err(truncated_header(bytes.len()));
        };
        let version = u32::from_le_bytes(*version);
        if !SUPPORTED_VERSIONS.contains(&version) {
            return Err(unsupported_version(version));
        }
        let Some((payload_len, rest)) = rest.split_first_chunk::<8>() else {
            return Err(truncated_header(bytes.len()));
        };
        let Some(crc) = rest.first_chunk::<4>() else {
            return Err(truncated_header(bytes.len()));
        };
        Ok(Self {
            version,
            payload_len: u64::from_le_bytes(*payload_len),
            crc: u32::from_le_bytes(*crc),
        })
    }
}

/// [`Error::Truncated`] for a file of `got` bytes that ends inside the header.
fn truncated_header(got: usize) -> Error {
    Error::Truncated {
        section: "header",
        expected: super::len_u64(HEADER_LEN),
        got: super::len_u64(got),
    }
}

/// [`Error::UnsupportedVersion`] for `found`, listing what this build reads.
pub(super) fn unsupported_version(found: u32) -> Error {
    let (first, last) = (SUPPORTED_VERSIONS.start(), SUPPORTED_VERSIONS.end());
    let supported = if first == last {
        first.to_string()
    } else {
        format!("{first}..={last}")
    };
    Error::UnsupportedVersion { found, supported }
}
