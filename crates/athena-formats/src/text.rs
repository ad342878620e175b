//! EPUB plain text by spine document, for full-text search and reading positions.
//!
//! The spine is walked in order and each content document is read, converted and handed to the
//! caller before the next is touched, so memory holds one document (capped at
//! `Limits::max_entry_bytes`) and its text at a time. Non-linear spine items (notes, answer keys,
//! covers) are extracted too, at their spine position and flagged `linear: false`: their text is
//! part of the book and search should find it; a reader can still list them apart. Documents with
//! no text (image pages without alt text) produce no section, but every location keeps the true spine
//! position, so CFIs stay valid.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::Path;

use athena_domain::BookFormat;
use quick_xml::events::Event;
use quick_xml::Reader;
use serde::Serialize;

use crate::epub::{self, ManifestItem};
use crate::xml::{attr, normalize_space, reject_entity_declarations, unescape_lenient};
use crate::zipsafe::{self, percent_decode, read_entry_prefix, resolve, Archive};
use crate::{sniff, FormatError, Limits};

/// The text of one spine document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TextSection {
    /// 0-based position of the document in the spine (gaps where documents had no text).
    pub index: u32,
    /// Title of the first TOC entry pointing at this document, else its first heading.
    pub title: Option<String>,
    /// Path of the document inside the archive.
    pub href: String,
    /// EPUB CFI of the start of the document, e.g. `epubcfi(/6/4[chap01ref]!/4)`.
    pub location: String,
    /// False for spine items marked `linear="no"`.
    pub linear: bool,
    /// Readable plain text: one line per block element, whitespace collapsed.
    pub text: String,
}

/// What an extraction produced overall; `warnings` says what was skipped or cut and why.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ExtractSummary {
    pub sections: u32,
    pub chars: u64,
    pub warnings: Vec<String>,
}

/// A hostile spine could otherwise produce one warning per item.
const MAX_WARNINGS: usize = 100;

/// Elements whose content is never shown as body text.
const SKIPPED: &[&[u8]] = &[b"head", b"script", b"style", b"template", b"rt", b"rp", b"annotation", b"annotation-xml"];

/// Elements that start and end a line.
const BLOCKS: &[&[u8]] = &[
    b"address",
    b"article",
    b"aside",
    b"blockquote",
    b"body",
    b"br",
    b"caption",
    b"center",
    b"dd",
    b"details",
    b"dialog",
    b"dir",
    b"div",
    b"dl",
    b"dt",
    b"fieldset",
    b"figcaption",
    b"figure",
    b"footer",
    b"form",
    b"h1",
    b"h2",
    b"h3",
    b"h4",
    b"h5",
    b"h6",
    b"header",
    b"hgroup",
    b"hr",
    b"html",
    b"legend",
    b"li",
    b"main",
    b"menu",
    b"nav",
    b"noscript",
    b"ol",
    b"p",
    b"pre",
    b"section",
    b"summary",
    b"table",
    b"tbody",
    b"tfoot",
    b"thead",
    b"tr",
    b"ul",
];

