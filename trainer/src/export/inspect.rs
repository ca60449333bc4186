//! Reading a bundle file back (regular files only, bounded, checksummed and validated) and the
//! summary `mclr inspect` prints, with every string from the bundle escaped so that a crafted
//! file cannot drive the terminal.

use std::fmt::Write as _;
use std::path::Path;

use mclr_shared::bundle::{self, Bundle, FORMAT_VERSION, MlpWeights};

use crate::error::{Error, Result};

/// A bundle read from a file, with what the file says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleFile {
    /// The decoded (and, for older versions, upgraded) contents.
    pub bundle: Bundle,
    /// The format version in the file's header (the contents are always the current version).
    pub format_version: u32,
    /// Size of the file in bytes.
    pub len: u64,
}

/// Reads and decodes the bundle file at `path` (bounded by
/// [`DEFAULT_MAX_PAYLOAD_BYTES`](bundle::DEFAULT_MAX_PAYLOAD_BYTES), checksummed and validated).
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; [`Error::Bundle`] with the typed reason if it is not
/// a valid bundle (bad magic, unsupported version, truncation, checksum, shapes, …).
pub fn read_bundle(path: &Path) -> Result<BundleFile> {
    use std::io::Read as _;
    // Only a regular file is read: a FIFO (whose opening alone blocks until a writer appears), a
    // device (/dev/zero never ends) or a directory is refused before opening, and checked again
    // on the opened handle in case the path was swapped; a file that grows while it is read is
    // cut at the limit below.
    let not_regular = || {
        Error::io(
            "reading",
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file (a bundle is read from a plain file, not a pipe, device or \
                 directory)",
            ),
        )
    };
    let before = std::fs::metadata(path).map_err(|source| Error::io("reading", path, source))?;
    if !before.is_file() {
        return Err(not_regular());
    }
    let file = std::fs::File::open(path).map_err(|source| Error::io("reading", path, source))?;
    let opened = file
        .metadata()
        .map_err(|source| Error::io("reading", path, source))?;
    if !opened.is_file() {
        return Err(not_regular());
    }
    let limit = bundle::DEFAULT_MAX_PAYLOAD_BYTES.saturating_add(bundle::HEADER_LEN as u64);
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| Error::io("reading", path, source))?;
    let len = bytes.len() as u64;
    if len > limit {
        return Err(mclr_shared::Error::TooLarge {
            what: "file".to_owned(),
            len,
            limit,
        }
        .into());
    }
    let bundle = bundle::decode(&bytes)?;
    // The header was checked by `decode`, so bytes 8..12 are its version.
    let format_version = bytes
        .get(8..12)
        .and_then(|v| <[u8; 4]>::try_from(v).ok())
        .map_or(FORMAT_VERSION, u32::from_le_bytes);
    Ok(BundleFile {
        bundle,
        format_version,
        len: bytes.len() as u64,
    })
}

