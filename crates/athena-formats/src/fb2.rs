//! FB2 quick metadata from `<description>` (title-info, publish-info), read from a bounded prefix:
//! the description comes first, embedded images (base64, often megabytes) come last.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use quick_xml::events::Event;

use crate::sniff::find;
use crate::xml::{normalize_space, reader, reject_entity_declarations, unescape_lenient};
use crate::{FormatError, QuickMetadata};

const HEAD_BYTES: u64 = 512 << 10;

pub(crate) fn quick_metadata(path: &Path) -> Result<QuickMetadata, FormatError> {
    let mut head = Vec::new();
    File::open(path)?.take(HEAD_BYTES).read_to_end(&mut head)?;
    if head.is_empty() {
        return Err(FormatError::Empty);
    }
    reject_entity_declarations(&head)?;
    let mut meta = QuickMetadata::default();
    if !declares_utf8(&head) {
        // Without an encoding converter the text would be mojibake; leave it to the converter.
        meta.warnings.push("FB2 is not UTF-8; metadata left to conversion".into());
        return Ok(meta);
    }
    parse(&head, &mut meta);
    Ok(meta)
}

fn declares_utf8(head: &[u8]) -> bool {
    let decl_end = find(&head[..head.len().min(200)], b"?>").unwrap_or(0);
    let decl = String::from_utf8_lossy(&head[..decl_end]).to_ascii_lowercase();
    match decl.find("encoding=") {
        None => true,
        Some(i) => {
            let v = decl[i + 9..].trim_start_matches(['"', '\'']);
            v.starts_with("utf-8") || v.starts_with("utf8")
        }
    }
}

fn parse(raw: &[u8], meta: &mut QuickMetadata) {
    let mut r = reader(raw);
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut text = String::new();
    let mut author: Vec<String> = Vec::new();
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) => {
                let name = e.local_name().as_ref().to_vec();
                if name == b"author" {
                    author.clear();
                }
                stack.push(name);
                text.clear();
                if stack.len() > 64 {
                    break;
                }
            }
            Ok(Event::Text(t)) => {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(&unescape_lenient(&t));
            }
            Ok(Event::End(_)) => {
                let in_title_info = stack.iter().any(|n| n == b"title-info");
                let in_publish_info = stack.iter().any(|n| n == b"publish-info");
                let in_author = stack.iter().any(|n| n == b"author");
                let Some(name) = stack.pop() else { break };
                let value = normalize_space(&text);
                let in_annotation = stack.iter().any(|n| n == b"annotation");
                text.clear();
                match name.as_slice() {
                    // Everything needed is in the description; the body may be cut off anyway.
                    b"description" => break,
                    b"author" if in_title_info => {
                        let full = author.join(" ");
                        if !full.is_empty() && !meta.authors.contains(&full) {
                            meta.authors.push(full);
                        }
                        continue;
                    }
                    _ => {}
                }
                if value.is_empty() {
                    continue;
                }
                match name.as_slice() {
                    b"book-title" if in_title_info => meta.title = Some(value),
                    b"first-name" | b"middle-name" | b"last-name" | b"nickname" if in_author && in_title_info => author.push(value),
                    b"lang" if in_title_info => meta.language = Some(value),
                    b"publisher" if in_publish_info => meta.publisher = Some(value),
                    b"isbn" if in_publish_info => meta.identifiers.push(value),
                    b"p" if in_annotation && in_title_info => {
                        let d = meta.description.get_or_insert_with(String::new);
                        if !d.is_empty() {
                            d.push('\n');
                        }
                        d.push_str(&value);
                    }
                    _ => {}
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_info() {
        let raw = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><FictionBook><description><title-info><author><first-name>A</first-name><last-name>B</last-name></author><book-title>论语</book-title><lang>zh</lang></title-info></description><body><p>unclosed".as_bytes();
        let mut m = QuickMetadata::default();
        assert!(declares_utf8(raw));
        parse(raw, &mut m);
        assert_eq!(m.title.as_deref(), Some("论语"));
        assert_eq!(m.authors, vec!["A B".to_owned()]);
        assert_eq!(m.language.as_deref(), Some("zh"));
        assert!(!declares_utf8(b"<?xml version=\"1.0\" encoding=\"windows-1251\"?>"));
    }
}
