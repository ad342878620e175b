//! Test helper: pull the declared cover image out of the corpus EPUBs.
//! (Shared with `examples/cover_timing.rs` through `#[path]`.)
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};

/// The shared test corpus: `ATHENA_CORPUS`, else `shared/corpus` next to the repository.
pub fn corpus() -> PathBuf {
    std::env::var_os("ATHENA_CORPUS")
        .map(PathBuf::from)
        .into_iter()
        .chain([Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"), PathBuf::from("/work/shared/corpus")])
        .find(|d| d.join("truth.json").is_file())
        .expect("the shared corpus (set ATHENA_CORPUS, or keep shared/ next to the repository)")
}

/// Entries larger than this are not read, even in tests (the image bomb is 170 KB compressed).
const MAX_ENTRY: u64 = 64 * 1024 * 1024;

pub fn read_entry(zip: &mut zip::ZipArchive<std::fs::File>, name: &str) -> Option<Vec<u8>> {
    let entry = zip.by_name(name).ok()?;
    let mut out = Vec::new();
    entry.take(MAX_ENTRY).read_to_end(&mut out).ok()?;
    Some(out)
}

/// The value of `attr="..."` (or single-quoted) inside one tag's text.
fn attr<'a>(tag: &'a str, attr: &str) -> Option<&'a str> {
    for quote in ['"', '\''] {
        let needle = format!(" {attr}={quote}");
        if let Some(start) = tag.find(&needle) {
            let rest = &tag[start + needle.len()..];
            return rest.find(quote).map(|end| &rest[..end]);
        }
    }
    None
}

fn tags<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name}");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i..];
        let end = after.find('>').unwrap_or(after.len());
        out.push(&after[..end]);
        rest = &after[end..];
    }
    out
}

/// Joins `href` onto the OPF's folder, resolving `..`.
fn resolve(opf_path: &str, href: &str) -> String {
    let mut parts: Vec<&str> = opf_path.split('/').collect();
    parts.pop();
    for seg in href.split('/') {
        match seg {
            ".." => {
                parts.pop();
            }
            "." | "" => {}
            s => parts.push(s),
        }
    }
    parts.join("/")
}

/// The cover image declared by an EPUB (EPUB 3 `cover-image` property or EPUB 2 `<meta name="cover">`).
pub fn epub_cover(path: &Path) -> Option<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).ok()?).ok()?;
    let container = String::from_utf8(read_entry(&mut zip, "META-INF/container.xml")?).ok()?;
    let opf_path = tags(&container, "rootfile").into_iter().find_map(|t| attr(t, "full-path"))?.to_owned();
    let opf = String::from_utf8(read_entry(&mut zip, &opf_path)?).ok()?;
    let items = tags(&opf, "item");
    let by_property = items.iter().find(|t| attr(t, "properties").is_some_and(|p| p.split_whitespace().any(|p| p == "cover-image")));
    let by_meta = || {
        let id = tags(&opf, "meta").into_iter().find(|t| attr(t, "name") == Some("cover")).and_then(|t| attr(t, "content"))?;
        items.iter().find(|t| attr(t, "id") == Some(id))
    };
    let item = by_property.or_else(by_meta)?;
    let media_type = attr(item, "media-type").unwrap_or("");
    if !media_type.starts_with("image/") {
        return None;
    }
    let name = resolve(&opf_path, attr(item, "href")?);
    let bytes = read_entry(&mut zip, &name)?;
    Some((name, bytes))
}

/// All corpus EPUBs (zh/ and epub/) with a declared image cover.
pub fn corpus_covers() -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in ["zh", "epub"] {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(corpus().join(dir))
            .expect("corpus folder exists")
            .map(|e| e.expect("readable dir entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "epub"))
            .collect();
        paths.sort();
        for p in paths {
            if let Some((_, bytes)) = epub_cover(&p) {
                out.push((p, bytes));
            }
        }
    }
    out
}
