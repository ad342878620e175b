use std::path::Path;

use athena_domain::BookFormat;

use crate::sandbox::SandboxError;

/// Longest tool-output excerpt carried in an error message.
const STDERR_EXCERPT_CHARS: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("converting e-books needs Calibre (ebook-convert), which is not installed")]
    CalibreMissing,
    #[error("DOC files need LibreOffice, which is not installed")]
    LibreOfficeMissing,
    #[error("reading PDF text needs Poppler ({tool}), which is not installed")]
    PopplerMissing { tool: &'static str },
    #[error("{format} files are not converted (they are read directly or not supported)")]
    UnsupportedFormat { format: BookFormat },
    #[error("the input is {size} bytes, over the {limit}-byte limit")]
    InputTooLarge { size: u64, limit: u64 },
    #[error("this DJVU file has no text layer (only page images), so it cannot be converted to an e-book")]
    DjvuNoText,
    #[error("{tool} did not finish within {secs} s")]
    Timeout { tool: &'static str, secs: u64 },
    #[error("{tool} ran out of memory (limit {limit_mib} MiB): {detail}")]
    OutOfMemory { tool: &'static str, limit_mib: u64, detail: String },
    #[error("{tool} failed ({status}): {detail}")]
    ToolFailed { tool: &'static str, status: String, detail: String },
    #[error("the converted file is not a valid EPUB: {detail}")]
    InvalidOutput { detail: String },
    #[error("{tool} could not read the PDF (exit status {code}): {detail}")]
    PdfUnreadable { tool: &'static str, code: i32, detail: String },
    #[error("the PDF text is larger than the {limit}-byte limit")]
    PdfTextTooLarge { limit: usize },
    #[error("{context}: {source}")]
    Io { context: &'static str, source: std::io::Error },
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
}

impl ConvertError {
    /// Stable short code for logs, job records and API errors.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Self::CalibreMissing => "calibre_missing",
            Self::LibreOfficeMissing => "libreoffice_missing",
            Self::PopplerMissing { .. } => "poppler_missing",
            Self::UnsupportedFormat { .. } => "unsupported_format",
            Self::InputTooLarge { .. } => "input_too_large",
            Self::DjvuNoText => "djvu_no_text",
            Self::Timeout { .. } => "convert_timeout",
            Self::OutOfMemory { .. } => "convert_out_of_memory",
            Self::ToolFailed { .. } => "convert_failed",
            Self::InvalidOutput { .. } => "invalid_output",
            Self::PdfUnreadable { .. } => "pdf_unreadable",
            Self::PdfTextTooLarge { .. } => "pdf_text_too_large",
            Self::Io { .. } => "io_error",
            Self::Sandbox(e) => e.reason_code(),
        }
    }

    pub(crate) fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io { context, source }
    }
}

/// The last ~500 characters of a tool's output, with the sandbox path replaced so that server paths do not leak into
/// user-visible messages.
pub(crate) fn excerpt(bytes: &[u8], sandbox: &Path) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.replace(&*sandbox.to_string_lossy(), "<work>");
    let trimmed = text.trim();
    let count = trimmed.chars().count();
    if count <= STDERR_EXCERPT_CHARS {
        return trimmed.to_string();
    }
    let tail: String = trimmed.chars().skip(count - STDERR_EXCERPT_CHARS).collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_clips_and_hides_paths() {
        let long = format!("/tmp/x/athena-sbx-1/in.txt {}", "e".repeat(2000));
        let e = excerpt(long.as_bytes(), Path::new("/tmp/x/athena-sbx-1"));
        assert!(e.chars().count() <= STDERR_EXCERPT_CHARS + 1);
        let short = excerpt(b"Error in /tmp/x/athena-sbx-1/in.txt\n", Path::new("/tmp/x/athena-sbx-1"));
        assert_eq!(short, "Error in <work>/in.txt");
    }
}