/// Extracts the text of the EPUB at `path`, calling `each` once per spine document that has any
/// text, in spine order. An error from `each` stops the walk and is returned as is.
///
/// The file is sniffed first, so a non-EPUB gives the same reason codes `inspect_file` does.
/// Hostile archives fail like `quick_metadata` (zip bomb, XML entity bomb, unsafe names,
/// corruption of the container or package). Damage inside one content document costs that
/// document, not the book: it is skipped or cut short with a warning. A document over
/// `max_entry_bytes` is truncated with a warning, and the walk stops with a warning once
/// `max_text_chars` characters have been produced.
pub fn extract_epub_text(
    path: &Path,
    limits: &Limits,
    each: &mut dyn FnMut(TextSection) -> Result<(), FormatError>,
) -> Result<ExtractSummary, FormatError> {
    if sniff::sniff_file(path)? != BookFormat::Epub {
        return Err(FormatError::Unrecognized);
    }
    let mut archive = zipsafe::open_checked(path, limits)?;
    let (opf_path, pkg) = epub::open_package(&mut archive, limits)?;
    let mut warnings = Warnings::default();
    let mut toc_warnings = Vec::new();
    let toc = epub::read_toc(&mut archive, &opf_path, &pkg.manifest, pkg.spine_toc.as_deref(), limits, &mut toc_warnings)?;
    toc_warnings.into_iter().for_each(|w| warnings.push(w));

    // Document path → title of the first TOC entry that points into it.
    let mut toc_titles: HashMap<String, String> = HashMap::new();
    for entry in toc {
        let doc = entry.href.split('#').next().unwrap_or_default();
        if !doc.is_empty() && !doc.contains("://") {
            toc_titles.entry(percent_decode(doc)).or_insert(entry.title);
        }
    }
    let mut by_id: HashMap<&str, &ManifestItem> = HashMap::new();
    for item in &pkg.manifest {
        by_id.entry(item.id.as_str()).or_insert(item);
    }
    // The package's children are metadata, manifest, spine in every valid OPF, hence 6.
    let spine_step = pkg.spine_step.unwrap_or(6);

    let mut summary = ExtractSummary::default();
    let mut seen_entries: HashSet<usize> = HashSet::new();
    let mut entries = EntryIndex::default();
    let mut inflated: u64 = 0;
    for (position, itemref) in pkg.spine.iter().enumerate() {
        // The spine is capped at 100 000 items when parsed, so this never saturates.
        let index = u32::try_from(position).unwrap_or(u32::MAX);
        let Some(item) = by_id.get(itemref.idref.as_str()) else {
            warnings.push(format!("spine item {index} refers to unknown manifest id {:?}", itemref.idref));
            continue;
        };
        let media = item.media_type.trim().to_ascii_lowercase();
        if !matches!(media.as_str(), "application/xhtml+xml" | "text/html" | "image/svg+xml" | "application/xml" | "text/xml") {
            if !media.starts_with("image/") {
                warnings.push(format!("spine item {index} has media type {media:?}; no text read"));
            }
            continue;
        }
        let href = resolve(&opf_path, &item.href);
        let href = href.split('#').next().unwrap_or_default().to_owned();
        let Some(entry) = entries.find(&archive, &href) else {
            warnings.push(format!("spine item {index}: {href:?} is missing from the archive"));
            continue;
        };
        // Reading one entry once keeps total inflation within what the archive declared and
        // was vetted for, whatever number of itemrefs point at it.
        if !seen_entries.insert(entry) {
            warnings.push(format!("spine item {index}: {href:?} already extracted"));
            continue;
        }
        let (raw, truncated) = match read_entry_prefix(&mut archive, entry, limits.max_entry_bytes) {
            Ok(read) => read,
            Err(FormatError::Corrupt(why)) => {
                warnings.push(format!("spine item {index} skipped: {why}"));
                continue;
            }
            Err(e) => return Err(e),
        };
        inflated = inflated.saturating_add(raw.len() as u64);
        if inflated > limits.max_total_uncompressed {
            return Err(FormatError::ArchiveBomb(format!("content documents inflate past {} bytes", limits.max_total_uncompressed)));
        }
        if truncated {
            warnings.push(format!("{href:?} is over {} bytes; only its start was read", limits.max_entry_bytes));
        }
        let raw = to_utf8(&raw);
        reject_entity_declarations(&raw)?;
        let doc = document_text(&raw);
        drop(raw);
        if let Some(why) = doc.error {
            // A cut-short document always ends mid-markup; only other damage is news.
            if !truncated {
                warnings.push(format!("{href:?} is malformed ({why}); text up to there kept"));
            }
        }
        if doc.text.is_empty() {
            continue;
        }

        let remaining = limits.max_text_chars.saturating_sub(summary.chars);
        let mut text = doc.text;
        let mut count = text.chars().count() as u64;
        let over = count > remaining;
        if over {
            let cut = text.char_indices().nth(remaining as usize).map_or(text.len(), |(i, _)| i);
            text.truncate(cut);
            count = remaining;
        }
        if !text.is_empty() {
            let title = toc_titles.get(&percent_decode(&href)).cloned().or(doc.heading);
            // The entry's real name, which may differ in case or encoding from the manifest's.
            let href = archive.name_for_index(entry).map_or(href, str::to_owned);
            let location = cfi(spine_step, position, &itemref.idref, doc.body_step);
            each(TextSection { index, title, href, location, linear: itemref.linear, text })?;
            summary.sections += 1;
            summary.chars += count;
        }
        if over {
            warnings.push(format!("stopped at {} characters (the text limit) in spine item {index}", limits.max_text_chars));
            break;
        }
    }
    summary.warnings = warnings.finish();
    Ok(summary)
}

