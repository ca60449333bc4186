//! The payload decoder: bincode 2's standard wire format (little-endian, variable-length integers)
//! read field by field, with every length checked against the bytes actually left in the payload
//! *before* anything is allocated for it.
//!
//! [`super::encode`] writes payloads with bincode; this module reads the same bytes without it,
//! because bincode's own length check is a compile-time byte budget that counts each integer at its
//! full width, so it cannot be the payload length itself (and above 256 MiB it had no budget at
//! all). Here the budget *is* the payload: a length field of `len` elements is accepted only when
//! `len × (smallest wire size of one element)` bytes remain, so a forged length fails without
//! allocating, and a length that passes costs at most the bytes that back it. Element counts whose
//! in-memory size is much larger than their wire size (shapes, MLP layers, class names, metrics)
//! are also capped by [`super::limits`], which bounds peak memory to a small multiple of the input.
//!
//! The wire format, as bincode's standard configuration writes it:
//!
//! * unsigned integers are varints: a byte below 251 is the value; 251, 252 and 253 are followed by
//!   the value as `u16`, `u32` or `u64` little-endian (a width larger than the target type is an
//!   error, as in bincode);
//! * `f32` and `f64` are their 4 or 8 little-endian bytes;
//! * strings and byte blobs are a varint length, then the bytes; sequences and maps a varint count,
//!   then the elements;
//! * `Option` is a byte 0 (`None`) or 1 (`Some`, then the value); an enum a varint `u32` variant
//!   index; a struct its fields in declaration order.

use std::collections::BTreeMap;

use super::array::{ArrayBlob, DType};
use super::contents::{
    Bundle, Gallery, ImageFormat, LinearWeights, MlpWeights, OperatorStats, PcaBasis, RunMetadata,
    RunRecord, Thumbnails, TrainingLog,
};
use super::limits;
use crate::error::{Error, Result};

/// Decodes a payload of format `version` (1, 2 or 3) into the current [`Bundle`]. The whole payload
/// must be the bundle: bytes left over are [`Error::Malformed`].
pub(super) fn decode_bundle(version: u32, payload: &[u8]) -> Result<Bundle> {
    let mut wire = Wire {
        bytes: payload,
        pos: 0,
    };
    let with_scales = version >= 2;
    let v3 = version >= 3;
    let bundle = Bundle {
        metadata: wire.metadata()?,
        operators: wire.array("operators")?,
        prior: wire.mlp("prior", with_scales)?,
        encoder: wire.mlp("encoder", with_scales)?,
        gallery: wire.gallery()?,
        thumbnails: wire.thumbnails(v3)?,
        pca: wire.pca()?,
        stats: wire.stats()?,
        run: if v3 {
            wire.run()?
        } else {
            RunRecord::default()
        },
    };
    if wire.pos != payload.len() {
        return Err(Error::Malformed {
            reason: format!(
                "the bundle ends after {} of the payload's {} bytes",
                wire.pos,
                payload.len()
            ),
        });
    }
    Ok(bundle)
}

/// A read position in a payload.
struct Wire<'a> {
    /// The whole payload.
    bytes: &'a [u8],
    /// Bytes consumed so far.
    pos: usize,
}

impl<'a> Wire<'a> {
    /// Bytes not yet read.
    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    /// The next `len` bytes, if that many remain; nothing is allocated.
    fn take(&mut self, len: usize, field: &str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(len).filter(|&e| e <= self.bytes.len());
        let Some(slice) = end.and_then(|end| self.bytes.get(self.pos..end)) else {
            return Err(self.ended(field, len));
        };
        self.pos = self.pos.saturating_add(len);
        Ok(slice)
    }

