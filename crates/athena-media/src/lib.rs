//! Pictures of books: uploaded covers re-encoded as 400 px lossy WebP, covers generated from a
//! title for books without one, and a PNG of a PDF's first page (via Poppler's `pdftoppm`).
//!
//! Every function is synchronous and CPU- or process-bound; callers run them on a blocking
//! thread. Every input is bounded: image headers are checked before decoding, decoder
//! allocations are capped, the PDF renderer is a killed-on-timeout child process with capped
//! output. This crate knows nothing about storage, HTTP or the database; it maps bytes (or a
//! file path) to bytes, and failures to [`MediaError`] with a stable [`MediaError::reason_code`].

mod cover;
mod encode;
mod error;
mod font;
mod generated;
mod pdf;

pub use cover::{cover_webp, MediaLimits, COVER_MAX_HEIGHT, COVER_WIDTH};
pub use error::MediaError;
pub use font::{FontSource, SYSTEM_FONT_PATHS};
pub use generated::{generated_cover, GeneratedCover, GENERATED_HEIGHT, GENERATED_WIDTH};
pub use pdf::{pdf_first_page_png, MAX_PNG_BYTES, PDF_WIDTH_RANGE};
