//! Small helpers over quick-xml shared by the EPUB, FB2 and DOCX readers. Entity declarations are
//! refused up front; entity references are never expanded beyond the XML/HTML basics.

use quick_xml::events::BytesStart;
use quick_xml::Reader;

use crate::sniff::find;
use crate::FormatError;

/// Refuses documents that declare entities: quick-xml would not expand them, but any later
/// consumer might, and no legitimate book metadata needs them.
pub(crate) fn reject_entity_declarations(raw: &[u8]) -> Result<(), FormatError> {
    if find(raw, b"<!ENTITY").is_some() && find(raw, b"<!DOCTYPE").is_some() {
        return Err(FormatError::XmlBomb);
    }
    Ok(())
}

/// A lenient reader: trimmed text, `<a/>` seen as start+end, and mismatched end tags tolerated
/// (nav documents are often sloppy XHTML).
pub(crate) fn reader(raw: &[u8]) -> Reader<&[u8]> {
    let mut r = Reader::from_reader(raw);
    let cfg = r.config_mut();
    cfg.trim_text(true);
    cfg.expand_empty_elements = true;
    cfg.check_end_names = false;
    r
}

/// Decodes text content: predefined and numeric entities plus `&nbsp;`; any other entity
/// reference is dropped rather than failing or expanding anything.
pub(crate) fn unescape_lenient(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    if !s.contains('&') {
        return s.into_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest: &str = &s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let end = after.char_indices().take(32).find(|&(_, c)| c == ';').map(|(i, _)| i);
        match end {
            Some(end) => {
                if let Some(c) = entity_char(&after[..end]) {
                    out.push(c);
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity_char(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            if let Some(c) = html_entity(name) {
                return Some(c);
            }
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

/// Named HTML entities that EPUB 2 books (XHTML 1.1 with its DTD) use without declaring them:
/// Latin-1 by code point, plus the usual typography. Anything else is dropped by the caller.
fn html_entity(name: &str) -> Option<char> {
    const LATIN1: [&str; 96] = [
        "nbsp", "iexcl", "cent", "pound", "curren", "yen", "brvbar", "sect", "uml", "copy", "ordf", "laquo", "not", "shy", "reg", "macr",
        "deg", "plusmn", "sup2", "sup3", "acute", "micro", "para", "middot", "cedil", "sup1", "ordm", "raquo", "frac14", "frac12",
        "frac34", "iquest", "Agrave", "Aacute", "Acirc", "Atilde", "Auml", "Aring", "AElig", "Ccedil", "Egrave", "Eacute", "Ecirc", "Euml",
        "Igrave", "Iacute", "Icirc", "Iuml", "ETH", "Ntilde", "Ograve", "Oacute", "Ocirc", "Otilde", "Ouml", "times", "Oslash", "Ugrave",
        "Uacute", "Ucirc", "Uuml", "Yacute", "THORN", "szlig", "agrave", "aacute", "acirc", "atilde", "auml", "aring", "aelig", "ccedil",
        "egrave", "eacute", "ecirc", "euml", "igrave", "iacute", "icirc", "iuml", "eth", "ntilde", "ograve", "oacute", "ocirc", "otilde",
        "ouml", "divide", "oslash", "ugrave", "uacute", "ucirc", "uuml", "yacute", "thorn", "yuml",
    ];
    if let Some(i) = LATIN1.iter().position(|&n| n == name) {
        return char::from_u32(0xA0 + i as u32);
    }
    let c = match name {
        "ensp" => '\u{2002}',
        "emsp" => '\u{2003}',
        "thinsp" => '\u{2009}',
        "zwnj" => '\u{200c}',
        "zwj" => '\u{200d}',
        "ndash" => '\u{2013}',
        "mdash" => '\u{2014}',
        "lsquo" => '\u{2018}',
        "rsquo" => '\u{2019}',
        "sbquo" => '\u{201a}',
        "ldquo" => '\u{201c}',
        "rdquo" => '\u{201d}',
        "bdquo" => '\u{201e}',
        "dagger" => '\u{2020}',
        "Dagger" => '\u{2021}',
        "bull" => '\u{2022}',
        "hellip" => '\u{2026}',
        "permil" => '\u{2030}',
        "prime" => '\u{2032}',
        "Prime" => '\u{2033}',
        "lsaquo" => '\u{2039}',
        "rsaquo" => '\u{203a}',
        "euro" => '\u{20ac}',
        "trade" => '\u{2122}',
        "larr" => '\u{2190}',
        "rarr" => '\u{2192}',
        "minus" => '\u{2212}',
        "OElig" => '\u{152}',
        "oelig" => '\u{153}',
        "Scaron" => '\u{160}',
        "scaron" => '\u{161}',
        "Yuml" => '\u{178}',
        "fnof" => '\u{192}',
        "circ" => '\u{2c6}',
        "tilde" => '\u{2dc}',
        _ => return None,
    };
    Some(c)
}

/// Value of the attribute whose local name is `local` (namespace prefix ignored).
pub(crate) fn attr(e: &BytesStart<'_>, local: &[u8]) -> Option<String> {
    e.attributes().with_checks(false).flatten().find(|a| a.key.local_name().as_ref() == local).map(|a| unescape_lenient(&a.value))
}

/// Collapses runs of whitespace, as XML text in titles often spans lines.
pub(crate) fn normalize_space(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_entities() {
        assert_eq!(unescape_lenient(b"a &amp; b &lol9; &#x8BBA;&#35821;"), "a & b  论语");
        assert_eq!(unescape_lenient(b"R&D &"), "R&D &");
        assert_eq!(unescape_lenient(b"&nbsp;&eacute;&yuml;&mdash;&hellip;"), "\u{a0}éÿ—…");
        assert_eq!(unescape_lenient("&\u{4e00}".as_bytes()), "&\u{4e00}");
    }

    #[test]
    fn entity_declarations_rejected() {
        let bomb = b"<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"b\">]><x>&a;</x>";
        assert!(matches!(reject_entity_declarations(bomb), Err(FormatError::XmlBomb)));
        assert!(reject_entity_declarations(b"<!DOCTYPE html><html/>").is_ok());
    }
}
