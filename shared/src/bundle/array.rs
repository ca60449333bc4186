//! [`ArrayBlob`]: an n-dimensional array stored as its dtype, its shape and its raw
//! little-endian bytes, so that reading one is a copy rather than a decode loop.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, ensure_finite};

/// Element type of an [`ArrayBlob`].
///
/// The variant order is part of the wire format (bincode writes the index): append new variants at
/// the end, never reorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DType {
    /// IEEE 754 binary32.
    F32,
    /// IEEE 754 binary16 (`half::f16`): halves the size of gallery features.
    F16,
    /// Unsigned 16-bit integer (class labels).
    U16,
    /// Unsigned 32-bit integer (dataset indices).
    U32,
    /// Unsigned byte.
    U8,
    /// Signed byte: int8-quantised weights (format v2), with a per-row f32 scale beside them.
    I8,
}

impl DType {
    /// Bytes per element.
    pub const fn size_bytes(self) -> usize {
        match self {
            Self::F32 | Self::U32 => 4,
            Self::F16 | Self::U16 => 2,
            Self::U8 | Self::I8 => 1,
        }
    }

    /// Whether the elements are floating point (and so must be checked for NaN and infinity).
    pub const fn is_float(self) -> bool {
        matches!(self, Self::F32 | Self::F16)
    }

