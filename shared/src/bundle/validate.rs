//! [`validate`]: the invariants every decoded (and every encoded) bundle satisfies, so that the
//! viewer can index arrays without checking them again.

use super::array::{ArrayBlob, DType, Dim};
use super::contents::{
    Bundle, Gallery, ImageFormat, LinearWeights, MlpWeights, OperatorStats, PcaBasis, RunMetadata,
    RunRecord, Thumbnails,
};
use super::limits;
use crate::error::{Error, Result};

/// The eight bytes every PNG starts with.
pub(crate) const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// Largest magnitude of an i8 code (-128), by which a row's scale is multiplied.
const I8_CODE_MAX: f32 = 128.0;

/// A JPEG's start-of-image marker followed by the first byte of the next marker.
const JPEG_SOI: [u8; 3] = [0xff, 0xd8, 0xff];

/// Sizes that every section must agree on, read from the operators and the gallery.
struct Dims {
    /// M: number of operators.
    operators: usize,
    /// d = K·n: feature dimension.
    features: usize,
    /// N: gallery size.
    gallery: usize,
    /// C: number of classes.
    classes: usize,
}

/// Checks that every section of `bundle` is consistent: dtypes, shapes and byte lengths agree
/// with M, K, n, N and C; every float is finite; every label names a class; the thumbnails cover
/// the gallery. The first problem found is returned as an [`Error`] naming its field by dotted
/// path (e.g. `prior.trunk[1].weight`).
pub fn validate(bundle: &Bundle) -> Result<()> {
    check_metadata(&bundle.metadata)?;
    let (operators, features) = check_operators(&bundle.operators)?;
    let input = features
        .checked_mul(2)
        .ok_or_else(|| Error::invalid("operators", "feature dimension overflows"))?;
    check_mlp("prior", &bundle.prior, features, operators)?;
    check_mlp("encoder", &bundle.encoder, input, operators)?;
    let (gallery, classes) = check_gallery(&bundle.gallery, features)?;
    let dims = Dims {
        operators,
        features,
        gallery,
        classes,
    };
    check_thumbnails(&bundle.thumbnails, &dims)?;
    check_pca(&bundle.pca, &dims)?;
    check_stats(&bundle.stats, &dims)?;
    check_run(&bundle.run)
}

/// Strings within their caps, threshold finite and ≥ 0, metrics finite.
fn check_metadata(metadata: &RunMetadata) -> Result<()> {
    check_len(
        "metadata.dataset",
        &metadata.dataset,
        limits::MAX_NAME_BYTES,
    )?;
    check_len("metadata.method", &metadata.method, limits::MAX_NAME_BYTES)?;
    check_len(
        "metadata.producer",
        &metadata.producer,
        limits::MAX_NAME_BYTES,
    )?;
    check_len(
        "metadata.config_toml",
        &metadata.config_toml,
        limits::MAX_CONFIG_BYTES,
    )?;
    check_cap(
        "metadata.metrics",
        "metrics",
        metadata.metrics.len(),
        limits::MAX_METRICS,
    )?;
    for name in metadata.metrics.keys() {
        check_len("metadata.metrics", name, limits::MAX_NAME_BYTES)?;
    }
    let threshold = metadata.threshold;
    if !threshold.is_finite() {
        return Err(Error::NonFinite {
            field: "metadata.threshold".to_owned(),
            index: 0,
            value: threshold.to_string(),
        });
    }
    if threshold < 0.0 {
        return Err(Error::invalid(
            "metadata.threshold",
            format!("the soft threshold must be >= 0, found {threshold}"),
        ));
    }
    for (name, value) in &metadata.metrics {
        if !value.is_finite() {
            return Err(Error::NonFinite {
                field: format!("metadata.metrics[{name:?}]"),
                index: 0,
                value: value.to_string(),
            });
        }
    }
    Ok(())
}

