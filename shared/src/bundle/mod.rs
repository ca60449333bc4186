//! The versioned `.mclr` bundle: everything the viewer needs from one training run, in one file.
//!
//! # Container
//!
//! A bundle file is a fixed 24-byte header followed by the payload:
//!
//! | offset | size | field                                                        |
//! |-------:|-----:|--------------------------------------------------------------|
//! |      0 |    8 | [`MAGIC`] `89 4D 43 4C 52 0D 0A 1A` (`\x89MCLR\r\n\x1a`)     |
//! |      8 |    4 | format version, `u32` little-endian ([`FORMAT_VERSION`])     |
//! |     12 |    8 | payload length in bytes, `u64` little-endian                 |
//! |     20 |    4 | CRC-32 (IEEE, as `crc32fast` computes it) of the payload     |
//! |     24 |    … | payload: bincode 2 ([`WIRE_CONFIG`]) of a [`Bundle`]         |
//!
//! The magic is PNG-style: the high byte catches 7-bit channels, `\r\n` and `\x1a` catch text-mode
//! line-ending conversion, so a mangled file fails at byte 0 instead of deep in the payload. The
//! payload is the fields of [`Bundle`] in declaration order, each array a dtype, a shape and a raw
//! little-endian byte blob ([`ArrayBlob`]), so decoding is a copy rather than a loop per element.
//!
//! # Decoding is bounded and checked, in this order
//!
//! [`decode_with_limit`] checks the magic, the header length, the version, the payload length
//! against the caller's limit (before allocating anything), that exactly that many bytes follow,
//! the CRC, then decodes the payload field by field (`wire.rs`), checking every length inside it
//! (strings, arrays, byte blobs, lists, maps) against the bytes actually left in the payload before
//! allocating for it, so the decoder's budget is the payload itself and never more. Counts whose
//! elements are small on the wire but large in memory are also capped ([`limits`]). It rejects
//! bytes left over inside the payload, and finally runs [`validate`]: every shape agrees with
//! every other and lies within [`limits`], every float is finite, every label names a class. Each
//! failure is a typed [`Error`] that names the field at fault. Peak memory while decoding and
//! validating is at most about twice the input plus a constant (the fuzz targets assert it).
//!
//! # Versions
//!
//! The payload of the current version (3) is the current [`Bundle`]. Version 2 is the same layout
//! without `thumbnails.sheet_file` and the trailing [`RunRecord`] (training curves, the time of
//! writing, the live flag); version 1 (f32-only MLP weights, no `weight_scale`) is version 2
//! without the `Option` of each layer's scale. The decoder reads each as such
//! (`wire::decode_bundle` takes the version) and fills what an old file lacks with empty values. Decoding dispatches on
//! the header's version with one `match` (see `decode_payload`). When the format changes:
//!
//! 1. teach `wire.rs` the new layout, keyed on the version, keeping the old one readable,
//! 2. change the current types, bump [`FORMAT_VERSION`] and widen [`SUPPORTED_VERSIONS`],
//! 3. add the version to the arm of `decode_payload` and upgrade the old contents to the new,
//! 4. commit a golden fixture of the new version next to the old one (`shared/tests/golden/`), so
//!    the test suite keeps proving that files written by every released version still open.
//!
//! Encoding always writes [`FORMAT_VERSION`].
//!
//! # Example
//!
//! ```
//! use mclr_shared::bundle::{self, synthetic::{synthetic_bundle, SyntheticSpec}};
//!
//! let original = synthetic_bundle(&SyntheticSpec::default())?;
//! let bytes = bundle::encode(&original)?;
//! let decoded = bundle::decode(&bytes)?;
//! assert_eq!(decoded, original);
//! assert_eq!(decoded.num_operators(), 4);
//! # Ok::<(), mclr_shared::Error>(())
//! ```

mod array;
mod contents;
mod header;
pub mod limits;
#[cfg(feature = "test-util")]
mod png;
#[cfg(feature = "test-util")]
pub mod synthetic;
mod validate;
mod weights;
mod wire;

use std::io::Read;
use std::ops::RangeInclusive;

pub use array::{ArrayBlob, DType, Dim};
pub use contents::{
    Bundle, COMPARE_PREFIX, Gallery, ImageFormat, LinearWeights, MlpWeights, OperatorStats,
    PcaBasis, RunMetadata, RunRecord, Thumbnails, TrainingLog,
};
pub use validate::{check_sheet, validate};
pub use weights::WeightPrecision;

use crate::error::{Cause, Error, Result};
use header::Header;

/// The first eight bytes of every bundle: `\x89MCLR\r\n\x1a`.
pub const MAGIC: [u8; 8] = [0x89, b'M', b'C', b'L', b'R', b'\r', b'\n', 0x1a];

/// The format version [`encode`] writes.
pub const FORMAT_VERSION: u32 = 3;

/// The format versions [`decode`] reads. Widen it when a new version adds an upgrade path.
pub const SUPPORTED_VERSIONS: RangeInclusive<u32> = 1..=FORMAT_VERSION;

/// Size of the fixed header that precedes the payload, in bytes.
pub const HEADER_LEN: usize = 24;

/// Largest payload [`decode`] accepts (256 MiB); use [`decode_with_limit`] to allow more or less.
/// [`encode`] refuses to write a payload over this size, so every file it writes opens with
/// [`decode`].
pub const DEFAULT_MAX_PAYLOAD_BYTES: u64 = 256 << 20;

/// The bincode configuration of the payload: little-endian, variable-length integers. Public so
/// that tools (and the tests) can compute where each section of a payload starts by encoding the
/// fields of a [`Bundle`] one by one. [`encode`] writes with it; decoding reads the same bytes with
/// its own bounded reader (see the module docs).
pub const WIRE_CONFIG: bincode::config::Configuration = bincode::config::standard();