    /// The lowercase name used in messages, e.g. `f32`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::U16 => "u16",
            Self::U32 => "u32",
            Self::U8 => "u8",
            Self::I8 => "i8",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One dimension of the shape a field requires, for [`ArrayBlob::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    /// Any size; the name (e.g. `"N"`) is used in messages.
    Any(&'static str),
    /// Exactly this size.
    Is(usize),
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any(name) => f.write_str(name),
            Self::Is(n) => write!(f, "{n}"),
        }
    }
}

/// An n-dimensional array as it travels in a bundle: element type, shape (row-major, outermost
/// first) and the elements' little-endian bytes.
///
/// The fields are public because this is a wire type; nothing here guarantees that they agree.
/// [`ArrayBlob::check`] (called by [`super::validate`] for every array of a bundle) does, and the
/// constructors only build arrays that pass it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArrayBlob {
    /// Element type.
    pub dtype: DType,
    /// Extent of each dimension, outermost first.
    pub shape: Vec<u64>,
    /// Elements in row-major order, each `dtype.size_bytes()` little-endian bytes.
    #[serde(
        serialize_with = "serde_bytes::serialize",
        deserialize_with = "raw_bytes::deserialize"
    )]
    pub data: Vec<u8>,
}

impl ArrayBlob {
    /// An `f32` array of `shape` holding `values` (row-major).
    pub fn from_f32(shape: &[usize], values: &[f32]) -> Result<Self> {
        Self::from_elements(DType::F32, shape, values, |v| v.to_le_bytes())
    }

    /// An `f16` array of `shape` holding `values` rounded to the nearest `f16` (values beyond
    /// ±65504 become infinite, which [`ArrayBlob::check_finite`] then rejects).
    pub fn from_f16_lossy(shape: &[usize], values: &[f32]) -> Result<Self> {
        Self::from_elements(DType::F16, shape, values, |v| {
            half::f16::from_f32(*v).to_le_bytes()
        })
    }

    /// A `u16` array of `shape` holding `values`.
    pub fn from_u16(shape: &[usize], values: &[u16]) -> Result<Self> {
        Self::from_elements(DType::U16, shape, values, |v| v.to_le_bytes())
    }

    /// A `u32` array of `shape` holding `values`.
    pub fn from_u32(shape: &[usize], values: &[u32]) -> Result<Self> {
        Self::from_elements(DType::U32, shape, values, |v| v.to_le_bytes())
    }

    /// An `i8` array of `shape` holding `values` (quantised weights).
    pub fn from_i8(shape: &[usize], values: &[i8]) -> Result<Self> {
        Self::from_elements(DType::I8, shape, values, |v| v.to_le_bytes())
    }

    /// Shared body of the constructors: checks that `shape` holds `values.len()` elements.
    fn from_elements<T, const W: usize>(
        dtype: DType,
        shape: &[usize],
        values: &[T],
        to_bytes: impl Fn(&T) -> [u8; W],
    ) -> Result<Self> {
        let numel = shape
            .iter()
            .try_fold(1_usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| overflow("ArrayBlob", shape))?;
        if numel != values.len() {
            return Err(Error::invalid(
                "ArrayBlob",
                format!(
                    "shape {shape:?} holds {numel} elements but {} were given",
                    values.len()
                ),
            ));
        }
        Ok(Self {
            dtype,
            shape: shape.iter().map(|&d| super::len_u64(d)).collect(),
            data: values.iter().flat_map(to_bytes).collect(),
        })
    }

    /// The shape as `usize`s; fails if a dimension does not fit this platform's `usize`.
    pub fn shape_usize(&self) -> Result<Vec<usize>> {
        self.shape_for("array")
    }

    /// Number of elements (the product of the shape; 1 for a rank-0 array). Fails instead of
    /// overflowing when the product does not fit a `usize`.
    pub fn numel(&self) -> Result<usize> {
        numel_of("array", &self.shape_for("array")?)
    }

    /// The elements as `f32`; accepts [`DType::F32`] and [`DType::F16`] (widened exactly).
    pub fn to_f32_vec(&self) -> Result<Vec<f32>> {
        match self.dtype {
            DType::F32 => {
                self.check_bytes("array")?;
                Ok(le_values(&self.data, f32::from_le_bytes).collect())
            }
            DType::F16 => {
                self.check_bytes("array")?;
                Ok(le_values(&self.data, half::f16::from_le_bytes)
                    .map(half::f16::to_f32)
                    .collect())
            }
            other => Err(dtype_error("array", &[DType::F32, DType::F16], other)),
        }
    }

    /// The elements of a [`DType::U16`] array.
    pub fn to_u16_vec(&self) -> Result<Vec<u16>> {
        match self.dtype {
            DType::U16 => {
                self.check_bytes("array")?;
                Ok(le_values(&self.data, u16::from_le_bytes).collect())
            }
            other => Err(dtype_error("array", &[DType::U16], other)),
        }
    }

    /// The elements of a [`DType::U32`] array.
    pub fn to_u32_vec(&self) -> Result<Vec<u32>> {
        match self.dtype {
            DType::U32 => {
                self.check_bytes("array")?;
                Ok(le_values(&self.data, u32::from_le_bytes).collect())
            }
            other => Err(dtype_error("array", &[DType::U32], other)),
        }
    }

    /// The elements of a [`DType::I8`] array.
    pub fn to_i8_vec(&self) -> Result<Vec<i8>> {
        match self.dtype {
            DType::I8 => {
                self.check_bytes("array")?;
                Ok(le_values(&self.data, i8::from_le_bytes).collect())
            }
            other => Err(dtype_error("array", &[DType::I8], other)),
        }
    }

    /// Checks that the array at `field` (a dotted path used in errors, e.g. `gallery.features`)
    /// has one of `dtypes`, a shape matching `expected`, and exactly as many bytes as they imply.
    /// Returns the shape.
    ///
    /// Fails with [`Error::DType`], [`Error::Invalid`] (wrong rank, or a shape too large to
    /// address), [`Error::Shape`] (a wildcard is reported as the size found) or
    /// [`Error::ByteLength`].
    pub fn check(&self, field: &str, dtypes: &[DType], expected: &[Dim]) -> Result<Vec<usize>> {
        if !dtypes.contains(&self.dtype) {
            return Err(dtype_error(field, dtypes, self.dtype));
        }
        let shape = self.shape_for(field)?;
        if shape.len() != expected.len() {
            let pattern: Vec<String> = expected.iter().map(Dim::to_string).collect();
            return Err(Error::invalid(
                field,
                format!(
                    "expected a rank-{} array of shape ({}), found shape {shape:?}",
                    expected.len(),
                    pattern.join(", ")
                ),
            ));
        }
        let mismatch = shape.iter().zip(expected).any(|(&found, dim)| match dim {
            Dim::Any(_) => false,
            Dim::Is(n) => found != *n,
        });
        if mismatch {
            let wanted: Vec<usize> = shape
                .iter()
                .zip(expected)
                .map(|(&found, dim)| match dim {
                    Dim::Any(_) => found,
                    Dim::Is(n) => *n,
                })
                .collect();
            return Err(Error::shape(field, &wanted, &shape));
        }
        self.check_bytes(field)?;
        Ok(shape)
    }

    /// Fails with [`Error::NonFinite`] naming `field` and the flat index of the first NaN or
    /// infinity. `f16` values are checked after widening; integer arrays always pass.
    pub fn check_finite(&self, field: &str) -> Result<()> {
        match self.dtype {
            DType::F32 => ensure_finite(field, le_values(&self.data, f32::from_le_bytes)),
            DType::F16 => ensure_finite(
                field,
                le_values(&self.data, half::f16::from_le_bytes).map(half::f16::to_f32),
            ),
            DType::U16 | DType::U32 | DType::U8 | DType::I8 => Ok(()),
        }
    }

    /// The shape as `usize`s, naming `field` on failure.
    fn shape_for(&self, field: &str) -> Result<Vec<usize>> {
        self.shape
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| overflow(field, &self.shape)))
            .collect()
    }

    /// Checks that the byte length is exactly numel × element size.
    fn check_bytes(&self, field: &str) -> Result<()> {
        let shape = self.shape_for(field)?;
        let expected = numel_of(field, &shape)?
            .checked_mul(self.dtype.size_bytes())
            .ok_or_else(|| overflow(field, &shape))?;
        if self.data.len() != expected {
            return Err(Error::ByteLength {
                field: field.to_owned(),
                dtype: self.dtype.to_string(),
                shape,
                expected: super::len_u64(expected),
                found: super::len_u64(self.data.len()),
            });
        }
        Ok(())
    }
}

/// The product of `shape`, or an error naming `field` if it overflows `usize`.
fn numel_of(field: &str, shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1_usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| overflow(field, shape))
}

/// The elements of `data` decoded `W` bytes at a time (a trailing partial element is ignored;
/// callers check the byte length first).
fn le_values<T, const W: usize>(
    data: &[u8],
    from_le: impl Fn([u8; W]) -> T,
) -> impl Iterator<Item = T> {
    data.chunks_exact(W).map(move |chunk| {
        let mut bytes = [0_u8; W];
        bytes.copy_from_slice(chunk);
        from_le(bytes)
    })
}

/// [`Error::Invalid`] for a shape whose element count does not fit a `usize`.
fn overflow<T: fmt::Debug>(field: &str, shape: &[T]) -> Error {
    Error::invalid(
        field,
        format!("shape {shape:?} has more elements than this platform can address"),
    )
}

/// [`Error::DType`] for `found` where one of `allowed` is required.
fn dtype_error(field: &str, allowed: &[DType], found: DType) -> Error {
    let names: Vec<&str> = allowed.iter().map(|d| d.name()).collect();
    Error::DType {
        field: field.to_owned(),
        expected: names.join(" or "),
        found: found.to_string(),
    }
}

/// Deserialisation of byte blobs that never allocates more than the input holds.
///
/// `serde_bytes` asks for an owned buffer (`deserialize_byte_buf`), for which bincode allocates
/// the length announced in the input *before* reading it: with no limit a corrupt length of
/// 2^40 is an attempt to allocate a terabyte. Asking for `deserialize_bytes` instead makes
/// bincode's slice decoder hand out a borrowed slice of the input, which it only does once the
/// bytes are known to be present; the copy is then exactly as large as the data. The wire format
/// is the same as `serde_bytes` (a length, then the bytes), which serialises these fields.
pub(crate) mod raw_bytes {
    use std::fmt;

    use serde::Deserializer;
    use serde::de::{SeqAccess, Visitor};

    /// Deserialises a byte blob written by `serde_bytes::serialize`.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        deserializer.deserialize_bytes(BytesVisitor)
    }

    /// Accepts a byte blob in whichever form the format offers it.
    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a byte array")
        }

        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            // Trust a self-describing format's length hint only as far as 1 MiB.
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
            while let Some(byte) = seq.next_element::<u8>()? {
                out.push(byte);
            }
            Ok(out)
        }
    }
}
