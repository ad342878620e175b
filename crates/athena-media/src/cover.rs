//! Uploaded cover images → bounded decode → 400 px wide lossy WebP.

use std::io::Cursor;

use image::{imageops::FilterType, DynamicImage, ImageDecoder, ImageError, ImageReader};

use crate::{encode, MediaError};

/// Width of every stored cover thumbnail.
pub const COVER_WIDTH: u32 = 400;
/// Tallest stored cover; taller images are cropped (top part kept, where titles usually are).
pub const COVER_MAX_HEIGHT: u32 = 1200;

/// Bounds applied to every decoded image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaLimits {
    /// Largest encoded input accepted, in bytes.
    pub max_input_bytes: u64,
    /// Largest `width × height` accepted, checked from the header before decoding.
    pub max_pixels: u64,
    /// Most memory the decoder may allocate, in bytes (passed to `image::Limits`).
    pub max_alloc_bytes: u64,
}

impl Default for MediaLimits {
    fn default() -> Self {
        MediaLimits {
            max_input_bytes: 50 * 1024 * 1024,
            max_pixels: 50_000_000,
            // 50 MP of RGBA is 200 MB; allow that plus decoder scratch space, no more.
            max_alloc_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Decodes a cover (JPEG, PNG, GIF, WebP or BMP) and re-encodes it as a lossy WebP (quality 80)
/// 400 px wide. Smaller images keep their size (no upscaling). Images taller than three times
/// their width are cropped from the top so the result is at most 1200 px tall. EXIF orientation
/// is applied.
///
/// The header is read first: an image over `limits.max_pixels` is refused with `image_too_large`
/// before any pixel memory is allocated.
pub fn cover_webp(image_bytes: &[u8], limits: &MediaLimits) -> Result<Vec<u8>, MediaError> {
    let len = image_bytes.len() as u64;
    if len > limits.max_input_bytes {
        return Err(MediaError::InputTooLarge { len, max: limits.max_input_bytes });
    }
    let image = decode_bounded(image_bytes, limits)?;
    let thumb = fit_cover(image);
    let (w, h) = (thumb.width(), thumb.height());
    if thumb.color().has_alpha() {
        encode::webp_lossy(thumb.to_rgba8().as_raw(), w, h, true)
    } else {
        encode::webp_lossy(thumb.to_rgb8().as_raw(), w, h, false)
    }
}

fn decode_bounded(bytes: &[u8], limits: &MediaLimits) -> Result<DynamicImage, MediaError> {
    let reader =
        ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| MediaError::ImageDecode { message: e.to_string() })?;
    match reader.format() {
        Some(
            image::ImageFormat::Jpeg
            | image::ImageFormat::Png
            | image::ImageFormat::Gif
            | image::ImageFormat::WebP
            | image::ImageFormat::Bmp,
        ) => {}
        _ => return Err(MediaError::UnsupportedImageFormat),
    }
    let mut reader = reader;
    let mut image_limits = image::Limits::default();
    image_limits.max_alloc = Some(limits.max_alloc_bytes);
    reader.limits(image_limits);

    // Building the decoder parses only the header; nothing pixel-sized is allocated yet.
    let mut decoder = reader.into_decoder().map_err(map_image_error)?;
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    let too_large = MediaError::ImageTooLarge { width, height, max_pixels: limits.max_pixels };
    if pixels > limits.max_pixels || decoder.total_bytes() > limits.max_alloc_bytes {
        return Err(too_large);
    }
    if width == 0 || height == 0 {
        return Err(MediaError::ImageDecode { message: "image has no pixels".to_owned() });
    }
    // A broken EXIF block should not cost the cover; fall back to "as stored".
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| match e {
        ImageError::Limits(_) => too_large,
        other => map_image_error(other),
    })?;
    image.apply_orientation(orientation);
    Ok(image)
}

fn map_image_error(e: ImageError) -> MediaError {
    match e {
        ImageError::Unsupported(_) => MediaError::UnsupportedImageFormat,
        ImageError::Limits(l) => MediaError::ImageDecode { message: format!("decoder limit reached: {l}") },
        other => MediaError::ImageDecode { message: other.to_string() },
    }
}

/// Crops to at most 3:1 (height:width) from the top, then scales down to `COVER_WIDTH`.
fn fit_cover(image: DynamicImage) -> DynamicImage {
    let (w, h) = (image.width(), image.height());
    let target_w = w.min(COVER_WIDTH);
    // Height the result would have at target width, in exact integer arithmetic.
    let scaled_h = scaled(h, target_w, w);
    let target_h = scaled_h.clamp(1, COVER_MAX_HEIGHT);
    // Cropping before resizing means we never resample rows that would be thrown away.
    let image = if scaled_h > COVER_MAX_HEIGHT {
        let keep_h = scaled(COVER_MAX_HEIGHT, w, target_w).clamp(1, h);
        image.crop_imm(0, 0, w, keep_h)
    } else {
        image
    };
    if target_w == w && target_h == image.height() {
        return image;
    }
    image.resize_exact(target_w, target_h, FilterType::CatmullRom)
}

/// `value * num / den`, rounded, computed without overflow.
fn scaled(value: u32, num: u32, den: u32) -> u32 {
    let den = u64::from(den.max(1));
    let r = (u64::from(value) * u64::from(num) + den / 2) / den;
    u32::try_from(r).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blank(w: u32, h: u32) -> DynamicImage {
        DynamicImage::new_rgb8(w, h)
    }

    #[test]
    fn large_images_become_400_wide_keeping_aspect() {
        let out = fit_cover(blank(1600, 2400));
        assert_eq!((out.width(), out.height()), (400, 600));
    }

    #[test]
    fn small_images_are_not_upscaled() {
        let out = fit_cover(blank(200, 300));
        assert_eq!((out.width(), out.height()), (200, 300));
    }

    #[test]
    fn very_tall_images_are_cropped_to_1200() {
        let out = fit_cover(blank(800, 8000));
        assert_eq!((out.width(), out.height()), (400, 1200));
        let small = fit_cover(blank(100, 5000));
        assert_eq!((small.width(), small.height()), (100, 1200));
    }

    #[test]
    fn extreme_aspect_never_yields_zero_sized_output() {
        let out = fit_cover(blank(16000, 1));
        assert_eq!((out.width(), out.height()), (400, 1));
    }
}
