//! Format sniffing and quick metadata extraction for uploaded ebook files.
//!
//! This crate owns the decision "what kind of file is this" (from its bytes, never its name) and
//! the cheap first look at it: title, authors, language, TOC, cover and, for PDFs, whether there is
//! a text layer; and, for EPUB, the plain text of each spine document (`extract_epub_text`).
//! Every function takes a local file path, runs synchronously, and is bounded in memory and time
//! for hostile input (zip bombs, XML entity bombs, huge images, broken PDFs).
//! It must not know about storage, HTTP, SQL or jobs: it does no IO beyond reading the given file,
//! and conversion of the non-EPUB/PDF formats happens elsewhere.

mod epub;
mod error;
mod fb2;
mod image_header;
mod mobi;
mod ooxml;
mod pdf;
mod sniff;
mod text;
mod xml;
mod zipsafe;

use std::path::Path;

pub use athena_domain::BookFormat;
use serde::Serialize;

pub use error::FormatError;
pub use image_header::{image_info, ImageInfo};
pub use text::{extract_epub_text, ExtractSummary, TextSection};

/// Resource limits for reading untrusted files. The defaults suit a home server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes read from any single zip entry (OPF, nav, NCX, ...).
    pub max_entry_bytes: u64,
    /// Most total uncompressed bytes an archive may declare.
    pub max_total_uncompressed: u64,
    /// Highest compression ratio allowed for an entry larger than 1 MiB.
    pub max_ratio: u64,
    /// Covers bigger than this are dropped with a warning.
    pub max_cover_bytes: u64,
    /// Covers with more pixels than this are dropped with a warning.
    pub max_image_pixels: u64,
    /// PDFs are parsed in memory; bigger ones are refused.
    pub max_pdf_bytes_in_memory: u64,
    /// Text extraction stops (with a warning) after this many characters in all.
    pub max_text_chars: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_entry_bytes: 8 << 20,
            max_total_uncompressed: 2 << 30,
            max_ratio: 200,
            max_cover_bytes: 10 << 20,
            max_image_pixels: 100_000_000,
            max_pdf_bytes_in_memory: 256 << 20,
            max_text_chars: 64 << 20,
        }
    }
}

/// One table-of-contents entry. `href` is a path inside the book (for EPUB relative to the
/// archive root, fragment kept); `level` starts at 1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TocEntry {
    pub title: String,
    pub href: String,
    pub level: u32,
}

/// A cover image as stored in the book, with dimensions read from its header.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Cover {
    #[serde(skip)]
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub width: u32,
    pub height: u32,
}

impl std::fmt::Debug for Cover {
    // The bytes would flood logs; their length is what matters when debugging.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cover")
            .field("bytes", &self.bytes.len())
            .field("media_type", &self.media_type)
            .field("width", &self.width)
            .field("height", &self.height)
            .finish()
    }
}

/// What can be learnt from a file cheaply. Everything is optional: a missing field is not an
/// error, and `warnings` says what was skipped and why.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct QuickMetadata {
    pub title: Option<String>,
    pub authors: Vec<String>,
    pub language: Option<String>,
    pub publisher: Option<String>,
    pub identifiers: Vec<String>,
    pub description: Option<String>,
    pub page_count: Option<u32>,
    pub toc: Vec<TocEntry>,
    /// PDFs only: true when most of the first pages have a text layer.
    pub is_digitalized: Option<bool>,
    /// PDFs only: fraction of the first (up to 6) pages that have a text layer.
    pub digitalization_confidence: Option<f64>,
    pub cover: Option<Cover>,
    pub warnings: Vec<String>,
}

/// Identifies the format of the file at `path` from its content only (never its name).
pub fn sniff_file(path: &Path) -> Result<BookFormat, FormatError> {
    sniff::sniff_file(path)
}

/// Reads cheap metadata from the file at `path`, which must already be known to be `format`.
pub fn quick_metadata(path: &Path, format: BookFormat, limits: &Limits) -> Result<QuickMetadata, FormatError> {
    match format {
        BookFormat::Epub => epub::quick_metadata(path, limits),
        BookFormat::Pdf => pdf::quick_metadata(path, limits),
        BookFormat::Mobi | BookFormat::Azw3 => mobi::quick_metadata(path),
        BookFormat::Fb2 => fb2::quick_metadata(path),
        BookFormat::Docx => ooxml::quick_metadata(path, limits),
        BookFormat::Txt | BookFormat::Rtf | BookFormat::Doc | BookFormat::Djvu | BookFormat::Lit => {
            // Nothing cheap to learn; only confirm the file is readable and non-empty.
            let len = std::fs::metadata(path)?.len();
            if len == 0 {
                return Err(FormatError::Empty);
            }
            Ok(QuickMetadata::default())
        }
    }
}

/// Sniffs then reads quick metadata: the usual entry point for an upload.
pub fn inspect_file(path: &Path, limits: &Limits) -> Result<(BookFormat, QuickMetadata), FormatError> {
    let format = sniff_file(path)?;
    let meta = quick_metadata(path, format, limits)?;
    Ok((format, meta))
}