/// Serialises `bundle` into a complete `.mclr` file (header and payload).
///
/// The bundle is [`validate`]d first: an invalid bundle is refused rather than written, because
/// nothing could open it. A payload over [`DEFAULT_MAX_PAYLOAD_BYTES`] is refused with
/// [`Error::TooLarge`] for the same reason.
pub fn encode(bundle: &Bundle) -> Result<Vec<u8>> {
    validate(bundle)?;
    let payload =
        bincode::serde::encode_to_vec(bundle, WIRE_CONFIG).map_err(|e| Error::Encode {
            source: Cause::new(e),
        })?;
    let payload_len = u64::try_from(payload.len()).unwrap_or(u64::MAX);
    if payload_len > DEFAULT_MAX_PAYLOAD_BYTES {
        return Err(Error::TooLarge {
            what: "payload".to_owned(),
            len: payload_len,
            limit: DEFAULT_MAX_PAYLOAD_BYTES,
        });
    }
    let header = Header {
        version: FORMAT_VERSION,
        payload_len,
        crc: crc32fast::hash(&payload),
    };
    let mut file = Vec::with_capacity(HEADER_LEN.saturating_add(payload.len()));
    file.extend_from_slice(&header.to_bytes());
    file.extend_from_slice(&payload);
    Ok(file)
}

/// Reads a complete `.mclr` file whose payload is at most [`DEFAULT_MAX_PAYLOAD_BYTES`].
pub fn decode(bytes: &[u8]) -> Result<Bundle> {
    decode_with_limit(bytes, DEFAULT_MAX_PAYLOAD_BYTES)
}

/// Reads a complete `.mclr` file, refusing payloads over `max_payload_bytes` before allocating for
/// them. `bytes` must hold exactly one bundle: anything after the payload is
/// [`Error::TrailingBytes`]. The result has passed [`validate`].
pub fn decode_with_limit(bytes: &[u8], max_payload_bytes: u64) -> Result<Bundle> {
    let header = Header::parse(bytes)?;
    check_payload_limit(&header, max_payload_bytes)?;
    let body = bytes.get(HEADER_LEN..).unwrap_or_default();
    let available = len_u64(body.len());
    if available < header.payload_len {
        return Err(Error::Truncated {
            section: "payload",
            expected: header.payload_len,
            got: available,
        });
    }
    if available > header.payload_len {
        return Err(Error::TrailingBytes {
            extra: available - header.payload_len,
        });
    }
    decode_checked_payload(&header, body)
}

/// Reads one bundle from a stream: the header, then exactly the payload length it announces (at
/// most `max_payload_bytes`, checked before reading), leaving `reader` just after the bundle.
/// Memory grows with the bytes actually read, so a header that lies about the length costs
/// nothing. An early end of input is [`Error::Truncated`]; any other I/O failure is
/// [`Error::Read`], with the I/O error as its source.
pub fn decode_reader(mut reader: impl Read, max_payload_bytes: u64) -> Result<Bundle> {
    let mut header_bytes = [0_u8; HEADER_LEN];
    let got = read_up_to(&mut reader, &mut header_bytes)?;
    let header = Header::parse(header_bytes.get(..got).unwrap_or_default())?;
    check_payload_limit(&header, max_payload_bytes)?;

    let mut payload = Vec::new();
    reader
        .take(header.payload_len)
        .read_to_end(&mut payload)
        .map_err(|e| read_error("payload", e))?;
    let got = len_u64(payload.len());
    if got < header.payload_len {
        return Err(Error::Truncated {
            section: "payload",
            expected: header.payload_len,
            got,
        });
    }
    decode_checked_payload(&header, &payload)
}

/// Fails with [`Error::TooLarge`] if the header announces more than `max_payload_bytes`, or more
/// than this platform can address.
fn check_payload_limit(header: &Header, max_payload_bytes: u64) -> Result<()> {
    let limit = max_payload_bytes.min(len_u64(usize::MAX));
    if header.payload_len > limit {
        return Err(Error::TooLarge {
            what: "payload".to_owned(),
            len: header.payload_len,
            limit,
        });
    }
    Ok(())
}

/// Checks the CRC of a payload of exactly the announced length, decodes and validates it.
fn decode_checked_payload(header: &Header, payload: &[u8]) -> Result<Bundle> {
    let found = crc32fast::hash(payload);
    if found != header.crc {
        return Err(Error::ChecksumMismatch {
            expected: header.crc,
            found,
        });
    }
    let bundle = decode_payload(header.version, payload)?;
    validate(&bundle)?;
    Ok(bundle)
}

/// Decodes a payload of format `version` into the current [`Bundle`]. This is the one place that
/// knows about versions (see the module docs): v1, v2 and v3 share the decoder, which reads v1's
/// layers without a scale, and v1/v2 without the sheet's file name and the run record.
fn decode_payload(version: u32, payload: &[u8]) -> Result<Bundle> {
    match version {
        1..=3 => wire::decode_bundle(version, payload),
        found => Err(header::unsupported_version(found)),
    }
}

/// Fills as much of `buf` as `reader` provides, retrying on interruption; returns the count.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..) {
        if rest.is_empty() {
            break;
        }
        match reader.read(rest) {
            Ok(0) => break,
            Ok(n) => filled = filled.saturating_add(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_error("header", e)),
        }
    }
    Ok(filled)
}

/// An I/O failure while reading `section`, as an [`Error::Read`].
fn read_error(section: &'static str, e: std::io::Error) -> Error {
    Error::Read {
        section,
        source: Cause::new(e),
    }
}

/// `len` as `u64` (lossless on every supported platform; saturates otherwise).
fn len_u64(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}
