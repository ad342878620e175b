//! MOBI/AZW3 quick metadata from record 0 (MOBI header and EXTH). Conversion happens elsewhere.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::sniff::be_u32;
use crate::{FormatError, QuickMetadata};

/// Record 0 sits near the start of the file; its header and EXTH are a few KiB.
const HEAD_BYTES: u64 = 2 << 20;

pub(crate) fn quick_metadata(path: &Path) -> Result<QuickMetadata, FormatError> {
    let mut head = Vec::new();
    File::open(path)?.take(HEAD_BYTES).read_to_end(&mut head)?;
    if head.is_empty() {
        return Err(FormatError::Empty);
    }
    if head.get(60..68) != Some(b"BOOKMOBI".as_slice()) {
        return Err(FormatError::corrupt("missing BOOKMOBI signature"));
    }
    let mut meta = QuickMetadata::default();
    match parse(&head, &mut meta) {
        Some(()) => {}
        None => meta.warnings.push("MOBI header is truncated or damaged".into()),
    }
    if meta.title.is_none() {
        // The PalmDB name is an ASCII-ised, truncated title; better than nothing.
        let name = &head[..32];
        let end = name.iter().position(|&b| b == 0).unwrap_or(32);
        let name = String::from_utf8_lossy(&name[..end]).replace('_', " ");
        let name = name.trim();
        if !name.is_empty() {
            meta.title = Some(name.to_owned());
        }
    }
    Ok(meta)
}

fn parse(head: &[u8], meta: &mut QuickMetadata) -> Option<()> {
    let rec0 = be_u32(head, 78)? as usize;
    let mobi = rec0.checked_add(16)?;
    if head.get(mobi..mobi + 4)? != b"MOBI" {
        return None;
    }
    let header_len = be_u32(head, mobi + 4)? as usize;
    let utf8 = be_u32(head, mobi + 12)? == 65001;
    let decode = |b: &[u8]| -> String {
        let s = if utf8 {
            String::from_utf8_lossy(b).into_owned()
        } else {
            // CP1252 approximated as Latin-1: good enough for a provisional title.
            b.iter().map(|&c| char::from(c)).collect()
        };
        s.trim_matches(|c: char| c.is_whitespace() || c == '\0').to_owned()
    };

    let name_off = be_u32(head, rec0 + 84)? as usize;
    let name_len = be_u32(head, rec0 + 88)? as usize;
    if let Some(name) = rec0.checked_add(name_off).and_then(|s| head.get(s..s.checked_add(name_len)?)) {
        let t = decode(name);
        if !t.is_empty() {
            meta.title = Some(t);
        }
    }

    let exth_flags = be_u32(head, mobi + 0x70)?;
    if exth_flags & 0x40 == 0 {
        return Some(());
    }
    let exth = mobi.checked_add(header_len)?;
    if head.get(exth..exth + 4)? != b"EXTH" {
        return None;
    }
    let count = be_u32(head, exth + 8)?;
    let mut p = exth + 12;
    for _ in 0..count.min(10_000) {
        let kind = be_u32(head, p)?;
        let len = be_u32(head, p + 4)? as usize;
        if len < 8 {
            return None;
        }
        let data = head.get(p + 8..p.checked_add(len)?)?;
        let value = || Some(decode(data)).filter(|s| !s.is_empty());
        match kind {
            100 => meta.authors.extend(value()),
            101 => meta.publisher = meta.publisher.take().or_else(value),
            103 => meta.description = meta.description.take().or_else(value),
            104 | 113 => meta.identifiers.extend(value()),
            503 => {
                if let Some(v) = value() {
                    meta.title = Some(v);
                }
            }
            524 => meta.language = meta.language.take().or_else(value),
            _ => {}
        }
        p = p.checked_add(len)?;
    }
    Some(())
}
