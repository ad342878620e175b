//! Defensive ZIP access: the central directory is vetted before any entry is inflated, and every
//! read is capped, because declared sizes in a hostile archive mean nothing.

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use zip::ZipArchive;

use crate::{FormatError, Limits};

pub(crate) type Archive = ZipArchive<BufReader<File>>;

/// Entries above this size are the only ones the ratio check applies to; small, highly
/// compressible files (CSS, XHTML full of spaces) are normal.
const RATIO_MIN_SIZE: u64 = 1 << 20;
/// No real book has this many files, and each costs memory in the parsed central directory.
const MAX_ENTRIES: usize = 100_000;

/// Opens the archive and vets every central-directory entry (names, sizes, ratios).
pub(crate) fn open_checked(path: &Path, limits: &Limits) -> Result<Archive, FormatError> {
    let file = File::open(path)?;
    if file.metadata()?.len() == 0 {
        return Err(FormatError::Empty);
    }
    let mut archive = ZipArchive::new(BufReader::new(file)).map_err(|e| FormatError::corrupt(format!("unreadable zip archive: {e}")))?;
    vet(&mut archive, limits)?;
    Ok(archive)
}

fn vet<R: Read + Seek>(archive: &mut ZipArchive<R>, limits: &Limits) -> Result<(), FormatError> {
    if archive.len() > MAX_ENTRIES {
        return Err(FormatError::ArchiveBomb(format!("{} entries (limit {MAX_ENTRIES})", archive.len())));
    }
    let mut total: u64 = 0;
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).map_err(|e| FormatError::corrupt(format!("bad zip entry {i}: {e}")))?;
        let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
        if is_unsafe_name(&name) {
            return Err(FormatError::UnsafeArchive(format!("entry {name:?}")));
        }
        let size = entry.size();
        let compressed = entry.compressed_size().max(1);
        if size > RATIO_MIN_SIZE && size / compressed > limits.max_ratio {
            return Err(FormatError::ArchiveBomb(format!("entry {name:?} expands {}x ({size} bytes)", size / compressed)));
        }
        total = total.saturating_add(size);
        if total > limits.max_total_uncompressed {
            return Err(FormatError::ArchiveBomb(format!("declared uncompressed size exceeds {} bytes", limits.max_total_uncompressed)));
        }
    }
    Ok(())
}

/// Absolute paths, drive letters and `..` segments could escape an extraction directory.
pub(crate) fn is_unsafe_name(name: &str) -> bool {
    if name.starts_with('/') || name.starts_with('\\') || name.contains('\0') {
        return true;
    }
    let b = name.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        return true;
    }
    name.split(['/', '\\']).any(|seg| seg == "..")
}

/// Finds an entry by archive path: exact, then percent-decoded, then case-insensitive (some
/// tools disagree with the OPF about case or URL encoding).
pub(crate) fn find_entry<R: Read + Seek>(archive: &ZipArchive<R>, path: &str) -> Option<usize> {
    if let Some(i) = archive.index_for_name(path) {
        return Some(i);
    }
    let decoded = percent_decode(path);
    if let Some(i) = archive.index_for_name(&decoded) {
        return Some(i);
    }
    (0..archive.len()).find(|&i| archive.name_for_index(i).is_some_and(|n| n.eq_ignore_ascii_case(&decoded)))
}

/// Reads a whole entry, refusing more than `max` bytes whatever the header claims.
/// `Ok(None)` when the entry does not exist.
pub(crate) fn read_entry<R: Read + Seek>(archive: &mut ZipArchive<R>, path: &str, max: u64) -> Result<Option<Vec<u8>>, FormatError> {
    let Some(index) = find_entry(archive, path) else {
        return Ok(None);
    };
    let entry = archive.by_index(index).map_err(|e| FormatError::corrupt(format!("cannot open {path:?}: {e}")))?;
    let mut buf = Vec::with_capacity(entry.size().min(max).min(1 << 20) as usize);
    entry.take(max.saturating_add(1)).read_to_end(&mut buf).map_err(|e| FormatError::corrupt(format!("cannot read {path:?}: {e}")))?;
    if buf.len() as u64 > max {
        return Err(FormatError::TooLarge(format!("entry {path:?} is over {max} bytes")));
    }
    Ok(Some(buf))
}

/// Reads at most `max` bytes of the entry at `index`; the flag says whether more was there.
/// For content documents, where the first part of an oversized file is still worth having.
pub(crate) fn read_entry_prefix<R: Read + Seek>(
    archive: &mut ZipArchive<R>,
    index: usize,
    max: u64,
) -> Result<(Vec<u8>, bool), FormatError> {
    let entry = archive.by_index(index).map_err(|e| FormatError::corrupt(format!("cannot open entry {index}: {e}")))?;
    let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
    let mut buf = Vec::with_capacity(entry.size().min(max).min(1 << 20) as usize);
    entry.take(max.saturating_add(1)).read_to_end(&mut buf).map_err(|e| FormatError::corrupt(format!("cannot read {name:?}: {e}")))?;
    let truncated = buf.len() as u64 > max;
    if truncated {
        buf.truncate(max as usize);
    }
    Ok((buf, truncated))
}

/// Like `read_entry` but for sniffing: an oversized entry is just "not what we look for".
pub(crate) fn read_small<R: Read + Seek>(archive: &mut ZipArchive<R>, path: &str, max: u64) -> Result<Option<Vec<u8>>, FormatError> {
    match read_entry(archive, path, max) {
        Ok(v) => Ok(v),
        Err(FormatError::TooLarge(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

pub(crate) fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Resolves `href` (relative, maybe with a fragment) against the directory of `base`, both
/// archive paths. `..` above the root is clamped, never escaping.
pub(crate) fn resolve(base: &str, href: &str) -> String {
    let (path, fragment) = match href.find('#') {
        Some(i) => (&href[..i], Some(&href[i..])),
        None => (href, None),
    };
    let mut parts: Vec<&str> = Vec::new();
    if !path.starts_with('/') {
        if let Some(i) = base.rfind('/') {
            parts.extend(base[..i].split('/').filter(|s| !s.is_empty()));
        }
    }
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let mut out = parts.join("/");
    if path.is_empty() {
        // A bare fragment points into the base document itself.
        out = base.to_owned();
    }
    if let Some(f) = fragment {
        out.push_str(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_names() {
        for n in ["../x", "a/../../x", "/etc/passwd", "\\x", "C:/x", "c:\\x", "a\\..\\b"] {
            assert!(is_unsafe_name(n), "{n}");
        }
        for n in ["OEBPS/a..b.xhtml", "mimetype", "a/b/c.png", "..hidden"] {
            assert!(!is_unsafe_name(n), "{n}");
        }
    }

    #[test]
    fn resolving() {
        assert_eq!(resolve("OEBPS/content.opf", "text/ch1.xhtml"), "OEBPS/text/ch1.xhtml");
        assert_eq!(resolve("OEBPS/nav.xhtml", "../ch1.xhtml#p2"), "ch1.xhtml#p2");
        assert_eq!(resolve("content.opf", "../../../x"), "x");
        assert_eq!(resolve("a/nav.xhtml", "#t"), "a/nav.xhtml#t");
        assert_eq!(percent_decode("a%20b%2"), "a b%2");
        assert_eq!(percent_decode("%E8%AE%BA"), "论");
    }
}