/// A readable multi-line summary of a bundle file, as `mclr inspect` prints it: format version
/// and size, section sizes, run metadata, shapes, gallery, thumbnails, PCA, the operators by norm
/// with their usage, and the metrics.
pub fn summarise(file: &BundleFile) -> String {
    let bundle = &file.bundle;
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored on purpose.
    let mib = |bytes: usize| bytes as f64 / (1024.0 * 1024.0);
    let meta = &bundle.metadata;
    let _ = writeln!(
        out,
        "mclr bundle, format v{}, {} bytes ({:.2} MiB)",
        file.format_version,
        file.len,
        file.len as f64 / (1024.0 * 1024.0)
    );
    let _ = writeln!(
        out,
        "run:        {} on {}, {} epochs ({} steps), threshold ζ = {}",
        escape(&meta.method),
        escape(&meta.dataset),
        meta.epochs,
        meta.steps,
        meta.threshold
    );
    let _ = writeln!(out, "producer:   {}", escape(&meta.producer));
    let (m, k, n, d) = (
        bundle.num_operators(),
        bundle.blocks(),
        bundle.block_size(),
        bundle.feature_dim(),
    );
    let _ = writeln!(
        out,
        "operators:  M = {m}, K = {k} blocks of n = {n}, d = {d}"
    );
    let mlp_bytes = MlpWeights::stored_bytes;
    let widths = |w: &MlpWeights| -> String {
        w.trunk
            .iter()
            .map(|l| l.weight.shape.first().copied().unwrap_or(0).to_string())
            .collect::<Vec<_>>()
            .join("→")
    };
    let _ = writeln!(
        out,
        "networks:   {} weights; prior trunk {} ({:.2} MiB), encoder trunk {} ({:.2} MiB)",
        bundle
            .prior
            .trunk
            .first()
            .map_or("?", |l| l.weight.dtype.name()),
        widths(&bundle.prior),
        mib(mlp_bytes(&bundle.prior)),
        widths(&bundle.encoder),
        mib(mlp_bytes(&bundle.encoder)),
    );
    let gallery = &bundle.gallery;
    let _ = writeln!(
        out,
        "gallery:    N = {} {} images, {} features ({:.2} MiB), {} classes: {}",
        bundle.num_gallery(),
        escape(&gallery.split),
        gallery.features.dtype,
        mib(gallery.features.data.len()),
        bundle.num_classes(),
        gallery
            .class_names
            .iter()
            .map(|name| escape(name))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let thumbs = &bundle.thumbnails;
    let rows = thumbs.count.div_ceil(thumbs.columns.max(1));
    let _ = writeln!(
        out,
        "thumbnails: {} tiles of {} px, {} × {} tiles ({} × {} px), {:?} {:.2} MiB",
        thumbs.count,
        thumbs.tile_px,
        thumbs.columns,
        rows,
        u64::from(thumbs.columns) * u64::from(thumbs.tile_px),
        u64::from(rows) * u64::from(thumbs.tile_px),
        thumbs.format,
        mib(thumbs.sheet.len())
    );
    if let Some(name) = &thumbs.sheet_file {
        let _ = writeln!(
            out,
            "            sheet stored beside the bundle as {}",
            escape(name)
        );
    }
    let record = &bundle.run;
    let logs: Vec<String> = record
        .training_logs
        .iter()
        .map(|log| match mclr_shared::curves::parse(&log.jsonl) {
            Ok(curves) => format!(
                "{} ({} records to step {})",
                escape(&log.label),
                curves.records,
                curves
                    .last_step
                    .map_or_else(|| "-".to_owned(), |s| s.to_string())
            ),
            Err(e) => format!("{} (unreadable: {e})", escape(&log.label)),
        })
        .collect();
    let _ = writeln!(
        out,
        "record:     {}, model saved at {} (Unix ms), training logs: {}",
        if record.live {
            "live snapshot"
        } else {
            "exported"
        },
        record.saved_unix_ms,
        if logs.is_empty() {
            "none".to_owned()
        } else {
            logs.join(", ")
        }
    );
    let variance = bundle
        .pca
        .explained_variance
        .to_f32_vec()
        .unwrap_or_default();
    let listed: Vec<String> = variance.iter().map(|v| format!("{v:.4}")).collect();
    let _ = writeln!(
        out,
        "pca:        {} components, explained variance {}",
        variance.len(),
        listed.join(", ")
    );
    let norms = bundle.stats.norms.to_f32_vec().unwrap_or_default();
    let usage = bundle.stats.usage.to_f32_vec().unwrap_or_default();
    let mut order: Vec<usize> = (0..norms.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (norms.get(a).copied(), norms.get(b).copied());
        y.unwrap_or(0.0).total_cmp(&x.unwrap_or(0.0))
    });
    let _ = writeln!(out, "top operators by norm:");
    for &i in order.iter().take(10) {
        let _ = writeln!(
            out,
            "  Ψ_{i:<4} norm {:>10.4}  usage {:>5.1}%",
            norms.get(i).copied().unwrap_or(0.0),
            100.0 * usage.get(i).copied().unwrap_or(0.0)
        );
    }
    if meta.metrics.is_empty() {
        let _ = writeln!(out, "metrics:    none");
    } else {
        let _ = writeln!(out, "metrics:");
        for (name, value) in &meta.metrics {
            let _ = writeln!(out, "  {} = {value}", escape(name));
        }
    }
    out
}

/// `text` safe to print to a terminal: control characters (C0, DEL, C1: the escape sequences that
/// clear the screen, set the window title or write the clipboard) and the Unicode bidirectional
/// overrides and isolates are written as `\u{…}`, and a backslash as `\\`, so that the output
/// shows what the bundle holds without acting on it. Other text, non-ASCII included, is kept.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || bidi {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    out
}