/// Archive lookups as `zipsafe::find_entry` does them (exact, percent-decoded, then ignoring
/// case), but with the case-insensitive table built once: a scan per spine item would cost
/// items × entries, which a hostile book can make 10^10.
#[derive(Default)]
struct EntryIndex {
    folded: Option<HashMap<String, usize>>,
}

impl EntryIndex {
    fn find(&mut self, archive: &Archive, path: &str) -> Option<usize> {
        if let Some(i) = archive.index_for_name(path) {
            return Some(i);
        }
        let decoded = percent_decode(path);
        if let Some(i) = archive.index_for_name(&decoded) {
            return Some(i);
        }
        let folded = self.folded.get_or_insert_with(|| {
            let mut map = HashMap::with_capacity(archive.len());
            for i in 0..archive.len() {
                if let Some(name) = archive.name_for_index(i) {
                    map.entry(name.to_ascii_lowercase()).or_insert(i);
                }
            }
            map
        });
        folded.get(&decoded.to_ascii_lowercase()).copied()
    }
}

#[derive(Default)]
struct Warnings {
    list: Vec<String>,
    dropped: usize,
}

impl Warnings {
    fn push(&mut self, w: String) {
        if self.list.len() < MAX_WARNINGS {
            self.list.push(w);
        } else {
            self.dropped += 1;
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.dropped > 0 {
            self.list.push(format!("{} more warnings not shown", self.dropped));
        }
        self.list
    }
}

/// `epubcfi(/6/N[idref]!/B)`: spine step, even step of the itemref with its id assertion, then
/// the body element inside the document. Without a body (SVG) the CFI stops at the itemref.
fn cfi(spine_step: u32, position: usize, idref: &str, body_step: Option<u32>) -> String {
    let item_step = (position as u64 + 1) * 2;
    let mut out = format!("epubcfi(/{spine_step}/{item_step}");
    if !idref.is_empty() {
        out.push('[');
        for c in idref.chars() {
            // CFI reserves these inside assertions; `^` escapes them.
            if matches!(c, '^' | '[' | ']' | '(' | ')' | ',' | ';' | '=') {
                out.push('^');
            }
            out.push(c);
        }
        out.push(']');
    }
    if let Some(b) = body_step {
        out.push_str(&format!("!/{b}"));
    }
    out.push(')');
    out
}

/// Content documents may be UTF-16 (with a BOM); the XML reader here only reads UTF-8.
fn to_utf8(raw: &[u8]) -> Cow<'_, [u8]> {
    let (little, body) = match raw {
        [0xFF, 0xFE, rest @ ..] => (true, rest),
        [0xFE, 0xFF, rest @ ..] => (false, rest),
        _ => return Cow::Borrowed(raw),
    };
    let units = body.chunks_exact(2).map(|p| if little { u16::from_le_bytes([p[0], p[1]]) } else { u16::from_be_bytes([p[0], p[1]]) });
    let s: String = char::decode_utf16(units).map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER)).collect();
    Cow::Owned(s.into_bytes())
}

/// The text of one document plus what sections need besides it.
#[derive(Debug, Default)]
struct DocText {
    text: String,
    heading: Option<String>,
    /// CFI step of `<body>` among the root's children (head = 2, body = 4 usually).
    body_step: Option<u32>,
    /// Why parsing stopped early, if it did; the text up to that point is kept.
    error: Option<String>,
}