/// Ψ is (M, K, n, n) f32 with every dimension ≥ 1; returns (M, d = K·n).
fn check_operators(operators: &ArrayBlob) -> Result<(usize, usize)> {
    let field = "operators";
    let shape = operators.check(
        field,
        &[DType::F32],
        &[Dim::Any("M"), Dim::Any("K"), Dim::Any("n"), Dim::Any("n")],
    )?;
    let &[m, k, n, n2] = shape.as_slice() else {
        return Err(Error::invalid(field, "expected a rank-4 array"));
    };
    if n != n2 {
        return Err(Error::shape(field, &[m, k, n, n], &shape));
    }
    if shape.contains(&0) {
        return Err(Error::invalid(
            field,
            format!("every dimension of (M, K, n, n) must be at least 1, found {shape:?}"),
        ));
    }
    check_cap(field, "operators M", m, limits::MAX_OPERATORS)?;
    check_cap(field, "blocks K", k, limits::MAX_BLOCKS)?;
    check_cap(field, "block size n", n, limits::MAX_BLOCK_SIZE)?;
    let features = k
        .checked_mul(n)
        .ok_or_else(|| Error::invalid(field, "K·n overflows"))?;
    check_cap(
        field,
        "feature dimension d = K·n",
        features,
        limits::MAX_FEATURE_DIM,
    )?;
    let elements = m.saturating_mul(k).saturating_mul(n).saturating_mul(n);
    check_cap(
        field,
        "coefficients M·K·n²",
        elements,
        limits::MAX_OPERATOR_ELEMENTS,
    )?;
    operators.check_finite(field)?;
    Ok((m, features))
}

/// A trunk of ≥ 1 layers from `input` features, then two heads of `outputs` from its last layer.
fn check_mlp(name: &str, mlp: &MlpWeights, input: usize, outputs: usize) -> Result<()> {
    check_cap(
        &format!("{name}.trunk"),
        "layers",
        mlp.trunk.len(),
        limits::MAX_LAYERS,
    )?;
    if mlp.trunk.is_empty() {
        return Err(Error::invalid(
            format!("{name}.trunk"),
            "needs at least one layer",
        ));
    }
    let mut width = input;
    for (i, layer) in mlp.trunk.iter().enumerate() {
        width = check_linear(&format!("{name}.trunk[{i}]"), layer, width, None)?;
    }
    check_linear(
        &format!("{name}.scale_head"),
        &mlp.scale_head,
        width,
        Some(outputs),
    )?;
    check_linear(
        &format!("{name}.loc_head"),
        &mlp.loc_head,
        width,
        Some(outputs),
    )?;
    Ok(())
}

/// Weight (out, `input`) as f32, f16, or i8 with a per-row scale (out) that is finite and ≥ 0;
/// bias (out) f32; all finite, with out ≥ 1 (or exactly `outputs`). Returns out.
fn check_linear(
    field: &str,
    layer: &LinearWeights,
    input: usize,
    outputs: Option<usize>,
) -> Result<usize> {
    let weight_field = format!("{field}.weight");
    let out_dim = outputs.map_or(Dim::Any("out"), Dim::Is);
    let shape = layer.weight.check(
        &weight_field,
        &[DType::F32, DType::F16, DType::I8],
        &[out_dim, Dim::Is(input)],
    )?;
    let out = shape.first().copied().unwrap_or(0);
    if out == 0 {
        return Err(Error::invalid(
            weight_field,
            "a layer needs at least one output",
        ));
    }
    layer.weight.check_finite(&weight_field)?;
    check_weight_scale(field, layer, out)?;
    let bias_field = format!("{field}.bias");
    layer
        .bias
        .check(&bias_field, &[DType::F32], &[Dim::Is(out)])?;
    layer.bias.check_finite(&bias_field)?;
    Ok(out)
}

/// An i8 weight has a scale of shape (out), f32, finite and ≥ 0; other weights have none.
fn check_weight_scale(field: &str, layer: &LinearWeights, out: usize) -> Result<()> {
    let scale_field = format!("{field}.weight_scale");
    match (&layer.weight_scale, layer.weight.dtype) {
        (None, DType::I8) => Err(Error::invalid(
            scale_field,
            "an i8 weight needs its per-row scale",
        )),
        (None, _) => Ok(()),
        (Some(_), dtype) if dtype != DType::I8 => Err(Error::invalid(
            scale_field,
            format!("only i8 weights carry a scale, this weight is {dtype}"),
        )),
        (Some(scale), _) => {
            scale.check(&scale_field, &[DType::F32], &[Dim::Is(out)])?;
            scale.check_finite(&scale_field)?;
            let values = scale.to_f32_vec()?;
            if let Some(i) = values.iter().position(|&s| s < 0.0) {
                return Err(Error::invalid(
                    scale_field,
                    format!("row {i} has a negative scale"),
                ));
            }
            // Codes reach ±127 (and -128): a scale whose product with 128 is not finite would
            // dequantise to infinity.
            if let Some((i, s)) = values
                .iter()
                .enumerate()
                .find(|&(_, &s)| !(s * I8_CODE_MAX).is_finite())
            {
                return Err(Error::invalid(
                    scale_field,
                    format!("row {i} has scale {s}, which dequantises to infinity"),
                ));
            }
            Ok(())
        }
    }
}

