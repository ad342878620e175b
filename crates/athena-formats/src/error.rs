use thiserror::Error;

/// Why a file could not be sniffed or read. Variants are stable; `reason_code` is what callers
/// store and show, so it must never change for an existing variant.
#[derive(Debug, Error)]
pub enum FormatError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is not a recognised ebook format")]
    Unrecognized,
    #[error("the file is corrupt: {0}")]
    Corrupt(String),
    #[error("the archive looks like a decompression bomb: {0}")]
    ArchiveBomb(String),
    #[error("the file declares XML entities (possible entity-expansion bomb)")]
    XmlBomb,
    #[error("the archive has unsafe entry names: {0}")]
    UnsafeArchive(String),
    #[error("the file is too large to process: {0}")]
    TooLarge(String),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl FormatError {
    /// Stable snake_case code for APIs, logs and metrics.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Self::Empty => "empty_file",
            Self::Unrecognized => "unrecognized_format",
            Self::Corrupt(_) => "corrupt_file",
            Self::ArchiveBomb(_) => "archive_bomb",
            Self::XmlBomb => "xml_bomb",
            Self::UnsafeArchive(_) => "unsafe_archive",
            Self::TooLarge(_) => "too_large",
            Self::Io(_) => "io_error",
        }
    }

    pub(crate) fn corrupt(reason: impl Into<String>) -> Self {
        Self::Corrupt(reason.into())
    }
}
