//! The bundle's thumbnails: every gallery image as one tile of a single sprite sheet, encoded as
//! PNG or JPEG, within the format's 65535-pixel side.

use image::{ImageEncoder as _, RgbImage};
use mclr_shared::bundle::{ImageFormat, Thumbnails};

use super::too_many;
use crate::data::ImageSet;
use crate::error::{Error, Result};

/// JPEG quality of a JPEG sprite sheet.
const JPEG_QUALITY: u8 = 85;

/// One sprite sheet of every image as a `tile_px` tile (resized with a triangle filter when the
/// images are another size), ⌈√N⌉ columns, unused cells black, encoded as `format`.
pub(super) fn sprite_sheet(
    images: &ImageSet,
    tile_px: u32,
    format: ImageFormat,
) -> Result<Thumbnails> {
    let count = u32::try_from(images.len()).map_err(|_| too_many(images.len()))?;
    let columns = (1..=count.max(1))
        .find(|c| c.saturating_mul(*c) >= count)
        .unwrap_or(1);
    let rows = count.div_ceil(columns).max(1);
    let too_large = || Error::InvalidSetting {
        setting: "--tile-px",
        expected: "a sprite sheet of at most 65535 pixels per side".into(),
        found: format!("{tile_px} px tiles in {columns} columns and {rows} rows"),
    };
    let width = columns
        .checked_mul(tile_px)
        .filter(|&w| w <= 65_535)
        .ok_or_else(too_large)?;
    let height = rows
        .checked_mul(tile_px)
        .filter(|&h| h <= 65_535)
        .ok_or_else(too_large)?;
    let (h, w) = (
        u32::try_from(images.height()).map_err(|_| too_large())?,
        u32::try_from(images.width()).map_err(|_| too_large())?,
    );
    let mut sheet = RgbImage::new(width, height);
    for i in 0..count {
        let Some(pixels) = images.image(i as usize) else {
            continue;
        };
        let Some(image) = RgbImage::from_raw(w, h, pixels.to_vec()) else {
            continue;
        };
        let tile = if (w, h) == (tile_px, tile_px) {
            image
        } else {
            image::imageops::resize(
                &image,
                tile_px,
                tile_px,
                image::imageops::FilterType::Triangle,
            )
        };
        let (x, y) = (
            i64::from((i % columns) * tile_px),
            i64::from((i / columns) * tile_px),
        );
        image::imageops::replace(&mut sheet, &tile, x, y);
    }
    let mut encoded = Vec::new();
    let result = match format {
        ImageFormat::Png => image::codecs::png::PngEncoder::new_with_quality(
            &mut encoded,
            image::codecs::png::CompressionType::Best,
            image::codecs::png::FilterType::Adaptive,
        )
        .write_image(
            sheet.as_raw(),
            width,
            height,
            image::ExtendedColorType::Rgb8,
        ),
        ImageFormat::Jpeg => {
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut encoded, JPEG_QUALITY)
                .write_image(
                    sheet.as_raw(),
                    width,
                    height,
                    image::ExtendedColorType::Rgb8,
                )
        }
    };
    result.map_err(|source| Error::ImageEncode {
        what: format!(
            "the {width}×{height} thumbnail sheet as {}",
            match format {
                ImageFormat::Png => "PNG",
                ImageFormat::Jpeg => "JPEG",
            }
        ),
        source,
    })?;
    Ok(Thumbnails {
        format,
        tile_px,
        columns,
        count,
        sheet: encoded,
        sheet_file: None,
    })
}
