//! DOCX quick metadata from `docProps/core.xml`, with the same archive vetting as EPUB.

use std::path::Path;

use quick_xml::events::Event;

use crate::xml::{normalize_space, reader, reject_entity_declarations, unescape_lenient};
use crate::zipsafe::{open_checked, read_entry};
use crate::{FormatError, Limits, QuickMetadata};

pub(crate) fn quick_metadata(path: &Path, limits: &Limits) -> Result<QuickMetadata, FormatError> {
    let mut archive = open_checked(path, limits)?;
    let mut meta = QuickMetadata::default();
    let Some(core) = read_entry(&mut archive, "docProps/core.xml", limits.max_entry_bytes)? else {
        return Ok(meta);
    };
    reject_entity_declarations(&core)?;
    let mut r = reader(&core);
    let mut current: Option<Vec<u8>> = None;
    let mut text = String::new();
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) => {
                current = Some(e.local_name().as_ref().to_vec());
                text.clear();
            }
            Ok(Event::Text(t)) => text.push_str(&unescape_lenient(&t)),
            Ok(Event::End(_)) => {
                let value = normalize_space(&text);
                if !value.is_empty() {
                    match current.as_deref() {
                        Some(b"title") => meta.title = Some(value),
                        Some(b"creator") => meta.authors.push(value),
                        Some(b"language") => meta.language = Some(value),
                        Some(b"description") => meta.description = Some(value),
                        Some(b"identifier") => meta.identifiers.push(value),
                        _ => {}
                    }
                }
                current = None;
                text.clear();
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    Ok(meta)
}
