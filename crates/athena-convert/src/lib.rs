//! External conversion tools, run as bounded subprocesses: Calibre's `ebook-convert` (MOBI, AZW3, FB2, TXT, RTF,
//! DJVU, LIT, DOCX → EPUB), LibreOffice for legacy DOC (→ DOCX → EPUB) and Poppler for PDF text.
//!
//! Every run happens in a [`sandbox::Sandbox`]: a fresh directory (cwd, HOME, TMPDIR) removed afterwards, a clean
//! environment, a wall-clock limit that kills the whole process group, an address-space limit, and capped output.
//! This crate knows nothing about storage, HTTP or the job queue: callers hand it a file and a work directory and get
//! back a validated EPUB (owned, removed on drop) or a [`ConvertError`] with a stable `reason_code()`.
//!
//! Everything here is async and never blocks the runtime: tools are awaited as child processes and the zip check runs
//! on a blocking thread.

mod calibre;
mod error;
mod pdf;
pub mod sandbox;

pub use calibre::{calibre_available, calibre_version, ebook_convert, libreoffice_available, ConvertLimits, ConvertedEpub};
pub use error::ConvertError;
pub use pdf::{pdf_page_count, pdf_text_pages, PdfLimits};