/// Features (N, d) with N ≥ 1, labels and indices (N), labels below C ≥ 1; returns (N, C).
fn check_gallery(gallery: &Gallery, features: usize) -> Result<(usize, usize)> {
    let shape = gallery.features.check(
        "gallery.features",
        &[DType::F16, DType::F32],
        &[Dim::Any("N"), Dim::Is(features)],
    )?;
    let n = shape.first().copied().unwrap_or(0);
    if n == 0 {
        return Err(Error::invalid(
            "gallery.features",
            "the gallery needs at least one image",
        ));
    }
    check_cap("gallery.features", "gallery rows N", n, limits::MAX_GALLERY)?;
    check_len("gallery.split", &gallery.split, limits::MAX_NAME_BYTES)?;
    gallery.features.check_finite("gallery.features")?;

    let classes = gallery.class_names.len();
    if classes == 0 {
        return Err(Error::invalid(
            "gallery.class_names",
            "needs at least one class",
        ));
    }
    check_cap(
        "gallery.class_names",
        "classes C",
        classes,
        limits::MAX_CLASSES,
    )?;
    for (i, name) in gallery.class_names.iter().enumerate() {
        check_len(
            &format!("gallery.class_names[{i}]"),
            name,
            limits::MAX_CLASS_NAME_BYTES,
        )?;
    }
    gallery
        .labels
        .check("gallery.labels", &[DType::U16], &[Dim::Is(n)])?;
    let labels = gallery.labels.to_u16_vec()?;
    if let Some((index, label)) = labels
        .iter()
        .enumerate()
        .find(|&(_, &label)| usize::from(label) >= classes)
    {
        return Err(Error::invalid(
            "gallery.labels",
            format!("label {label} at index {index} is not below the number of classes {classes}"),
        ));
    }
    gallery
        .source_indices
        .check("gallery.source_indices", &[DType::U32], &[Dim::Is(n)])?;
    Ok((n, classes))
}

/// One tile per gallery image, non-zero geometry, and a sheet that is an image of the declared
/// format large enough to hold every tile.
fn check_thumbnails(thumbnails: &Thumbnails, dims: &Dims) -> Result<()> {
    let count = usize::try_from(thumbnails.count).unwrap_or(usize::MAX);
    if count != dims.gallery {
        return Err(Error::invalid(
            "thumbnails.count",
            format!(
                "is {} but the gallery has {} images",
                thumbnails.count, dims.gallery
            ),
        ));
    }
    if thumbnails.tile_px == 0 {
        return Err(Error::invalid("thumbnails.tile_px", "must be at least 1"));
    }
    if thumbnails.columns == 0 {
        return Err(Error::invalid("thumbnails.columns", "must be at least 1"));
    }
    match &thumbnails.sheet_file {
        None => check_sheet(thumbnails, &thumbnails.sheet),
        Some(name) => {
            check_file_name("thumbnails.sheet_file", name)?;
            if thumbnails.sheet.is_empty() {
                Ok(())
            } else {
                Err(Error::invalid(
                    "thumbnails.sheet",
                    "must be empty when `sheet_file` names the sheet",
                ))
            }
        }
    }
}

/// Checks a thumbnail sheet against the geometry `thumbnails` declares: an image of the declared
/// format, within [`limits::MAX_SHEET_PIXELS`], large enough to hold every tile. [`validate`]
/// runs it on an embedded sheet; a reader runs it on a sheet it fetched from
/// [`Thumbnails::sheet_file`], before decoding the image.
pub fn check_sheet(thumbnails: &Thumbnails, sheet: &[u8]) -> Result<()> {
    let (format_name, size) = match thumbnails.format {
        ImageFormat::Png if sheet.starts_with(&PNG_SIGNATURE) => ("PNG", png_dimensions(sheet)),
        ImageFormat::Jpeg if sheet.starts_with(&JPEG_SOI) => ("JPEG", jpeg_dimensions(sheet)),
        format => {
            return Err(Error::invalid(
                "thumbnails.sheet",
                format!("does not start with the {format:?} signature"),
            ));
        }
    };
    let Some((width, height)) = size else {
        return Err(Error::invalid(
            "thumbnails.sheet",
            format!("{format_name} image has no readable dimensions"),
        ));
    };
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits::MAX_SHEET_PIXELS {
        return Err(Error::invalid(
            "thumbnails.sheet",
            format!(
                "{format_name} image is {width}x{height} = {pixels} pixels, over the limit of {} \
                 pixels",
                limits::MAX_SHEET_PIXELS
            ),
        ));
    }
    // Tiles that exist must lie inside the sheet: min(columns, count) wide, ceil(count/columns)
    // high. In u64 these cannot overflow (u32 × u32).
    let tile = u64::from(thumbnails.tile_px);
    let columns = u64::from(thumbnails.columns.min(thumbnails.count));
    let rows = u64::from(thumbnails.count.div_ceil(thumbnails.columns));
    let (need_w, need_h) = (columns * tile, rows * tile);
    if u64::from(width) < need_w || u64::from(height) < need_h {
        return Err(Error::invalid(
            "thumbnails.sheet",
            format!(
                "is {width}x{height} pixels but {} tiles of {tile} px in {} columns need \
                 {need_w}x{need_h}",
                thumbnails.count, thumbnails.columns
            ),
        ));
    }
    Ok(())
}

