use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ParseError;

/// A book file format, as sniffed from content (never trusted from a file name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BookFormat {
    Epub,
    Pdf,
    Mobi,
    Azw3,
    Fb2,
    Txt,
    Rtf,
    Docx,
    Doc,
    Djvu,
    Lit,
}

impl BookFormat {
    pub const ALL: [BookFormat; 11] =
        [Self::Epub, Self::Pdf, Self::Mobi, Self::Azw3, Self::Fb2, Self::Txt, Self::Rtf, Self::Docx, Self::Doc, Self::Djvu, Self::Lit];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Epub => "epub",
            Self::Pdf => "pdf",
            Self::Mobi => "mobi",
            Self::Azw3 => "azw3",
            Self::Fb2 => "fb2",
            Self::Txt => "txt",
            Self::Rtf => "rtf",
            Self::Docx => "docx",
            Self::Doc => "doc",
            Self::Djvu => "djvu",
            Self::Lit => "lit",
        }
    }

    pub fn mime_type(self) -> &'static str {
        match self {
            Self::Epub => "application/epub+zip",
            Self::Pdf => "application/pdf",
            Self::Mobi => "application/x-mobipocket-ebook",
            Self::Azw3 => "application/vnd.amazon.ebook",
            Self::Fb2 => "application/x-fictionbook+xml",
            Self::Txt => "text/plain; charset=utf-8",
            Self::Rtf => "application/rtf",
            Self::Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            Self::Doc => "application/msword",
            Self::Djvu => "image/vnd.djvu",
            Self::Lit => "application/x-ms-reader",
        }
    }

    /// Formats the reader opens directly; the others are converted to EPUB by the worker.
    pub fn is_readable_directly(self) -> bool {
        matches!(self, Self::Epub | Self::Pdf)
    }
}

impl fmt::Display for BookFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BookFormat {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let lower = s.trim().trim_start_matches('.').to_ascii_lowercase();
        let lower = if lower == "azw" { "azw3".to_string() } else { lower };
        Self::ALL.into_iter().find(|f| f.as_str() == lower).ok_or_else(|| ParseError::new("format", "unknown book format"))
    }
}
