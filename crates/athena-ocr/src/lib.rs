//! `athena-ocr` turns scanned PDF pages into text and into searchable ("layered") PDFs.
//!
//! It owns: the OCR engines behind [`OcrEngine`] — [`PpOcr`] (PP-OCRv4 models on ONNX Runtime,
//! loaded at run time from files fetched by `scripts/fetch-models.sh`) and [`TesseractOcr`] (the
//! `tesseract` binary) — rasterising pages with Poppler ([`Rasterizer`]), and writing PDFs whose
//! pages are the scans with an invisible text layer ([`LayeredPdfWriter`]).
//!
//! It knows nothing about HTTP, databases, jobs or async runtimes: every call is blocking and
//! bounded (image size, subprocess time, output size), and fails with a typed [`OcrError`].

mod config;
mod error;
pub mod metrics;
mod page;
mod pdf;
mod ppocr;
mod process;
mod raster;
mod tesseract;

use std::sync::Arc;

pub use config::{EngineKind, OcrConfig};
pub use error::OcrError;
pub use image::DynamicImage;
pub use page::{OcrLine, PageOcr};
pub use pdf::LayeredPdfWriter;
pub use ppocr::PpOcr;
pub use raster::{RasterPage, Rasterizer};
pub use tesseract::TesseractOcr;

/// An OCR engine: one page image in, lines of text out.
pub trait OcrEngine: Send + Sync {
    /// Short stable name (`ppocr`, `tesseract`).
    fn name(&self) -> &str;
    /// Recognises the text of one page image.
    fn recognize(&self, image: &DynamicImage) -> Result<PageOcr, OcrError>;
}

/// Builds the engine that `config.engine` names.
pub fn engine_from_config(config: &OcrConfig) -> Result<Arc<dyn OcrEngine>, OcrError> {
    Ok(match config.engine {
        EngineKind::PpOcr => Arc::new(PpOcr::new(config.clone())?),
        EngineKind::Tesseract => Arc::new(TesseractOcr::new(config.clone())?),
    })
}

/// Largest encoded image [`load_image`] accepts.
const MAX_IMAGE_BYTES: usize = 256 * 1024 * 1024;

/// Decodes an image (PNG, JPEG or PNM) refusing more than `max_pixels` pixels before allocating them.
pub fn load_image(bytes: &[u8], max_pixels: u64) -> Result<DynamicImage, OcrError> {
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(OcrError::BadImage(format!("{} bytes is more than an image may have", bytes.len())));
    }
    let mut reader =
        image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| OcrError::BadImage(e.to_string()))?;
    if reader.format().is_none() {
        return Err(OcrError::BadImage("not a PNG, JPEG or PNM image".into()));
    }
    let (w, h) = reader.into_dimensions().map_err(|e| OcrError::BadImage(e.to_string()))?;
    check_dimensions(w, h, max_pixels)?;
    reader = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| OcrError::BadImage(e.to_string()))?;
    let mut limits = image::Limits::default();
    // Decoded size plus slack for the decoder's own buffers.
    limits.max_alloc = Some(max_pixels.saturating_mul(8).max(64 * 1024 * 1024));
    reader.limits(limits);
    reader.decode().map_err(|e| OcrError::BadImage(e.to_string()))
}

/// Reads and decodes an image file with the bounds of [`load_image`].
pub fn load_image_file(path: &std::path::Path, max_pixels: u64) -> Result<DynamicImage, OcrError> {
    let meta = std::fs::metadata(path).map_err(|e| OcrError::io(format!("reading {}", path.display()), e))?;
    if meta.len() > MAX_IMAGE_BYTES as u64 {
        return Err(OcrError::BadImage(format!("{} is too large", path.display())));
    }
    let bytes = std::fs::read(path).map_err(|e| OcrError::io(format!("reading {}", path.display()), e))?;
    load_image(&bytes, max_pixels)
}

pub(crate) fn check_dimensions(w: u32, h: u32, max_pixels: u64) -> Result<(), OcrError> {
    if w == 0 || h == 0 {
        return Err(OcrError::BadImage(format!("image has no pixels ({w}x{h})")));
    }
    if w as u64 * h as u64 > max_pixels {
        return Err(OcrError::ImageTooLarge { width: w as u64, height: h as u64, max_pixels });
    }
    Ok(())
}