/// Width and height from a PNG's IHDR chunk, which must come first.
fn png_dimensions(png: &[u8]) -> Option<(u32, u32)> {
    let ihdr = png.get(PNG_SIGNATURE.len()..)?;
    let (_length, rest) = ihdr.split_first_chunk::<4>()?;
    let (kind, rest) = rest.split_first_chunk::<4>()?;
    if kind != b"IHDR" {
        return None;
    }
    let (width, rest) = rest.split_first_chunk::<4>()?;
    let height = rest.first_chunk::<4>()?;
    Some((u32::from_be_bytes(*width), u32::from_be_bytes(*height)))
}

/// Width and height from a JPEG's first start-of-frame segment (any `SOFn`), found by walking the
/// marker segments that precede it.
fn jpeg_dimensions(jpeg: &[u8]) -> Option<(u32, u32)> {
    let mut rest = jpeg.get(2..)?; // after SOI
    loop {
        // A marker is one or more 0xFF fill bytes, then the marker code.
        let start = rest.iter().position(|&b| b != 0xff)?;
        if start == 0 {
            return None;
        }
        let (&marker, after) = rest.get(start..)?.split_first()?;
        match marker {
            // Standalone markers carry no length.
            0x01 | 0xd0..=0xd7 => rest = after,
            // End of image, or start of scan before any frame header: no dimensions.
            0xd9 | 0xda => return None,
            _ => {
                let (length, segment) = after.split_first_chunk::<2>()?;
                let length = usize::from(u16::from_be_bytes(*length));
                let body = segment.get(..length.checked_sub(2)?)?;
                let is_frame =
                    matches!(marker, 0xc0..=0xcf) && !matches!(marker, 0xc4 | 0xc8 | 0xcc);
                if is_frame {
                    // precision (1), height (2), width (2)
                    let (_precision, dims) = body.split_first()?;
                    let (height, dims) = dims.split_first_chunk::<2>()?;
                    let width = dims.first_chunk::<2>()?;
                    return Some((
                        u32::from(u16::from_be_bytes(*width)),
                        u32::from(u16::from_be_bytes(*height)),
                    ));
                }
                rest = segment.get(body.len()..)?;
            }
        }
    }
}

/// Mean (d), components (P, d) with P ≥ 2, explained variance (P); all f32 and finite.
fn check_pca(pca: &PcaBasis, dims: &Dims) -> Result<()> {
    let d = dims.features;
    pca.mean.check("pca.mean", &[DType::F32], &[Dim::Is(d)])?;
    pca.mean.check_finite("pca.mean")?;
    let shape = pca.components.check(
        "pca.components",
        &[DType::F32],
        &[Dim::Any("P"), Dim::Is(d)],
    )?;
    let p = shape.first().copied().unwrap_or(0);
    if p < 2 {
        return Err(Error::invalid(
            "pca.components",
            format!("needs at least 2 components to plot, found {p}"),
        ));
    }
    if p > d {
        return Err(Error::invalid(
            "pca.components",
            format!("has {p} components but the features only have {d} dimensions"),
        ));
    }
    pca.components.check_finite("pca.components")?;
    pca.explained_variance
        .check("pca.explained_variance", &[DType::F32], &[Dim::Is(p)])?;
    pca.explained_variance
        .check_finite("pca.explained_variance")?;
    // The viewer plots the first two axes with `Pca::from_parts`: the same checks here (variance
    // ≥ 0 and descending, axes orthonormal), so that a bundle that validates also opens.
    let variance = pca.explained_variance.to_f32_vec()?;
    let mut components = pca.components.to_f32_vec()?;
    components.truncate(d.saturating_mul(2));
    crate::geometry::Pca::from_parts(
        pca.mean.to_f32_vec()?,
        components,
        variance.get(..2).unwrap_or_default().to_vec(),
        d,
    )
    .map_err(|e| Error::Unusable {
        field: "pca".to_owned(),
        what: "the first two axes cannot be plotted".to_owned(),
        source: Box::new(e),
    })?;
    if let Some(i) = variance.iter().position(|&v| v < 0.0) {
        return Err(Error::invalid(
            "pca.explained_variance",
            format!(
                "variance {i} is negative ({})",
                variance.get(i).copied().unwrap_or(0.0)
            ),
        ));
    }
    if let Some(i) = variance.windows(2).position(|w| w.first() < w.get(1)) {
        return Err(Error::invalid(
            "pca.explained_variance",
            format!("not descending at index {}", i + 1),
        ));
    }
    Ok(())
}