    /// The next `N` bytes as an array.
    fn fixed<const N: usize>(&mut self, field: &str) -> Result<[u8; N]> {
        let slice = self.take(N, field)?;
        let mut out = [0_u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    /// [`Error::Malformed`]: `field` needs `len` bytes but fewer remain.
    fn ended(&self, field: &str, len: usize) -> Error {
        Error::Malformed {
            reason: format!(
                "the {} byte payload ends inside `{field}`: it needs {len} more bytes at offset {} \
                 but {} remain",
                self.bytes.len(),
                self.pos,
                self.remaining()
            ),
        }
    }

    fn u8(&mut self, field: &str) -> Result<u8> {
        Ok(self.fixed::<1>(field)?[0])
    }

    /// A varint of at most `max_width` bytes of value (2, 4 or 8).
    fn varint(&mut self, field: &str, max_width: usize) -> Result<u64> {
        let marker = self.u8(field)?;
        let (value, width) = match marker {
            0..=250 => (u64::from(marker), 1),
            251 => (u64::from(u16::from_le_bytes(self.fixed(field)?)), 2),
            252 => (u64::from(u32::from_le_bytes(self.fixed(field)?)), 4),
            253 => (u64::from_le_bytes(self.fixed(field)?), 8),
            other => {
                return Err(Error::Malformed {
                    reason: format!("`{field}`: invalid integer marker byte {other}"),
                });
            }
        };
        if width > max_width {
            return Err(Error::Malformed {
                reason: format!(
                    "`{field}`: a {width}-byte integer where at most {max_width} bytes fit"
                ),
            });
        }
        Ok(value)
    }

    fn u32(&mut self, field: &str) -> Result<u32> {
        let v = self.varint(field, 4)?;
        u32::try_from(v).map_err(|_| self.malformed(field, "integer overflows u32"))
    }

    fn u64(&mut self, field: &str) -> Result<u64> {
        self.varint(field, 8)
    }

    fn f32(&mut self, field: &str) -> Result<f32> {
        Ok(f32::from_le_bytes(self.fixed(field)?))
    }

    fn f64(&mut self, field: &str) -> Result<f64> {
        Ok(f64::from_le_bytes(self.fixed(field)?))
    }

    fn malformed(&self, field: &str, what: &str) -> Error {
        Error::Malformed {
            reason: format!("`{field}` at offset {}: {what}", self.pos),
        }
    }

    /// A count of elements, each at least `min_element_bytes` on the wire and at most `cap` in
    /// number: fails before anything is allocated if the remaining payload cannot hold that many,
    /// or if the count is over `cap`.
    fn count(&mut self, field: &str, min_element_bytes: usize, cap: usize) -> Result<usize> {
        let raw = self.u64(field)?;
        let len = usize::try_from(raw).unwrap_or(usize::MAX);
        let needed = len.saturating_mul(min_element_bytes);
        if needed > self.remaining() {
            return Err(Error::Malformed {
                reason: format!(
                    "`{field}` claims {raw} elements ({needed} bytes or more) but only {} of the \
                     {} byte payload remain",
                    self.remaining(),
                    self.bytes.len()
                ),
            });
        }
        if len > cap {
            return Err(Error::OverLimit {
                field: field.to_owned(),
                what: "length".to_owned(),
                found: raw,
                limit: super::len_u64(cap),
            });
        }
        Ok(len)
    }

    /// A length-prefixed byte blob, copied only once it is known to be present.
    fn blob(&mut self, field: &str, cap: usize) -> Result<Vec<u8>> {
        let len = self.count(field, 1, cap)?;
        Ok(self.take(len, field)?.to_vec())
    }

    /// A length-prefixed UTF-8 string of at most `cap` bytes.
    fn string(&mut self, field: &str, cap: usize) -> Result<String> {
        let len = self.count(field, 1, cap)?;
        let offset = self.pos;
        let bytes = self.take(len, field)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|source| Error::NotUtf8 {
                field: field.to_owned(),
                offset,
                source,
            })
    }

    /// An `Option` tag: `false` for `None`, `true` for `Some`.
    fn option_tag(&mut self, field: &str) -> Result<bool> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(self.malformed(field, &format!("option tag {other} is neither 0 nor 1"))),
        }
    }

    fn metadata(&mut self) -> Result<RunMetadata> {
        let dataset = self.string("metadata.dataset", limits::MAX_NAME_BYTES)?;
        let method = self.string("metadata.method", limits::MAX_NAME_BYTES)?;
        let config_toml = self.string("metadata.config_toml", limits::MAX_CONFIG_BYTES)?;
        let producer = self.string("metadata.producer", limits::MAX_NAME_BYTES)?;
        let epochs = self.u32("metadata.epochs")?;
        let steps = self.u64("metadata.steps")?;
        let threshold = self.f32("metadata.threshold")?;
        // Each entry is at least a 1-byte key length and an 8-byte value.
        let entries = self.count("metadata.metrics", 9, limits::MAX_METRICS)?;
        let mut metrics = BTreeMap::new();
        for _ in 0..entries {
            let name = self.string("metadata.metrics (name)", limits::MAX_NAME_BYTES)?;
            let value = self.f64("metadata.metrics (value)")?;
            metrics.insert(name, value);
        }
        Ok(RunMetadata {
            dataset,
            method,
            config_toml,
            producer,
            epochs,
            steps,
            threshold,
            metrics,
        })
    }

    fn array(&mut self, field: &str) -> Result<ArrayBlob> {
        let dtype = match self.u32(field)? {
            0 => DType::F32,
            1 => DType::F16,
            2 => DType::U16,
            3 => DType::U32,
            4 => DType::U8,
            5 => DType::I8,
            other => return Err(self.malformed(field, &format!("unknown dtype index {other}"))),
        };
        let rank = self.count(field, 1, limits::MAX_RANK)?;
        let mut shape = Vec::with_capacity(rank);
        for _ in 0..rank {
            shape.push(self.u64(field)?);
        }
        let data = self.blob(field, usize::MAX)?;
        Ok(ArrayBlob { dtype, shape, data })
    }

    fn linear(&mut self, field: &str, with_scale: bool) -> Result<LinearWeights> {
        let weight = self.array(field)?;
        let bias = self.array(field)?;
        let weight_scale = if with_scale && self.option_tag(field)? {
            Some(self.array(field)?)
        } else {
            None
        };
        Ok(LinearWeights {
            weight,
            bias,
            weight_scale,
        })
    }

    fn mlp(&mut self, name: &str, with_scales: bool) -> Result<MlpWeights> {
        let field = format!("{name}.trunk");
        // A layer is at least two arrays of three bytes each.
        let layers = self.count(&field, 6, limits::MAX_LAYERS)?;
        let mut trunk = Vec::with_capacity(layers);
        for i in 0..layers {
            trunk.push(self.linear(&format!("{name}.trunk[{i}]"), with_scales)?);
        }
        Ok(MlpWeights {
            trunk,
            scale_head: self.linear(&format!("{name}.scale_head"), with_scales)?,
            loc_head: self.linear(&format!("{name}.loc_head"), with_scales)?,
        })
    }

    fn gallery(&mut self) -> Result<Gallery> {
        let split = self.string("gallery.split", limits::MAX_NAME_BYTES)?;
        let features = self.array("gallery.features")?;
        let labels = self.array("gallery.labels")?;
        let classes = self.count("gallery.class_names", 1, limits::MAX_CLASSES)?;
        let mut class_names = Vec::with_capacity(classes);
        for _ in 0..classes {
            class_names.push(self.string("gallery.class_names", limits::MAX_CLASS_NAME_BYTES)?);
        }
        let source_indices = self.array("gallery.source_indices")?;
        Ok(Gallery {
            split,
            features,
            labels,
            class_names,
            source_indices,
        })
    }

    fn thumbnails(&mut self, with_file: bool) -> Result<Thumbnails> {
        let format = match self.u32("thumbnails.format")? {
            0 => ImageFormat::Png,
            1 => ImageFormat::Jpeg,
            other => {
                return Err(self.malformed(
                    "thumbnails.format",
                    &format!("unknown image format index {other}"),
                ));
            }
        };
        Ok(Thumbnails {
            format,
            tile_px: self.u32("thumbnails.tile_px")?,
            columns: self.u32("thumbnails.columns")?,
            count: self.u32("thumbnails.count")?,
            sheet: self.blob("thumbnails.sheet", usize::MAX)?,
            sheet_file: if with_file && self.option_tag("thumbnails.sheet_file")? {
                Some(self.string("thumbnails.sheet_file", limits::MAX_FILE_NAME_BYTES)?)
            } else {
                None
            },
        })
    }

    fn run(&mut self) -> Result<RunRecord> {
        let saved_unix_ms = self.u64("run.saved_unix_ms")?;
        let live = match self.u8("run.live")? {
            0 => false,
            1 => true,
            other => return Err(self.malformed("run.live", &format!("bool byte {other}"))),
        };
        // A log is at least its two length bytes.
        let logs = self.count("run.training_logs", 2, limits::MAX_TRAINING_LOGS)?;
        let mut training_logs = Vec::with_capacity(logs);
        for _ in 0..logs {
            training_logs.push(TrainingLog {
                label: self.string("run.training_logs (label)", limits::MAX_NAME_BYTES)?,
                jsonl: self.string("run.training_logs (jsonl)", limits::MAX_TRAINING_LOG_BYTES)?,
            });
        }
        Ok(RunRecord {
            saved_unix_ms,
            live,
            training_logs,
        })
    }

    fn pca(&mut self) -> Result<PcaBasis> {
        Ok(PcaBasis {
            mean: self.array("pca.mean")?,
            components: self.array("pca.components")?,
            explained_variance: self.array("pca.explained_variance")?,
        })
    }

    fn stats(&mut self) -> Result<OperatorStats> {
        Ok(OperatorStats {
            norms: self.array("stats.norms")?,
            usage: self.array("stats.usage")?,
            class_heatmap: self.array("stats.class_heatmap")?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn varints_read_as_bincode_writes_them() {
        for value in [
            0_u64,
            250,
            251,
            65_535,
            65_536,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let bytes = bincode::serde::encode_to_vec(value, super::super::WIRE_CONFIG).unwrap();
            let mut wire = Wire {
                bytes: &bytes,
                pos: 0,
            };
            assert_eq!(wire.u64("v").unwrap(), value);
            assert_eq!(wire.pos, bytes.len());
        }
    }

    #[test]
    fn a_count_larger_than_the_bytes_left_fails_before_allocating() {
        // 253 + u64: claims 2^40 elements; 3 bytes follow.
        let mut bytes = vec![253];
        bytes.extend_from_slice(&(1_u64 << 40).to_le_bytes());
        bytes.extend_from_slice(&[1, 2, 3]);
        let mut wire = Wire {
            bytes: &bytes,
            pos: 0,
        };
        let err = wire.count("x", 1, usize::MAX).unwrap_err();
        assert!(
            err.to_string().contains("claims 1099511627776 elements"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("only 3 of the 12 byte payload remain"),
            "{err}"
        );
    }
}
