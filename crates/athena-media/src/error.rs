//! The one error type of this crate; each variant has a stable short reason code for logs and API mapping.

use std::time::Duration;

/// Why a media operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The encoded input is larger than `MediaLimits::max_input_bytes`.
    #[error("input is {len} bytes, more than the limit of {max} bytes")]
    InputTooLarge { len: u64, max: u64 },

    /// The image header declares more pixels than allowed (or more memory than allowed to decode it).
    #[error("image is {width}x{height}, more than the limit of {max_pixels} pixels")]
    ImageTooLarge { width: u32, height: u32, max_pixels: u64 },

    /// The bytes are not one of the supported image formats (JPEG, PNG, GIF, WebP, BMP).
    #[error("unsupported or unrecognised image format")]
    UnsupportedImageFormat,

    /// The image claims a supported format but could not be decoded.
    #[error("image could not be decoded: {message}")]
    ImageDecode { message: String },

    /// libwebp refused to encode the image.
    #[error("WebP encoding failed: {message}")]
    Encode { message: String },

    /// An argument is outside its allowed range.
    #[error("invalid argument: {message}")]
    InvalidArgument { message: String },

    /// An external tool is not installed (or not executable).
    #[error("required tool `{tool}` is not installed")]
    ToolMissing { tool: &'static str },

    /// The renderer ran but did not produce a page image.
    #[error("render failed: {message}")]
    RenderFailed { message: String },

    /// The renderer did not finish in time and was killed.
    #[error("render did not finish within {after:?} and was stopped")]
    RenderTimeout { after: Duration },

    /// The renderer produced more bytes than allowed.
    #[error("rendered output is larger than the limit of {max} bytes")]
    RenderOutputTooLarge { max: u64 },

    /// A local file operation failed (temporary files, spawning).
    #[error("i/o error during {during}: {source}")]
    Io {
        during: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl MediaError {
    /// A stable, short, machine-readable code for this error.
    pub fn reason_code(&self) -> &'static str {
        match self {
            MediaError::InputTooLarge { .. } => "input_too_large",
            MediaError::ImageTooLarge { .. } => "image_too_large",
            MediaError::UnsupportedImageFormat => "image_unsupported_format",
            MediaError::ImageDecode { .. } => "image_decode_failed",
            MediaError::Encode { .. } => "encode_failed",
            MediaError::InvalidArgument { .. } => "invalid_argument",
            MediaError::ToolMissing { .. } => "tool_missing",
            MediaError::RenderFailed { .. } => "render_failed",
            MediaError::RenderTimeout { .. } => "render_timeout",
            MediaError::RenderOutputTooLarge { .. } => "render_output_too_large",
            MediaError::Io { .. } => "io_error",
        }
    }

    pub(crate) fn io(during: &'static str, source: std::io::Error) -> Self {
        MediaError::Io { during, source }
    }
}
