//! Content-based format detection. Reads at most 64 KiB plus, for ZIPs, the central directory
//! and the tiny `mimetype` entry.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use athena_domain::BookFormat;

use crate::zipsafe;
use crate::FormatError;

const HEAD_BYTES: usize = 64 * 1024;

pub(crate) fn sniff_file(path: &Path) -> Result<BookFormat, FormatError> {
    let mut file = File::open(path)?;
    let mut head = Vec::with_capacity(HEAD_BYTES);
    (&mut file).take(HEAD_BYTES as u64).read_to_end(&mut head)?;
    if head.is_empty() {
        return Err(FormatError::Empty);
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return sniff_zip(path, &head);
    }
    sniff_head(&head)
}

/// Detection for everything that is not a ZIP, from the first bytes alone.
pub(crate) fn sniff_head(head: &[u8]) -> Result<BookFormat, FormatError> {
    if head.is_empty() {
        return Err(FormatError::Empty);
    }
    // Executables are refused outright, whatever else they might contain.
    if head.starts_with(b"\x7fELF") || head.starts_with(b"MZ") {
        return Err(FormatError::Unrecognized);
    }
    if find(&head[..head.len().min(1024)], b"%PDF-").is_some() {
        return Ok(BookFormat::Pdf);
    }
    if head.len() >= 68 && &head[60..68] == b"BOOKMOBI" {
        return Ok(mobi_flavour(head));
    }
    if head.starts_with(b"AT&TFORM") {
        return Ok(BookFormat::Djvu);
    }
    if head.starts_with(b"ITOLITLS") {
        return Ok(BookFormat::Lit);
    }
    if head.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        return Ok(BookFormat::Doc);
    }
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    if text.starts_with(b"{\\rtf") {
        return Ok(BookFormat::Rtf);
    }
    let trimmed = trim_ascii_start(text);
    if trimmed.starts_with(b"<") && find(&text[..text.len().min(4096)], b"<FictionBook").is_some() {
        return Ok(BookFormat::Fb2);
    }
    if looks_like_text(text) {
        return Ok(BookFormat::Txt);
    }
    Err(FormatError::Unrecognized)
}

/// KF8-only books (MOBI header version 8 in record 0) are AZW3. Joint MOBI6+KF8 files keep
/// version 6 in record 0 and stay MOBI, because old readers open them as such.
fn mobi_flavour(head: &[u8]) -> BookFormat {
    let rec0 = be_u32(head, 78).map(|v| v as usize);
    let version = rec0.and_then(|r| {
        let m = r.checked_add(16)?;
        if head.get(m..m + 4)? != b"MOBI" {
            return None;
        }
        be_u32(head, m + 20)
    });
    if version == Some(8) {
        BookFormat::Azw3
    } else {
        BookFormat::Mobi
    }
}

fn sniff_zip(path: &Path, head: &[u8]) -> Result<BookFormat, FormatError> {
    let file = File::open(path)?;
    match zip::ZipArchive::new(BufReader::new(file)) {
        Ok(mut archive) => {
            if let Some(mime) = zipsafe::read_small(&mut archive, "mimetype", 256)? {
                let mime = String::from_utf8_lossy(&mime);
                if mime.trim() == "application/epub+zip" {
                    return Ok(BookFormat::Epub);
                }
            }
            if archive.index_for_name("META-INF/container.xml").is_some() {
                return Ok(BookFormat::Epub);
            }
            if archive.index_for_name("word/document.xml").is_some() {
                return Ok(BookFormat::Docx);
            }
            Err(FormatError::Unrecognized)
        }
        Err(err) => {
            // A damaged EPUB still announces itself in its first local header (the OCF spec
            // requires an uncompressed `mimetype` entry first); call it an EPUB so that reading
            // it reports the corruption instead of "unknown format".
            if head.len() >= 58 && &head[30..38] == b"mimetype" && head[38..].starts_with(b"application/epub+zip") {
                return Ok(BookFormat::Epub);
            }
            Err(FormatError::corrupt(format!("unreadable zip archive: {err}")))
        }
    }
}

/// UTF-8 (a sequence cut at the end of the sample is fine) with under 1% control characters
/// and no NULs.
fn looks_like_text(bytes: &[u8]) -> bool {
    let valid = match std::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) if e.error_len().is_none() && bytes.len() - e.valid_up_to() < 4 => {
            // Only the last, truncated character is invalid.
            match std::str::from_utf8(&bytes[..e.valid_up_to()]) {
                Ok(s) => s,
                Err(_) => return false,
            }
        }
        Err(_) => return false,
    };
    if valid.is_empty() {
        return false;
    }
    let mut total = 0usize;
    let mut control = 0usize;
    for c in valid.chars() {
        total += 1;
        if c == '\0' {
            return false;
        }
        if c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\x0c') {
            control += 1;
        }
    }
    control * 100 < total
}

fn trim_ascii_start(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    &bytes[start..]
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub(crate) fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers() {
        assert_eq!(sniff_head(b"%PDF-1.7\n").unwrap(), BookFormat::Pdf);
        assert_eq!(sniff_head(b"AT&TFORM\0\0").unwrap(), BookFormat::Djvu);
        assert_eq!(sniff_head(b"ITOLITLS....").unwrap(), BookFormat::Lit);
        assert_eq!(sniff_head(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0]).unwrap(), BookFormat::Doc);
        assert_eq!(sniff_head(b"{\\rtf1 hello}").unwrap(), BookFormat::Rtf);
        assert_eq!(sniff_head(b"<?xml version=\"1.0\"?>\n<FictionBook xmlns=\"x\">").unwrap(), BookFormat::Fb2);
        assert_eq!(sniff_head("\u{feff}学而时习之\n".as_bytes()).unwrap(), BookFormat::Txt);
        assert!(matches!(sniff_head(b"MZ\x90\0%PDF-"), Err(FormatError::Unrecognized)));
        assert!(matches!(sniff_head(b"\x7fELF\x02"), Err(FormatError::Unrecognized)));
        assert!(matches!(sniff_head(b"abc\0def"), Err(FormatError::Unrecognized)));
        assert!(matches!(sniff_head(b"\xff\xfe\xfd"), Err(FormatError::Unrecognized)));
    }

    #[test]
    fn truncated_utf8_tail_is_still_text() {
        let mut s = "论语".repeat(10).into_bytes();
        s.pop();
        assert_eq!(sniff_head(&s).unwrap(), BookFormat::Txt);
    }

    #[test]
    fn control_heavy_text_is_not_text() {
        let s: Vec<u8> = (0..200).map(|i| if i % 10 == 0 { 0x01 } else { b'a' }).collect();
        assert!(sniff_head(&s).is_err());
    }
}
