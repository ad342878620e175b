//! EPUB 2/3 quick metadata: container.xml → OPF (Dublin Core), TOC from nav or NCX, cover.

use std::path::Path;

use quick_xml::events::Event;

use crate::image_header::image_info;
use crate::xml::{attr, normalize_space, reader, reject_entity_declarations, unescape_lenient};
use crate::zipsafe::{self, read_entry, resolve, Archive};
use crate::{Cover, FormatError, Limits, QuickMetadata, TocEntry};

/// Guards against absurd navigation documents; real books have at most a few thousand entries.
const MAX_TOC_ENTRIES: usize = 10_000;

pub(crate) fn quick_metadata(path: &Path, limits: &Limits) -> Result<QuickMetadata, FormatError> {
    let mut archive = zipsafe::open_checked(path, limits)?;
    let (opf_path, pkg) = open_package(&mut archive, limits)?;

    let mut meta = QuickMetadata {
        title: pkg.titles.into_iter().next(),
        authors: pkg.creators,
        language: pkg.languages.into_iter().next(),
        publisher: pkg.publisher,
        identifiers: pkg.identifiers,
        description: pkg.description,
        ..QuickMetadata::default()
    };

    meta.toc = read_toc(&mut archive, &opf_path, &pkg.manifest, pkg.spine_toc.as_deref(), limits, &mut meta.warnings)?;
    meta.cover = read_cover(&mut archive, &opf_path, &pkg.manifest, pkg.cover_id.as_deref(), limits, &mut meta.warnings)?;
    Ok(meta)
}

/// container.xml → package document path and its parsed content.
pub(crate) fn open_package(archive: &mut Archive, limits: &Limits) -> Result<(String, Package), FormatError> {
    let container = read_entry(archive, "META-INF/container.xml", limits.max_entry_bytes)?
        .ok_or_else(|| FormatError::corrupt("missing META-INF/container.xml"))?;
    reject_entity_declarations(&container)?;
    let opf_path = rootfile(&container).ok_or_else(|| FormatError::corrupt("container.xml names no package document"))?;
    let opf = read_entry(archive, &opf_path, limits.max_entry_bytes)?
        .ok_or_else(|| FormatError::corrupt(format!("missing package document {opf_path:?}")))?;
    reject_entity_declarations(&opf)?;
    let pkg = parse_opf(&opf)?;
    Ok((opf_path, pkg))
}

fn rootfile(container: &[u8]) -> Option<String> {
    let mut r = reader(container);
    let mut first = None;
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) if e.local_name().as_ref() == b"rootfile" => {
                let Some(full) = attr(&e, b"full-path").filter(|p| !p.is_empty()) else {
                    continue;
                };
                if attr(&e, b"media-type").as_deref() == Some("application/oebps-package+xml") {
                    return Some(full);
                }
                first.get_or_insert(full);
            }
            Ok(Event::Eof) | Err(_) => return first,
            Ok(_) => {}
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct ManifestItem {
    pub(crate) id: String,
    pub(crate) href: String,
    pub(crate) media_type: String,
    pub(crate) properties: String,
}

