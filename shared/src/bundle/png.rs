//! A minimal PNG encoder for synthetic sprite sheets: 8-bit RGB, no filtering, and a zlib stream
//! of *stored* (uncompressed) deflate blocks. Files are larger than a real encoder's but every
//! decoder reads them, and the code is small enough to check by eye. Real runs write sheets with
//! a proper image encoder in the trainer.

use crate::error::{Error, Result};

use super::validate::PNG_SIGNATURE as SIGNATURE;

/// Largest payload of one stored deflate block.
const STORED_BLOCK_MAX: usize = 65_535;

/// IDAT chunks are cut at this size (any size is valid; smaller chunks keep each CRC local).
const IDAT_CHUNK_MAX: usize = 1 << 20;

/// Encodes `rgb` (row-major, 3 bytes per pixel, `width × height` pixels) as a PNG.
pub(crate) fn encode_rgb8(width: u32, height: u32, rgb: &[u8]) -> Result<Vec<u8>> {
    if width == 0 || height == 0 {
        return Err(Error::invalid(
            "png",
            format!("a PNG needs at least one pixel, got {width}x{height}"),
        ));
    }
    let row_bytes = usize::try_from(width)
        .ok()
        .and_then(|w| w.checked_mul(3))
        .ok_or_else(|| Error::invalid("png", "image too wide"))?;
    let expected = usize::try_from(height)
        .ok()
        .and_then(|h| h.checked_mul(row_bytes))
        .ok_or_else(|| Error::invalid("png", "image too large"))?;
    if rgb.len() != expected {
        return Err(Error::invalid(
            "png",
            format!(
                "{width}x{height} RGB needs {expected} bytes, got {}",
                rgb.len()
            ),
        ));
    }

    // Each scanline is a filter-type byte (0: none) followed by the row's pixels.
    let mut scanlines = Vec::with_capacity(expected.saturating_add(rgb.len() / row_bytes));
    for row in rgb.chunks_exact(row_bytes) {
        scanlines.push(0);
        scanlines.extend_from_slice(row);
    }
    let zlib = zlib_stored(&scanlines)?;

    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    // bit depth 8, colour type 2 (RGB), compression 0, filter 0, no interlace
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);

    let mut png = Vec::with_capacity(zlib.len().saturating_add(128));
    png.extend_from_slice(&SIGNATURE);
    write_chunk(&mut png, *b"IHDR", &ihdr)?;
    for idat in zlib.chunks(IDAT_CHUNK_MAX) {
        write_chunk(&mut png, *b"IDAT", idat)?;
    }
    write_chunk(&mut png, *b"IEND", &[])?;
    Ok(png)
}

/// A zlib stream (RFC 1950) holding `data` in stored deflate blocks (RFC 1951 §3.2.4).
fn zlib_stored(data: &[u8]) -> Result<Vec<u8>> {
    let blocks = data.len().div_ceil(STORED_BLOCK_MAX).max(1);
    let mut out = Vec::with_capacity(data.len().saturating_add(blocks * 5 + 6));
    // CMF 0x78: deflate, 32 KiB window; FLG 0x01: no dictionary, fastest; 0x7801 % 31 == 0.
    out.extend_from_slice(&[0x78, 0x01]);
    let mut chunks = data.chunks(STORED_BLOCK_MAX).peekable();
    if chunks.peek().is_none() {
        // An empty stream is one final, empty stored block.
        out.extend_from_slice(&[0x01, 0x00, 0x00, 0xff, 0xff]);
    }
    while let Some(block) = chunks.next() {
        let last = chunks.peek().is_none();
        let len = u16::try_from(block.len())
            .map_err(|_| Error::invalid("png", "stored block over 65535 bytes"))?;
        // BFINAL in bit 0, BTYPE = 00 (stored); the rest of the byte is padding.
        out.push(u8::from(last));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    Ok(out)
}

/// The Adler-32 checksum zlib appends to its stream.
pub(crate) fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    // 5552 is the largest run for which the sums cannot overflow a u32 before reduction.
    let (mut a, mut b) = (1_u32, 0_u32);
    for run in data.chunks(5552) {
        for &byte in run {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// Appends one PNG chunk: length, type, data, CRC-32 of type and data.
fn write_chunk(png: &mut Vec<u8>, kind: [u8; 4], data: &[u8]) -> Result<()> {
    let len = u32::try_from(data.len())
        .ok()
        .filter(|&l| l < 1 << 31)
        .ok_or_else(|| Error::invalid("png", "chunk over 2^31 bytes"))?;
    png.extend_from_slice(&len.to_be_bytes());
    png.extend_from_slice(&kind);
    png.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&kind);
    crc.update(data);
    png.extend_from_slice(&crc.finalize().to_be_bytes());
    Ok(())
}