/// Norms (M) ≥ 0, usage (M) in [0, 1], class heatmap (C, M); all f32 and finite.
fn check_stats(stats: &OperatorStats, dims: &Dims) -> Result<()> {
    let m = dims.operators;
    stats
        .norms
        .check("stats.norms", &[DType::F32], &[Dim::Is(m)])?;
    stats.norms.check_finite("stats.norms")?;
    if let Some((index, norm)) = first_outside(&stats.norms, 0.0, f32::INFINITY)? {
        return Err(Error::invalid(
            "stats.norms",
            format!("norm {norm} at index {index} is negative"),
        ));
    }
    stats
        .usage
        .check("stats.usage", &[DType::F32], &[Dim::Is(m)])?;
    stats.usage.check_finite("stats.usage")?;
    if let Some((index, usage)) = first_outside(&stats.usage, 0.0, 1.0)? {
        return Err(Error::invalid(
            "stats.usage",
            format!("usage {usage} at index {index} is outside [0, 1]"),
        ));
    }
    stats.class_heatmap.check(
        "stats.class_heatmap",
        &[DType::F32],
        &[Dim::Is(dims.classes), Dim::Is(m)],
    )?;
    stats.class_heatmap.check_finite("stats.class_heatmap")
}

/// The first element of a checked f32 array outside `[lo, hi]`, with its index.
fn first_outside(array: &ArrayBlob, lo: f32, hi: f32) -> Result<Option<(usize, f32)>> {
    Ok(array
        .to_f32_vec()?
        .into_iter()
        .enumerate()
        .find(|&(_, v)| !(lo..=hi).contains(&v)))
}

/// Fails with [`Error::OverLimit`] naming `field` when `count` (of `what`) exceeds `cap`.
fn check_cap(field: &str, what: &str, count: usize, cap: usize) -> Result<()> {
    if count > cap {
        return Err(Error::OverLimit {
            field: field.to_owned(),
            what: what.to_owned(),
            found: super::len_u64(count),
            limit: super::len_u64(cap),
        });
    }
    Ok(())
}

/// Fails with [`Error::OverLimit`] naming `field` when `text` is longer than `cap` bytes.
fn check_len(field: &str, text: &str, cap: usize) -> Result<()> {
    check_cap(field, "bytes", text.len(), cap)
}

/// A name a reader can resolve beside the bundle without leaving its folder: 1 to
/// [`limits::MAX_FILE_NAME_BYTES`] bytes of ASCII letters, digits, `.`, `_` and `-`, not
/// starting with a dot.
fn check_file_name(field: &str, name: &str) -> Result<()> {
    check_len(field, name, limits::MAX_FILE_NAME_BYTES)?;
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if name.is_empty() || name.starts_with('.') || !plain {
        return Err(Error::invalid(
            field,
            "must be a plain file name (letters, digits, `.`, `_`, `-`; not starting with `.`)",
        ));
    }
    Ok(())
}

/// Labels within [`limits::MAX_NAME_BYTES`], at most [`limits::MAX_TRAINING_LOGS`] logs, each
/// within [`limits::MAX_TRAINING_LOG_BYTES`].
fn check_run(run: &RunRecord) -> Result<()> {
    if run.training_logs.len() > limits::MAX_TRAINING_LOGS {
        return Err(Error::invalid(
            "run.training_logs",
            format!(
                "has {} logs, over the limit of {}",
                run.training_logs.len(),
                limits::MAX_TRAINING_LOGS
            ),
        ));
    }
    for log in &run.training_logs {
        check_len(
            "run.training_logs (label)",
            &log.label,
            limits::MAX_NAME_BYTES,
        )?;
        check_len(
            "run.training_logs (jsonl)",
            &log.jsonl,
            limits::MAX_TRAINING_LOG_BYTES,
        )?;
    }
    Ok(())
}