fn document_text(raw: &[u8]) -> DocText {
    let mut r = Reader::from_reader(raw);
    let cfg = r.config_mut();
    // Whitespace between inline elements matters ("<b>Call</b> <i>me</i>"), so no trimming;
    // sloppy end tags are tolerated as in the navigation code.
    cfg.trim_text(false);
    cfg.expand_empty_elements = true;
    cfg.check_end_names = false;
    cfg.allow_unmatched_ends = true;

    let mut doc = DocText::default();
    let mut out = TextBuf::default();
    let mut depth = 0u32;
    let mut root_children = 0u32;
    // Depth of the skipped element (script, rt, ...) we are inside, if any.
    let mut skip_from: Option<u32> = None;
    let mut pre_from: Option<u32> = None;
    let mut heading: Option<(u32, String)> = None;
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) => {
                depth = depth.saturating_add(1);
                let name = e.local_name().as_ref().to_ascii_lowercase();
                if depth == 2 {
                    root_children = root_children.saturating_add(1);
                    if name == b"body" && doc.body_step.is_none() {
                        doc.body_step = Some(root_children.saturating_mul(2));
                    }
                }
                if skip_from.is_some() {
                    continue;
                }
                if SKIPPED.contains(&name.as_slice()) {
                    skip_from = Some(depth);
                    continue;
                }
                if BLOCKS.contains(&name.as_slice()) {
                    out.line_break();
                } else if name == b"td" || name == b"th" {
                    out.space();
                }
                if name == b"pre" && pre_from.is_none() {
                    pre_from = Some(depth);
                }
                if heading.is_none() && doc.heading.is_none() && is_heading(&name) {
                    heading = Some((depth, String::new()));
                }
                // Image-only books (manga, fixed layout) carry their words in alt text, which is
                // also what a screen reader would read out.
                if name == b"img" {
                    if let Some(alt) = attr(&e, b"alt").filter(|a| !a.trim().is_empty()) {
                        out.space();
                        out.push(&alt, false);
                        out.space();
                        if let Some((_, h)) = heading.as_mut() {
                            h.push_str(&alt);
                        }
                    }
                }
            }
            Ok(Event::End(e)) => {
                let closing = depth;
                depth = depth.saturating_sub(1);
                if let Some(from) = skip_from {
                    if closing <= from {
                        skip_from = None;
                    }
                    continue;
                }
                let name = e.local_name().as_ref().to_ascii_lowercase();
                if BLOCKS.contains(&name.as_slice()) {
                    out.line_break();
                }
                if pre_from.is_some_and(|d| closing <= d) {
                    pre_from = None;
                }
                if heading.as_ref().is_some_and(|(d, _)| closing <= *d) {
                    if let Some((_, h)) = heading.take() {
                        let h = normalize_space(&h);
                        if !h.is_empty() {
                            doc.heading = Some(h);
                        }
                    }
                }
            }
            Ok(Event::Text(t)) if skip_from.is_none() => {
                let s = unescape_lenient(&t);
                out.push(&s, pre_from.is_some());
                if let Some((_, h)) = heading.as_mut() {
                    h.push_str(&s);
                }
            }
            Ok(Event::CData(t)) if skip_from.is_none() => {
                let s = String::from_utf8_lossy(&t);
                out.push(&s, pre_from.is_some());
                if let Some((_, h)) = heading.as_mut() {
                    h.push_str(&s);
                }
            }
            Ok(Event::Eof) => break,
            Err(e) => {
                doc.error = Some(format!("{e} near byte {}", r.buffer_position()));
                break;
            }
            Ok(_) => {}
        }
    }
    doc.text = out.text;
    doc
}

