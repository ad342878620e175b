//! PDF quick metadata with lopdf: page count, Info title/author, catalog language, and whether
//! the first pages carry a text layer (digital) or are only pictures (scanned, needs OCR).

use std::collections::HashSet;
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use lopdf::content::Content;
use lopdf::{Dictionary, Document, Object, ObjectId};

use crate::{FormatError, Limits, QuickMetadata};

/// Pages sampled for the text-layer check.
const SAMPLE_PAGES: usize = 6;
/// Cap on one page's inflated content; real pages are far smaller, bombs are not.
const MAX_CONTENT_BYTES: u64 = 16 << 20;
/// Form XObjects nest; real files rarely go past two levels.
const MAX_FORM_DEPTH: u32 = 4;
/// lopdf recurses on nested objects; a generous stack keeps deep but legal files from aborting.
const PARSER_STACK: usize = 64 << 20;

pub(crate) fn quick_metadata(path: &Path, limits: &Limits) -> Result<QuickMetadata, FormatError> {
    let len = std::fs::metadata(path)?.len();
    if len == 0 {
        return Err(FormatError::Empty);
    }
    if len > limits.max_pdf_bytes_in_memory {
        return Err(FormatError::TooLarge(format!(
            "PDF of {len} bytes exceeds the in-memory limit of {} bytes",
            limits.max_pdf_bytes_in_memory
        )));
    }
    let path: PathBuf = path.to_owned();
    // A dedicated thread gives lopdf a big stack; catch_unwind turns its panics on hostile input
    // into a normal error instead of tearing down the caller's worker.
    let handle = std::thread::Builder::new()
        .name("athena-pdf".into())
        .stack_size(PARSER_STACK)
        .spawn(move || catch_unwind(AssertUnwindSafe(|| analyse(&path))))?;
    match handle.join() {
        Ok(Ok(result)) => result,
        Ok(Err(_)) | Err(_) => {
            tracing::warn!("lopdf panicked on a hostile or broken PDF");
            Err(FormatError::corrupt("PDF parser failed on this file"))
        }
    }
}

/// Drops image pixel data while loading: only image dictionaries are needed, and scans are
/// where the bytes are. Streams are never objects inside object streams, so returning Null for
/// them loses nothing (lopdf keeps the mutated top-level object).
fn load_filter(id: ObjectId, object: &mut Object) -> Option<(ObjectId, Object)> {
    if let Object::Stream(stream) = object {
        let is_image = stream.dict.get(b"Subtype").and_then(Object::as_name).is_ok_and(|n| n == b"Image");
        if is_image {
            stream.set_content(Vec::new());
        }
        return Some((id, Object::Null));
    }
    Some((id, object.clone()))
}

fn analyse(path: &Path) -> Result<QuickMetadata, FormatError> {
    let doc = Document::load_filtered(path, load_filter).map_err(|e| {
        let mut reason = format!("unreadable PDF: {e}");
        reason.truncate(200);
        FormatError::Corrupt(reason)
    })?;
    let mut meta = QuickMetadata::default();
    if doc.is_encrypted() {
        meta.warnings.push("PDF is encrypted; metadata may be unreadable".into());
    }

    if let Some(info) = info_dict(&doc) {
        meta.title = string_entry(&doc, info, b"Title");
        meta.authors = string_entry(&doc, info, b"Author").into_iter().collect();
        meta.description = string_entry(&doc, info, b"Subject");
    }
    if let Ok(catalog) = doc.catalog() {
        meta.language = string_entry(&doc, catalog, b"Lang");
    }

    let pages = doc.get_pages();
    meta.page_count = Some(u32::try_from(pages.len()).unwrap_or(u32::MAX));
    if pages.is_empty() {
        meta.warnings.push("PDF has no pages".into());
        return Ok(meta);
    }
    let sample: Vec<ObjectId> = pages.values().copied().take(SAMPLE_PAGES).collect();
    let with_text = sample.iter().filter(|&&p| page_has_text(&doc, p)).count();
    let fraction = with_text as f64 / sample.len() as f64;
    meta.is_digitalized = Some(fraction >= 0.5);
    meta.digitalization_confidence = Some(fraction);
    Ok(meta)
}

