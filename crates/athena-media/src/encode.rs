//! Lossy WebP encoding through libwebp (the `image` crate can only write lossless WebP).

use crate::MediaError;

/// Quality used for every WebP this crate writes: small files, no visible loss on covers.
pub(crate) const WEBP_QUALITY: f32 = 80.0;

/// The largest side libwebp accepts.
const WEBP_MAX_SIDE: u32 = 16383;

/// Encodes tightly packed 8-bit RGB (`alpha == false`) or RGBA pixels as lossy WebP.
pub(crate) fn webp_lossy(pixels: &[u8], width: u32, height: u32, alpha: bool) -> Result<Vec<u8>, MediaError> {
    if width == 0 || height == 0 || width > WEBP_MAX_SIDE || height > WEBP_MAX_SIDE {
        return Err(MediaError::Encode { message: format!("{width}x{height} is outside WebP's 1..={WEBP_MAX_SIDE} range") });
    }
    let channels: u64 = if alpha { 4 } else { 3 };
    // The webp crate panics on a short buffer; check first so bad input is an error, not a panic.
    if pixels.len() as u64 != u64::from(width) * u64::from(height) * channels {
        return Err(MediaError::Encode { message: "pixel buffer does not match the image size".to_owned() });
    }
    let layout = if alpha { webp::PixelLayout::Rgba } else { webp::PixelLayout::Rgb };
    let encoder = webp::Encoder::new(pixels, layout, width, height);
    // `encode_simple` returns errors where `encode` would unwrap them.
    let memory = encoder.encode_simple(false, WEBP_QUALITY).map_err(|e| MediaError::Encode { message: format!("{e:?}") })?;
    Ok(memory.to_vec())
}