fn is_heading(name: &[u8]) -> bool {
    matches!(name, [b'h', b'1'..=b'6'])
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
enum Gap {
    #[default]
    None,
    /// Spaces or tabs only.
    Space,
    /// The whitespace run crossed a line end in the source.
    SegmentBreak,
}

/// Builds collapsed text: whitespace runs become one space, block boundaries one newline, and
/// nothing leads or trails a line.
#[derive(Default)]
struct TextBuf {
    text: String,
    last: Option<char>,
    gap: Gap,
    newline: bool,
}

impl TextBuf {
    fn line_break(&mut self) {
        self.newline = true;
        self.gap = Gap::None;
    }

    fn space(&mut self) {
        self.gap = self.gap.max(Gap::Space);
    }

    fn push(&mut self, s: &str, pre: bool) {
        for c in s.chars() {
            match c {
                // Invisible marks that would split words for search.
                '\u{ad}' | '\u{200b}' | '\u{feff}' => {}
                '\n' | '\r' if pre => self.line_break(),
                '\n' | '\r' => self.gap = Gap::SegmentBreak,
                c if c.is_whitespace() => self.space(),
                c if c.is_control() => {}
                c => self.push_char(c),
            }
        }
    }

    fn push_char(&mut self, c: char) {
        if let Some(last) = self.last {
            if self.newline {
                self.text.push('\n');
            } else {
                match self.gap {
                    Gap::None => {}
                    Gap::Space => self.text.push(' '),
                    // CSS Text 3: a source line break between two CJK characters is not a space,
                    // so "学而\n时习之" stays one phrase.
                    Gap::SegmentBreak if is_cjk(last) && is_cjk(c) => {}
                    Gap::SegmentBreak => self.text.push(' '),
                }
            }
        }
        self.newline = false;
        self.gap = Gap::None;
        self.text.push(c);
        self.last = Some(c);
    }
}

/// Scripts written without spaces between words (Han, kana, and their punctuation).
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x2E80..=0x2FDF      // radicals
        | 0x3000..=0x303F    // CJK symbols and punctuation
        | 0x3040..=0x30FF    // hiragana, katakana
        | 0x3100..=0x312F    // bopomofo
        | 0x31F0..=0x31FF    // katakana extensions
        | 0x3400..=0x4DBF    // extension A
        | 0x4E00..=0x9FFF    // unified ideographs
        | 0xF900..=0xFAFF    // compatibility ideographs
        | 0xFF00..=0xFFEF    // full- and half-width forms
        | 0x20000..=0x3134F) // extensions B and later
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(html: &str) -> DocText {
        document_text(html.as_bytes())
    }

    #[test]
    fn blocks_inline_and_whitespace() {
        let d = text(
            "<html><head><title>T</title><style>p{}</style></head><body>\n<h2>One\n  two</h2><p>Call <b>me</b>\n   <i>Ishmael</i>.</p>\
             <div><p>a</p><p>b<br/>c</p></div><script>var x = 1;</script><ul><li>x</li><li>y</li></ul>\
             <table><tr><td>1</td><td>2</td></tr></table></body></html>",
        );
        assert_eq!(d.text, "One two\nCall me Ishmael.\na\nb\nc\nx\ny\n1 2");
        assert_eq!(d.heading.as_deref(), Some("One two"));
        assert_eq!(d.body_step, Some(4));
        assert!(d.error.is_none());
    }

    #[test]
    fn cjk_ruby_entities_and_pre() {
        let d = text("<html><body><p>学而\n时习之，<ruby>不<rp>(</rp><rt>bù</rt><rp>)</rp></ruby>亦说乎</p><p>R&amp;D &mdash;&#x8BBA;&nbsp;x&shy;y</p><pre>a  b\nc</pre></body></html>");
        assert_eq!(d.text, "学而时习之，不亦说乎\nR&D —论 xy\na b\nc");
        assert_eq!(d.heading, None);
    }

    #[test]
    fn body_step_counts_root_children_and_damage_keeps_text() {
        let d = text("<html><body><p>only body</p></body></html>");
        assert_eq!(d.body_step, Some(2));
        let d = text("<html><head/><body><p>kept</p><p>cut <");
        assert_eq!(d.text, "kept\ncut");
        assert!(d.error.is_some());
        let d = text("");
        assert!(d.text.is_empty() && d.body_step.is_none());
    }

    #[test]
    fn utf16_documents_are_read() {
        let mut raw = vec![0xFF, 0xFE];
        for u in "<html><body><p>論語</p></body></html>".encode_utf16() {
            raw.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(document_text(&to_utf8(&raw)).text, "論語");
    }

    #[test]
    fn cfi_shape_and_escaping() {
        assert_eq!(cfi(6, 1, "chap01ref", Some(4)), "epubcfi(/6/4[chap01ref]!/4)");
        assert_eq!(cfi(6, 0, "a[1]", None), "epubcfi(/6/2[a^[1^]])");
        assert_eq!(cfi(8, 2, "", Some(2)), "epubcfi(/8/6!/2)");
    }
}