fn info_dict(doc: &Document) -> Option<&Dictionary> {
    let info = doc.trailer.get(b"Info").ok()?;
    doc.dereference(info).ok()?.1.as_dict().ok()
}

fn string_entry(doc: &Document, dict: &Dictionary, key: &[u8]) -> Option<String> {
    let obj = dict.get(key).ok()?;
    let (_, obj) = doc.dereference(obj).ok()?;
    let bytes = match obj {
        Object::String(bytes, _) => bytes,
        _ => return None,
    };
    let s = decode_pdf_string(bytes);
    let s = s.trim_matches(|c: char| c.is_whitespace() || c == '\0').to_owned();
    (!s.is_empty()).then_some(s)
}

/// PDF text strings: UTF-16BE with BOM (the common case for non-Latin titles), UTF-8 with BOM
/// (PDF 2.0), otherwise PDFDocEncoding, approximated as Latin-1 unless the bytes are valid
/// UTF-8 (many producers write UTF-8 regardless of the spec).
pub(crate) fn decode_pdf_string(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        let units: Vec<u16> = rest.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
        return String::from_utf16_lossy(&units);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        let units: Vec<u16> = rest.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        return String::from_utf16_lossy(&units);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return String::from_utf8_lossy(rest).into_owned();
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// A page has text when its content (or a form it draws) uses a text-showing operator and a
/// font is available to it. A scan is one image `Do` and no text operators.
fn page_has_text(doc: &Document, page: ObjectId) -> bool {
    let mut content = Vec::new();
    for id in doc.get_page_contents(page) {
        if let Ok(Object::Stream(s)) = doc.get_object(id) {
            content.extend_from_slice(&stream_bytes(s));
            content.push(b'\n');
        }
    }
    let resources = page_resources(doc, page);
    let has_fonts = doc.get_page_fonts(page).is_ok_and(|f| !f.is_empty());
    let mut budget = 64usize; // forms visited per page
    let mut seen = HashSet::new();
    shows_text(doc, &content, &resources, has_fonts, 0, &mut budget, &mut seen)
}

fn page_resources(doc: &Document, page: ObjectId) -> Vec<&Dictionary> {
    let mut out = Vec::new();
    if let Ok((inline, ids)) = doc.get_page_resources(page) {
        out.extend(inline);
        out.extend(ids.into_iter().filter_map(|id| doc.get_dictionary(id).ok()));
    }
    out
}

fn shows_text(
    doc: &Document,
    content: &[u8],
    resources: &[&Dictionary],
    has_fonts: bool,
    depth: u32,
    budget: &mut usize,
    seen: &mut HashSet<ObjectId>,
) -> bool {
    let operators = operators(content);
    if has_fonts && operators.iter().any(|(op, _)| is_text_op(op)) {
        return true;
    }
    if depth >= MAX_FORM_DEPTH {
        return false;
    }
    // Text may live in form XObjects drawn with `Do`.
    for (op, operand) in &operators {
        if op != "Do" {
            continue;
        }
        let Some(name) = operand else { continue };
        let Some(form_id) = xobject_ref(doc, resources, name) else {
            continue;
        };
        if *budget == 0 || !seen.insert(form_id) {
            continue;
        }
        *budget -= 1;
        let Ok(Object::Stream(form)) = doc.get_object(form_id) else {
            continue;
        };
        let is_form = form.dict.get(b"Subtype").and_then(Object::as_name).is_ok_and(|n| n == b"Form");
        if !is_form {
            continue;
        }
        let mut inner: Vec<&Dictionary> = Vec::new();
        if let Ok(obj) = form.dict.get(b"Resources") {
            if let Ok((_, Object::Dictionary(d))) = doc.dereference(obj) {
                inner.push(d);
            }
        }
        let form_fonts = inner.iter().any(|d| has_font_entry(doc, d));
        // Forms without their own resources inherit the page's.
        let res: Vec<&Dictionary> = if inner.is_empty() { resources.to_vec() } else { inner };
        let data = stream_bytes(form);
        if shows_text(doc, &data, &res, has_fonts || form_fonts, depth + 1, budget, seen) {
            return true;
        }
    }
    false
}

fn has_font_entry(doc: &Document, resources: &Dictionary) -> bool {
    resources.get(b"Font").ok().and_then(|o| doc.dereference(o).ok()).and_then(|(_, o)| o.as_dict().ok()).is_some_and(|d| !d.is_empty())
}

fn xobject_ref(doc: &Document, resources: &[&Dictionary], name: &[u8]) -> Option<ObjectId> {
    resources.iter().find_map(|res| {
        let xobjects = res.get(b"XObject").ok()?;
        let (_, xobjects) = doc.dereference(xobjects).ok()?;
        xobjects.as_dict().ok()?.get(name).ok()?.as_reference().ok()
    })
}

fn is_text_op(op: &str) -> bool {
    matches!(op, "Tj" | "TJ" | "'" | "\"")
}

/// Operators with their first name operand (enough for `Do`). Falls back to a plain token scan
/// when lopdf cannot parse the content, which is common in slightly broken files.
fn operators(content: &[u8]) -> Vec<(String, Option<Vec<u8>>)> {
    if let Ok(parsed) = Content::decode(content) {
        return parsed
            .operations
            .into_iter()
            .map(|op| {
                let name = op.operands.first().and_then(|o| o.as_name().ok()).map(<[u8]>::to_vec);
                (op.operator, name)
            })
            .collect();
    }
    scan_operators(content)
}

fn scan_operators(content: &[u8]) -> Vec<(String, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut last_name: Option<Vec<u8>> = None;
    let mut i = 0;
    let delim = |b: u8| b.is_ascii_whitespace() || b"()<>[]{}/%".contains(&b);
    while i < content.len() {
        let b = content[i];
        match b {
            b'(' => {
                // Skip a literal string, honouring escapes and nesting.
                let mut depth = 0usize;
                while i < content.len() {
                    match content[i] {
                        b'\\' => i += 1,
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                i += 1;
            }
            b'%' => {
                while i < content.len() && content[i] != b'\n' && content[i] != b'\r' {
                    i += 1;
                }
            }
            b'/' => {
                let start = i + 1;
                i += 1;
                while i < content.len() && !delim(content[i]) {
                    i += 1;
                }
                last_name = Some(content[start..i].to_vec());
            }
            b'\'' | b'"' => {
                out.push(((b as char).to_string(), None));
                i += 1;
            }
            _ if b.is_ascii_alphabetic() => {
                let start = i;
                while i < content.len() && !delim(content[i]) {
                    i += 1;
                }
                let op = String::from_utf8_lossy(&content[start..i]).into_owned();
                out.push((op, last_name.take()));
            }
            _ => i += 1,
        }
    }
    out
}

/// Stream data after filters. Plain Flate is inflated here with a hard cap; other filters go
/// through lopdf, which is acceptable because they are rare for content streams.
fn stream_bytes(stream: &lopdf::Stream) -> Vec<u8> {
    let filters = stream.filters().unwrap_or_default();
    if filters.is_empty() {
        let mut raw = stream.content.clone();
        raw.truncate(MAX_CONTENT_BYTES as usize);
        return raw;
    }
    if filters == [b"FlateDecode".as_slice()] {
        let mut out = Vec::new();
        let decoder = flate2::read::ZlibDecoder::new(stream.content.as_slice());
        if decoder.take(MAX_CONTENT_BYTES).read_to_end(&mut out).is_ok() || !out.is_empty() {
            return out;
        }
    }
    stream.decompressed_content().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdf_strings() {
        assert_eq!(decode_pdf_string(&[0xFE, 0xFF, 0x8B, 0xBA, 0x8B, 0xED]), "论语");
        assert_eq!(decode_pdf_string(b"Plain"), "Plain");
        assert_eq!(decode_pdf_string(&[0x43, 0x61, 0x66, 0xE9]), "Café");
    }

    #[test]
    fn operator_scan() {
        let ops = scan_operators(b"BT /F1 12 Tf (a Tj \\) (x)) Tj ET q /Im0 Do Q");
        let names: Vec<_> = ops.iter().map(|(o, _)| o.as_str()).collect();
        assert_eq!(names, vec!["BT", "Tf", "Tj", "ET", "q", "Do", "Q"]);
        assert_eq!(ops[5].1.as_deref(), Some(b"Im0".as_slice()));
    }
}