/// One `<spine><itemref>`: which manifest item, and whether it is in the linear reading order.
#[derive(Debug)]
pub(crate) struct SpineRef {
    pub(crate) idref: String,
    pub(crate) linear: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Package {
    titles: Vec<String>,
    creators: Vec<String>,
    languages: Vec<String>,
    publisher: Option<String>,
    identifiers: Vec<String>,
    description: Option<String>,
    cover_id: Option<String>,
    pub(crate) spine_toc: Option<String>,
    pub(crate) manifest: Vec<ManifestItem>,
    pub(crate) spine: Vec<SpineRef>,
    /// CFI step of `<spine>` among the children of `<package>` (2 × its 1-based position).
    pub(crate) spine_step: Option<u32>,
}

#[derive(Clone, Copy, PartialEq)]
enum Dc {
    Title,
    Creator,
    Language,
    Publisher,
    Identifier,
    Description,
}

/// Real spines have hundreds of items; this only stops absurd ones from growing memory.
const MAX_SPINE_ITEMS: usize = 100_000;

pub(crate) fn parse_opf(raw: &[u8]) -> Result<Package, FormatError> {
    let mut r = reader(raw);
    let mut pkg = Package::default();
    let mut in_metadata = false;
    let mut in_spine = false;
    let mut capture: Option<(Dc, String)> = None;
    let mut saw_package = false;
    // Element depth (package = 1) and count of package children, for the spine's CFI step.
    let mut depth = 0u32;
    let mut package_children = 0u32;
    loop {
        let event = match r.read_event() {
            Ok(ev) => ev,
            Err(e) => {
                // Keep what was read before the damage; only a package with nothing is corrupt.
                if !saw_package {
                    return Err(FormatError::corrupt(format!("malformed package document: {e}")));
                }
                break;
            }
        };
        match event {
            Event::Start(e) => {
                depth = depth.saturating_add(1);
                let name = e.local_name();
                if saw_package && depth == 2 {
                    package_children = package_children.saturating_add(1);
                }
                match name.as_ref() {
                    b"package" => saw_package = true,
                    b"metadata" => in_metadata = true,
                    b"meta" if in_metadata && attr(&e, b"name").as_deref() == Some("cover") => {
                        pkg.cover_id = attr(&e, b"content");
                    }
                    b"item" => pkg.manifest.push(ManifestItem {
                        id: attr(&e, b"id").unwrap_or_default(),
                        href: attr(&e, b"href").unwrap_or_default(),
                        media_type: attr(&e, b"media-type").unwrap_or_default(),
                        properties: attr(&e, b"properties").unwrap_or_default(),
                    }),
                    b"spine" => {
                        pkg.spine_toc = attr(&e, b"toc");
                        in_spine = true;
                        if depth == 2 && pkg.spine_step.is_none() {
                            pkg.spine_step = Some(package_children.saturating_mul(2));
                        }
                    }
                    b"itemref" if in_spine && pkg.spine.len() < MAX_SPINE_ITEMS => {
                        // `linear` defaults to yes; only an explicit "no" takes an item out.
                        let linear = attr(&e, b"linear").is_none_or(|v| v.trim() != "no");
                        pkg.spine.push(SpineRef { idref: attr(&e, b"idref").unwrap_or_default(), linear });
                    }
                    other if in_metadata => {
                        let field = match other {
                            b"title" => Some(Dc::Title),
                            b"creator" => Some(Dc::Creator),
                            b"language" => Some(Dc::Language),
                            b"publisher" => Some(Dc::Publisher),
                            b"identifier" => Some(Dc::Identifier),
                            b"description" => Some(Dc::Description),
                            _ => None,
                        };
                        if let Some(f) = field {
                            capture = Some((f, String::new()));
                        }
                    }
                    _ => {}
                }
            }
            Event::Text(t) => {
                if let Some((_, buf)) = capture.as_mut() {
                    buf.push_str(&unescape_lenient(&t));
                }
            }
            Event::CData(t) => {
                if let Some((_, buf)) = capture.as_mut() {
                    buf.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::End(e) => {
                depth = depth.saturating_sub(1);
                let name = e.local_name();
                match name.as_ref() {
                    b"metadata" => in_metadata = false,
                    b"spine" => in_spine = false,
                    _ => {}
                }
                let ends_capture = matches!(
                    (capture.as_ref().map(|c| c.0), name.as_ref()),
                    (Some(Dc::Title), b"title")
                        | (Some(Dc::Creator), b"creator")
                        | (Some(Dc::Language), b"language")
                        | (Some(Dc::Publisher), b"publisher")
                        | (Some(Dc::Identifier), b"identifier")
                        | (Some(Dc::Description), b"description")
                );
                if ends_capture {
                    if let Some((field, text)) = capture.take() {
                        store(&mut pkg, field, text);
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_package {
        return Err(FormatError::corrupt("package document has no <package> element"));
    }
    Ok(pkg)
}

fn store(pkg: &mut Package, field: Dc, text: String) {
    let text = if field == Dc::Description { text.trim().to_owned() } else { normalize_space(&text) };
    if text.is_empty() {
        return;
    }
    match field {
        Dc::Title => pkg.titles.push(text),
        Dc::Creator => {
            if !pkg.creators.contains(&text) {
                pkg.creators.push(text);
            }
        }
        Dc::Language => pkg.languages.push(text),
        Dc::Publisher => {
            pkg.publisher.get_or_insert(text);
        }
        Dc::Identifier => pkg.identifiers.push(text),
        Dc::Description => {
            pkg.description.get_or_insert(text);
        }
    }
}

pub(crate) fn has_token(list: &str, token: &str) -> bool {
    list.split_ascii_whitespace().any(|t| t == token)
}

pub(crate) fn read_toc(
    archive: &mut Archive,
    opf_path: &str,
    manifest: &[ManifestItem],
    spine_toc: Option<&str>,
    limits: &Limits,
    warnings: &mut Vec<String>,
) -> Result<Vec<TocEntry>, FormatError> {
    let nav = manifest.iter().find(|i| has_token(&i.properties, "nav"));
    let ncx = spine_toc
        .and_then(|id| manifest.iter().find(|i| i.id == id))
        .or_else(|| manifest.iter().find(|i| i.media_type == "application/x-dtbncx+xml"));
    // EPUB 3 nav first; NCX when there is no nav or the nav yields nothing.
    for (item, is_nav) in [(nav, true), (ncx, false)] {
        let Some(item) = item else { continue };
        let doc_path = resolve(opf_path, &item.href);
        let raw = match read_entry(archive, &doc_path, limits.max_entry_bytes) {
            Ok(Some(raw)) => raw,
            Ok(None) => {
                warnings.push(format!("navigation document {doc_path:?} is missing"));
                continue;
            }
            Err(e @ (FormatError::Corrupt(_) | FormatError::TooLarge(_))) => {
                warnings.push(format!("navigation document {doc_path:?} unreadable: {e}"));
                continue;
            }
            Err(e) => return Err(e),
        };
        reject_entity_declarations(&raw)?;
        let toc = if is_nav { parse_nav(&raw, &doc_path) } else { parse_ncx(&raw, &doc_path) };
        if !toc.is_empty() {
            return Ok(toc);
        }
    }
    Ok(Vec::new())
}

/// EPUB 3 navigation document: the `<nav epub:type="toc">` (or the first nav), with the level
/// given by `<ol>` nesting.
fn parse_nav(raw: &[u8], doc_path: &str) -> Vec<TocEntry> {
    let mut r = reader(raw);
    let mut toc = Vec::new();
    let mut nav_depth = 0u32; // >0 while inside the chosen nav
    let mut in_toc_nav = false;
    let mut done_with_toc_nav = false;
    let mut ol_depth = 0u32;
    let mut link: Option<(String, String)> = None;
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) => match e.local_name().as_ref() {
                b"nav" if nav_depth > 0 => nav_depth += 1,
                b"nav" if !done_with_toc_nav => {
                    let kind = attr(&e, b"type").unwrap_or_default();
                    // Only the toc nav counts once one is found; a non-toc nav is a fallback
                    // used when nothing has been collected.
                    if has_token(&kind, "toc") {
                        toc.clear();
                        nav_depth = 1;
                        ol_depth = 0;
                        in_toc_nav = true;
                    } else if toc.is_empty() {
                        nav_depth = 1;
                        ol_depth = 0;
                    }
                }
                b"ol" if nav_depth > 0 => ol_depth += 1,
                b"a" if nav_depth > 0 => {
                    let href = attr(&e, b"href").unwrap_or_default();
                    link = Some((href, String::new()));
                }
                _ => {}
            },
            Ok(Event::Text(t)) => {
                if let Some((_, title)) = link.as_mut() {
                    title.push_str(&unescape_lenient(&t));
                    title.push(' ');
                }
            }
            Ok(Event::CData(t)) => {
                if let Some((_, title)) = link.as_mut() {
                    title.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Ok(Event::End(e)) => match e.local_name().as_ref() {
                b"nav" if nav_depth > 0 => {
                    nav_depth -= 1;
                    if nav_depth == 0 && in_toc_nav {
                        done_with_toc_nav = true;
                    }
                }
                b"ol" if nav_depth > 0 => ol_depth = ol_depth.saturating_sub(1),
                b"a" => {
                    if let Some((href, title)) = link.take() {
                        push_entry(&mut toc, doc_path, &href, &title, ol_depth.max(1));
                    }
                }
                _ => {}
            },
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
        if toc.len() >= MAX_TOC_ENTRIES {
            break;
        }
    }
    toc
}

/// EPUB 2 NCX: nested `navPoint`s, each with `navLabel/text` and `content@src`.
fn parse_ncx(raw: &[u8], doc_path: &str) -> Vec<TocEntry> {
    struct Pending {
        title: String,
        href: String,
    }
    let mut r = reader(raw);
    let mut toc = Vec::new();
    let mut stack: Vec<Pending> = Vec::new();
    let mut in_nav_map = false;
    let mut in_label_text = false;
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) => match e.local_name().as_ref() {
                b"navMap" => in_nav_map = true,
                b"navPoint" if in_nav_map => {
                    // A parent is emitted before its children so the order matches the book.
                    flush_top(&mut stack, &mut toc, doc_path);
                    stack.push(Pending { title: String::new(), href: String::new() });
                }
                b"text" if !stack.is_empty() => in_label_text = true,
                b"content" => {
                    if let Some(p) = stack.last_mut() {
                        p.href = attr(&e, b"src").unwrap_or_default();
                    }
                }
                _ => {}
            },
            Ok(Event::Text(t)) if in_label_text => {
                if let Some(p) = stack.last_mut() {
                    p.title.push_str(&unescape_lenient(&t));
                    p.title.push(' ');
                }
            }
            Ok(Event::End(e)) => match e.local_name().as_ref() {
                b"text" => in_label_text = false,
                b"navPoint" if !stack.is_empty() => {
                    flush_top(&mut stack, &mut toc, doc_path);
                    stack.pop();
                }
                b"navMap" => in_nav_map = false,
                _ => {}
            },
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
        if toc.len() >= MAX_TOC_ENTRIES {
            break;
        }
    }

    fn flush_top(stack: &mut [Pending], toc: &mut Vec<TocEntry>, doc_path: &str) {
        let level = stack.len() as u32;
        if let Some(p) = stack.last_mut() {
            if !p.title.is_empty() || !p.href.is_empty() {
                let (title, href) = (std::mem::take(&mut p.title), std::mem::take(&mut p.href));
                push_entry(toc, doc_path, &href, &title, level);
            }
        }
    }
    toc
}

fn push_entry(toc: &mut Vec<TocEntry>, doc_path: &str, href: &str, title: &str, level: u32) {
    let title = normalize_space(title);
    if title.is_empty() {
        return;
    }
    let href = if href.is_empty() || href.contains("://") { href.to_owned() } else { resolve(doc_path, href) };
    toc.push(TocEntry { title, href, level });
}

fn read_cover(
    archive: &mut Archive,
    opf_path: &str,
    manifest: &[ManifestItem],
    cover_id: Option<&str>,
    limits: &Limits,
    warnings: &mut Vec<String>,
) -> Result<Option<Cover>, FormatError> {
    let is_image = |i: &&ManifestItem| i.media_type.starts_with("image/");
    let item = manifest
        .iter()
        .find(|i| has_token(&i.properties, "cover-image"))
        .or_else(|| cover_id.and_then(|id| manifest.iter().find(|i| i.id == id)).filter(is_image))
        .or_else(|| {
            manifest
                .iter()
                .filter(is_image)
                .find(|i| i.id.to_ascii_lowercase().contains("cover") || i.href.to_ascii_lowercase().contains("cover"))
        });
    let Some(item) = item else { return Ok(None) };
    let path = resolve(opf_path, &item.href);
    let bytes = match read_entry(archive, &path, limits.max_cover_bytes) {
        Ok(Some(b)) => b,
        Ok(None) => {
            warnings.push(format!("cover {path:?} is missing from the archive"));
            return Ok(None);
        }
        Err(e @ (FormatError::Corrupt(_) | FormatError::TooLarge(_))) => {
            warnings.push(format!("cover dropped: {e}"));
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let Some(info) = image_info(&bytes) else {
        warnings.push(format!("cover {path:?} is not a PNG, JPEG, GIF or WebP image"));
        return Ok(None);
    };
    let pixels = u64::from(info.width) * u64::from(info.height);
    if pixels > limits.max_image_pixels {
        tracing::debug!(width = info.width, height = info.height, "dropping oversized cover");
        warnings.push(format!("cover dropped: {}x{} exceeds {} pixels", info.width, info.height, limits.max_image_pixels));
        return Ok(None);
    }
    Ok(Some(Cover { bytes, media_type: info.media_type.to_owned(), width: info.width, height: info.height }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opf_metadata_and_unknown_entities() {
        let opf = br#"<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title> A &amp; B &unknown; </dc:title><dc:creator>X</dc:creator><dc:creator>Y</dc:creator><meta name="cover" content="c"/></metadata><manifest><item id="c" href="i/c.jpg" media-type="image/jpeg"/></manifest><spine toc="ncx"/></package>"#;
        let p = parse_opf(opf).unwrap();
        assert_eq!(p.titles, vec!["A & B".to_owned()]);
        assert_eq!(p.creators, vec!["X".to_owned(), "Y".to_owned()]);
        assert_eq!(p.cover_id.as_deref(), Some("c"));
        assert_eq!(p.spine_toc.as_deref(), Some("ncx"));
        assert_eq!(p.manifest[0].href, "i/c.jpg");
        assert!(parse_opf(b"garbage <<<").is_err());
    }

    #[test]
    fn spine_order_linearity_and_cfi_step() {
        let opf = br#"<package><metadata/><manifest/><guide/><spine toc="ncx"><itemref idref="a"/><itemref idref="b" linear="no"/><itemref idref="c" linear="yes"/></spine></package>"#;
        let p = parse_opf(opf).unwrap();
        let got: Vec<_> = p.spine.iter().map(|s| (s.idref.as_str(), s.linear)).collect();
        assert_eq!(got, vec![("a", true), ("b", false), ("c", true)]);
        // Fourth child of <package>, whatever comes before it.
        assert_eq!(p.spine_step, Some(8));
        let p = parse_opf(br#"<package><metadata><x/></metadata><manifest/><spine/></package>"#).unwrap();
        assert_eq!(p.spine_step, Some(6));
    }

    #[test]
    fn nav_levels() {
        let nav = br#"<html><body><nav epub:type="landmarks"><ol><li><a href="x.xhtml">L</a></li></ol></nav><nav epub:type="toc"><ol><li><a href="a.xhtml">One</a><ol><li><a href="b.xhtml#s">Two &nbsp;</a></li></ol></li></ol></nav></body></html>"#;
        let toc = parse_nav(nav, "OEBPS/nav.xhtml");
        assert_eq!(toc.len(), 2);
        assert_eq!(toc[0].href, "OEBPS/a.xhtml");
        assert_eq!((toc[1].title.as_str(), toc[1].level), ("Two", 2));
        assert_eq!(toc[1].href, "OEBPS/b.xhtml#s");
    }

    #[test]
    fn ncx_levels() {
        let ncx = br#"<ncx><navMap><navPoint><navLabel><text>One</text></navLabel><content src="a.html"/><navPoint><navLabel><text>Sub</text></navLabel><content src="b.html"/></navPoint></navPoint><navPoint><navLabel><text>Two</text></navLabel><content src="c.html"/></navPoint></navMap></ncx>"#;
        let toc = parse_ncx(ncx, "toc.ncx");
        let got: Vec<_> = toc.iter().map(|e| (e.title.as_str(), e.level)).collect();
        assert_eq!(got, vec![("One", 1), ("Sub", 2), ("Two", 1)]);
    }
}
