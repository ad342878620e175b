//! EPUB text extraction against the shared corpus (read-only) and small generated books.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use athena_formats::{extract_epub_text, quick_metadata, BookFormat, ExtractSummary, FormatError, Limits, TextSection};

fn corpus() -> PathBuf {
    std::env::var_os("ATHENA_CORPUS")
        .map(PathBuf::from)
        .into_iter()
        .chain([Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"), PathBuf::from("/work/shared/corpus")])
        .find(|d| d.join("truth.json").is_file())
        .expect("the shared corpus (set ATHENA_CORPUS, or keep shared/ next to the repository)")
}

fn files_in(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(corpus().join(dir)).unwrap_or_else(|e| panic!("corpus folder {dir}: {e}")).map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

fn extract_with(path: &Path, limits: &Limits) -> Result<(Vec<TextSection>, ExtractSummary), FormatError> {
    let mut sections = Vec::new();
    let summary = extract_epub_text(path, limits, &mut |s| {
        sections.push(s);
        Ok(())
    })?;
    Ok((sections, summary))
}

fn extract(path: &Path) -> (Vec<TextSection>, ExtractSummary) {
    extract_with(path, &Limits::default()).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

fn truth() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(corpus().join("truth.json")).unwrap()).unwrap()
}

/// Parses `epubcfi(/S/N[id]!/B)` (id and body step optional) into its steps, or None when the
/// shape is wrong: every step must be a positive even number.
fn cfi_steps(cfi: &str) -> Option<(u32, u32, Option<String>, Option<u32>)> {
    let inner = cfi.strip_prefix("epubcfi(")?.strip_suffix(')')?;
    let (outer, body) = match inner.split_once('!') {
        Some((o, b)) => (o, Some(b.strip_prefix('/')?.parse::<u32>().ok()?)),
        None => (inner, None),
    };
    let mut parts = outer.strip_prefix('/')?.splitn(2, '/');
    let spine: u32 = parts.next()?.parse().ok()?;
    let item = parts.next()?;
    let (num, id) = match item.split_once('[') {
        Some((n, rest)) => (n, Some(rest.strip_suffix(']')?.to_owned())),
        None => (item, None),
    };
    let num: u32 = num.parse().ok()?;
    let even = |n: u32| n > 0 && n.is_multiple_of(2);
    (even(spine) && even(num) && body.is_none_or(even)).then_some((spine, num, id, body))
}

#[test]
fn every_corpus_epub_extracts_with_well_formed_distinct_locations() {
    let mut files = files_in("epub");
    files.extend(files_in("zh"));
    assert!(files.len() >= 14);
    let start = std::time::Instant::now();
    let mut total_chars = 0u64;
    for path in &files {
        let (sections, summary) = extract(path);
        assert!(!sections.is_empty(), "{path:?}: no text");
        assert_eq!(summary.sections as usize, sections.len(), "{path:?}");
        let chars: u64 = sections.iter().map(|s| s.text.chars().count() as u64).sum();
        assert_eq!(summary.chars, chars, "{path:?}");
        total_chars += chars;
        let mut locations = HashSet::new();
        let mut last_index = None;
        for s in &sections {
            assert!(!s.text.trim().is_empty(), "{path:?} section {} is empty", s.index);
            assert!(!s.text.contains("\n\n") && !s.text.contains("  "), "{path:?} {}: uncollapsed whitespace", s.href);
            assert!(last_index < Some(s.index), "{path:?}: spine order");
            last_index = Some(s.index);
            let (spine, item, id, body) = cfi_steps(&s.location).unwrap_or_else(|| panic!("{path:?}: bad CFI {}", s.location));
            assert_eq!(spine, 6, "{path:?}: {}", s.location);
            assert_eq!(item, (s.index + 1) * 2, "{path:?}: {}", s.location);
            assert!(id.is_some_and(|i| !i.is_empty()), "{path:?}: {} lacks the idref assertion", s.location);
            // Every corpus document is XHTML with a body, usually after <head>.
            assert!(matches!(body, Some(2 | 4)), "{path:?}: {}", s.location);
            assert!(locations.insert(s.location.clone()), "{path:?}: duplicate location {}", s.location);
        }
    }
    eprintln!("extracted {total_chars} chars from {} books in {:?}", files.len(), start.elapsed());
}

/// The chapters of each Chinese book are the sections titled by the TOC entry that points at
/// their own document; front matter, if any, would be sections without such an entry. Also
/// checks every truth phrase.
#[test]
fn chinese_books_have_their_chapters_and_phrases() {
    let truth = truth();
    for (rel, must_contain) in
        [("zh/lunyu.epub", None), ("zh/guwenguanzhi.epub", Some("鄭伯克段於鄢")), ("zh/tangshi300.epub", Some("白日依山盡"))]
    {
        let facts = &truth[rel];
        let chapters = facts["chapters"].as_u64().unwrap() as usize;
        let path = corpus().join(rel);
        let (sections, _) = extract(&path);
        let meta = quick_metadata(&path, BookFormat::Epub, &Limits::default()).unwrap();
        let toc_title_for = |href: &str| meta.toc.iter().find(|e| e.href.split('#').next() == Some(href)).map(|e| e.title.as_str());
        let chapter_sections: Vec<_> =
            sections.iter().filter(|s| s.title.is_some() && s.title.as_deref() == toc_title_for(&s.href)).collect();
        assert_eq!(chapter_sections.len(), chapters, "{rel}: sections titled by their own TOC entry");
        let hrefs: HashSet<_> = chapter_sections.iter().map(|s| s.href.as_str()).collect();
        assert_eq!(hrefs.len(), chapters, "{rel}: one section per chapter document");
        assert_eq!(sections.len(), chapters, "{rel}: these books have no front matter in the spine");

        let all: String = sections.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join("\n");
        for phrase in facts["phrases"].as_array().unwrap() {
            let phrase = phrase.as_str().unwrap();
            assert!(all.contains(phrase), "{rel}: missing {phrase}");
        }
        if let Some(p) = must_contain {
            assert!(all.contains(p), "{rel}: missing {p}");
        }
    }
}

#[test]
fn lunyu_sections_look_right() {
    let (sections, summary) = extract(&corpus().join("zh/lunyu.epub"));
    assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
    let first = &sections[0];
    assert_eq!(first.index, 0);
    assert_eq!(first.title.as_deref(), Some("学而篇"));
    assert_eq!(first.href, "OEBPS/ch001.xhtml");
    assert_eq!(first.location, "epubcfi(/6/2[c1]!/4)");
    assert!(first.linear);
    // Heading on its own line, then one line per paragraph; the <head> title is not repeated.
    let mut lines = first.text.lines();
    assert_eq!(lines.next(), Some("学而篇"));
    assert!(lines.next().unwrap().starts_with("子曰：“学而时习之，不亦说乎？"));
    assert_eq!(first.text.matches("学而篇").count(), 1);
    assert_eq!(sections[19].location, "epubcfi(/6/40[c20]!/4)");
}

#[test]
fn moby_dick_text_and_non_linear_items() {
    let (sections, _) = extract(&corpus().join("epub/moby-dick.epub"));
    assert!(sections.iter().any(|s| s.text.contains("Call me Ishmael")));
    let ch1 = sections.iter().find(|s| s.text.contains("Call me Ishmael")).unwrap();
    assert!(ch1.title.as_deref().is_some_and(|t| t.contains("Loomings")), "{:?}", ch1.title);
    // The cover page (spine item 0, only an image's alt text) and the full contents page
    // (item 143) are the two linear="no" items.
    let non_linear: Vec<_> = sections.iter().filter(|s| !s.linear).map(|s| (s.index, s.href.as_str())).collect();
    assert_eq!(non_linear, vec![(0, "OPS/cover.xhtml"), (143, "OPS/toc.xhtml")]);
    assert_eq!(sections[0].text, "Cover Image");
}

#[test]
fn bad_files_fail_with_their_reason_codes() {
    let expect = [
        ("bad/empty.epub", "empty_file"),
        ("bad/random-bytes.epub", "unrecognized_format"),
        ("bad/truncated.epub", "corrupt_file"),
        ("bad/zip-bomb.epub", "archive_bomb"),
        ("bad/path-traversal.epub", "unsafe_archive"),
        ("bad/xml-bomb.epub", "xml_bomb"),
        ("bad/looks-like-epub.txt.epub", "unrecognized_format"),
        ("bad/not-a-pdf.pdf", "unrecognized_format"),
        ("bad/broken-xref.pdf", "unrecognized_format"),
    ];
    for (rel, code) in expect {
        match extract_with(&corpus().join(rel), &Limits::default()) {
            Err(e) => assert_eq!(e.reason_code(), code, "{rel}: {e}"),
            Ok((s, sum)) => panic!("{rel}: expected {code}, got {} sections {sum:?}", s.len()),
        }
    }
    // Its cover is the bomb, which text extraction never inflates.
    let (sections, _) = extract(&corpus().join("bad/image-bomb-cover.epub"));
    assert!(!sections.is_empty());
    assert_eq!(files_in("bad").len(), expect.len() + 1, "bad/ changed: cover the new file here");
}

#[test]
fn text_limit_stops_with_a_warning() {
    let limits = Limits { max_text_chars: 1000, ..Limits::default() };
    let (sections, summary) = extract_with(&corpus().join("zh/guwenguanzhi.epub"), &limits).unwrap();
    assert_eq!(summary.chars, 1000);
    assert_eq!(sections.iter().map(|s| s.text.chars().count() as u64).sum::<u64>(), 1000);
    assert!(sections.len() < 10);
    assert!(summary.warnings.iter().any(|w| w.contains("text limit")), "{:?}", summary.warnings);
}

#[test]
fn callback_errors_stop_the_walk() {
    let mut calls = 0;
    let err = extract_epub_text(&corpus().join("zh/tangshi300.epub"), &Limits::default(), &mut |_| {
        calls += 1;
        if calls == 3 {
            return Err(FormatError::TooLarge("index full".into()));
        }
        Ok(())
    })
    .unwrap_err();
    assert_eq!(err.reason_code(), "too_large");
    assert_eq!(calls, 3);
}

/// Writes an EPUB whose OPF lists `spine` over `docs` (id, file name, content); a file name
/// may carry `|href` when the manifest should spell it differently.
fn build_epub(dir: &Path, name: &str, docs: &[(&str, &str, Vec<u8>)], spine: &str) -> PathBuf {
    use zip::write::SimpleFileOptions;
    let path = dir.join(name);
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let deflated = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("mimetype", stored).unwrap();
    zip.write_all(b"application/epub+zip").unwrap();
    zip.start_file("META-INF/container.xml", deflated).unwrap();
    zip.write_all(br#"<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="OPS/pkg.opf" media-type="application/oebps-package+xml"/></rootfiles></container>"#).unwrap();
    let mut manifest = String::new();
    for (id, file, content) in docs {
        let (file, href) = file.split_once('|').unwrap_or((file, file));
        manifest.push_str(&format!(r#"<item id="{id}" href="{href}" media-type="application/xhtml+xml"/>"#));
        zip.start_file(format!("OPS/{file}"), deflated).unwrap();
        zip.write_all(content).unwrap();
    }
    let opf = format!(
        r#"<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>T</dc:title></metadata><manifest>{manifest}<item id="img" href="p.png" media-type="image/png"/></manifest><spine>{spine}</spine><guide/></package>"#
    );
    zip.start_file("OPS/pkg.opf", deflated).unwrap();
    zip.write_all(opf.as_bytes()).unwrap();
    zip.finish().unwrap();
    path
}

fn doc(body: &str) -> Vec<u8> {
    format!(r#"<?xml version="1.0" encoding="UTF-8"?><html xmlns="http://www.w3.org/1999/xhtml"><head><title>x</title></head><body>{body}</body></html>"#)
        .into_bytes()
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("athena-text-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn spine_rules_on_a_generated_book() {
    let dir = temp_dir("spine");
    let big = format!("<h1>Big</h1><p>{}</p>", "word ".repeat(20_000));
    let docs = [
        ("a", "a.xhtml", doc("<h2>First</h2><p>alpha</p>")),
        ("n", "notes.xhtml", doc("<p>a note</p>")),
        ("e", "empty.xhtml", doc("<div> </div>")),
        // Tools disagree about case and URL encoding; the lookup forgives both.
        ("c", "Odd Name.XHTML|odd%20name.xhtml", doc("<p>found anyway</p>")),
        ("b", "big.xhtml", doc(&big)),
        ("x", "ent.xhtml", b"<!DOCTYPE html [<!ENTITY a \"b\">]><html><body>&a;</body></html>".to_vec()),
    ];
    // img: no text; missing: unknown id; a twice: read once.
    let spine = r#"<itemref idref="img"/><itemref idref="a"/><itemref idref="n" linear="no"/><itemref idref="missing"/><itemref idref="e"/><itemref idref="a"/><itemref idref="b"/><itemref idref="c"/>"#;
    let path = build_epub(&dir, "book.epub", &docs, spine);
    let limits = Limits { max_entry_bytes: 10_000, ..Limits::default() };
    let (sections, summary) = extract_with(&path, &limits).unwrap();
    let got: Vec<_> = sections.iter().map(|s| (s.index, s.title.as_deref(), s.linear, s.location.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (1, Some("First"), true, "epubcfi(/6/4[a]!/4)"),
            (2, None, false, "epubcfi(/6/6[n]!/4)"),
            (6, Some("Big"), true, "epubcfi(/6/14[b]!/4)"),
            (7, None, true, "epubcfi(/6/16[c]!/4)"),
        ]
    );
    assert_eq!(sections[3].href, "OPS/Odd Name.XHTML");
    assert_eq!(sections[0].text, "First\nalpha");
    assert_eq!(sections[0].href, "OPS/a.xhtml");
    // The big document was cut at the entry limit, with a warning, not an error.
    assert!(sections[2].text.len() < 10_000 && sections[2].text.len() > 5_000);
    let w = summary.warnings.join("\n");
    assert!(w.contains("only its start was read"), "{w}");
    assert!(w.contains("unknown manifest id"), "{w}");
    assert!(w.contains("already extracted"), "{w}");

    // A content document that declares entities is refused like in quick_metadata.
    let spine = r#"<itemref idref="a"/><itemref idref="x"/>"#;
    let path = build_epub(&dir, "bomb.epub", &docs, spine);
    let err = extract_with(&path, &Limits::default()).unwrap_err();
    assert_eq!(err.reason_code(), "xml_bomb");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn mutated_books_never_panic() {
    let dir = temp_dir("mutate");
    let seeds: Vec<Vec<u8>> =
        ["zh/lunyu.epub", "epub/wasteland.epub", "bad/xml-bomb.epub"].iter().map(|r| std::fs::read(corpus().join(r)).unwrap()).collect();
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let target = dir.join("case.epub");
    for round in 0..60 {
        let mut data = seeds[round % seeds.len()].clone();
        for _ in 0..(1 + next() % 8) {
            let at = (next() as usize) % data.len();
            data[at] = next() as u8;
        }
        if round % 5 == 4 {
            data.truncate((next() as usize) % data.len());
        }
        std::fs::write(&target, &data).unwrap();
        let _ = extract_with(&target, &Limits::default());
    }
    std::fs::remove_dir_all(&dir).ok();
}
