//! Real conversions of the corpus through Calibre. A conversion passes only when the EPUB's text and chapter
//! structure are right, not merely when a file appears.

mod common;

use std::time::Instant;

use athena_convert::{calibre_available, calibre_version, ebook_convert, ConvertLimits};
use athena_domain::BookFormat;
use common::{corpus, read_epub, squash, truth, Epub};

/// Chapter headings and each chapter's opening words, from the reference EPUB `zh/lunyu.epub`.
fn lunyu_reference() -> (Vec<String>, Vec<String>) {
    let epub = read_epub(&corpus().join("zh/lunyu.epub"));
    let mut headings = Vec::new();
    let mut openings = Vec::new();
    for doc in &epub.spine_texts {
        let lines: Vec<&str> = doc.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        if lines.len() < 2 {
            continue;
        }
        headings.push(lines[0].to_string());
        openings.push(squash(lines[1]).chars().take(16).collect::<String>());
    }
    let t = truth("zh/lunyu.epub");
    assert_eq!(headings.len(), t.chapters, "reference EPUB disagrees with truth.json");
    let mut uniq = openings.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), openings.len(), "chapter openings must be distinct to identify chapters");
    (headings, openings)
}

/// For each reference chapter, the spine document where its opening appears. Chapters count as right when every
/// opening is found and each lands in a later document than the previous one: one chapter per document, in order.
fn chapter_docs(epub: &Epub, openings: &[String]) -> Result<Vec<usize>, String> {
    let docs: Vec<String> = epub.spine_texts.iter().map(|t| squash(t)).collect();
    let mut found = Vec::new();
    for (i, opening) in openings.iter().enumerate() {
        let start = found.last().map(|d| d + 1).unwrap_or(0);
        match (start..docs.len()).find(|&d| docs[d].contains(opening.as_str())) {
            Some(d) => found.push(d),
            None => return Err(format!("chapter {} ({opening}) not found in its own document after doc {start}", i + 1)),
        }
    }
    Ok(found)
}

async fn convert(name: &str, format: BookFormat) -> (Epub, f64) {
    assert!(calibre_available(), "these tests need Calibre's ebook-convert installed");
    let work = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = ebook_convert(&corpus().join("convert").join(name), format, work.path(), &ConvertLimits::default())
        .await
        .unwrap_or_else(|e| panic!("{name}: {} ({})", e, e.reason_code()));
    let secs = started.elapsed().as_secs_f64();
    eprintln!("converted {name} in {secs:.2} s ({} bytes)", out.size_bytes());
    assert!(out.path().starts_with(work.path()), "output must stay in the sandbox");
    let epub = read_epub(out.path());
    let dir = out.work_dir().to_path_buf();
    drop(out);
    assert!(!dir.exists(), "dropping ConvertedEpub removes its sandbox");
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0, "nothing left in the work parent");
    (epub, secs)
}

/// The converted TOC must equal the reference headings from `toc_from` on.
async fn check_lunyu(name: &str, format: BookFormat, toc_from: usize) {
    let (headings, openings) = lunyu_reference();
    let (epub, _) = convert(name, format).await;
    let text = epub.all_text();
    for p in truth("zh/lunyu.epub").phrases {
        assert!(text.contains(&p), "{name}: phrase {p} missing");
    }
    let docs = chapter_docs(&epub, &openings).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(docs.len(), 20);
    let toc: Vec<&str> = epub.toc_labels.iter().map(String::as_str).collect();
    let want: Vec<&str> = headings[toc_from..].iter().map(String::as_str).collect();
    assert_eq!(toc, want, "{name}: TOC");
}

#[tokio::test]
async fn lunyu_txt() {
    check_lunyu("lunyu.txt", BookFormat::Txt, 0).await;
}

#[tokio::test]
async fn lunyu_fb2() {
    check_lunyu("lunyu.fb2", BookFormat::Fb2, 0).await;
}

#[tokio::test]
async fn lunyu_mobi() {
    check_lunyu("lunyu.mobi", BookFormat::Mobi, 0).await;
}

#[tokio::test]
async fn lunyu_azw3() {
    check_lunyu("lunyu.azw3", BookFormat::Azw3, 0).await;
}

#[tokio::test]
async fn lunyu_docx() {
    check_lunyu("lunyu.docx", BookFormat::Docx, 0).await;
}

/// The corpus RTF itself lacks the first heading (学而篇; its metadata is "??" too), so its TOC starts at chapter 2,
/// while the chapter split (checked by openings) still gives all 20.
#[tokio::test]
async fn lunyu_rtf() {
    check_lunyu("lunyu.rtf", BookFormat::Rtf, 1).await;
}

/// Key phrases from the reference EPUB must survive, and the amount of text must be about the same.
async fn check_childrens(name: &str, format: BookFormat) {
    let reference = read_epub(&corpus().join("epub/childrens-literature.epub"));
    let ref_text = squash(&reference.all_text());
    let (epub, _) = convert(name, format).await;
    let text = squash(&epub.all_text());
    let phrases = [
        "THEUGLYDUCKLING",
        "Ithadagoodplace;itcouldhavesunlight,airtherewasinplenty",
        "Thedifficultiesofclassification",
        "thespiritsofthelamp",
        "KingoftheGoldenRiver",
    ];
    for p in phrases {
        assert!(ref_text.contains(p), "reference lacks {p}");
        assert!(text.contains(p), "{name}: phrase {p} missing");
    }
    let ratio = text.chars().count() as f64 / ref_text.chars().count() as f64;
    assert!((0.9..1.15).contains(&ratio), "{name}: text size ratio {ratio:.3} vs reference");
}

#[tokio::test]
async fn childrens_literature_fb2() {
    check_childrens("childrens-literature.fb2", BookFormat::Fb2).await;
}

#[tokio::test]
async fn childrens_literature_mobi() {
    check_childrens("childrens-literature.mobi", BookFormat::Mobi).await;
}

#[tokio::test]
async fn version_probe() {
    let work = tempfile::tempdir().unwrap();
    let v = calibre_version(work.path()).await.unwrap();
    assert!(v.split('.').all(|p| p.parse::<u32>().is_ok()) && v.contains('.'), "version {v}");
}

#[tokio::test]
async fn refusals_have_reason_codes() {
    let work = tempfile::tempdir().unwrap();
    let lim = ConvertLimits::default();
    let epub = corpus().join("epub/wasteland.epub");
    let e = ebook_convert(&epub, BookFormat::Epub, work.path(), &lim).await.unwrap_err();
    assert_eq!(e.reason_code(), "unsupported_format");

    let small = ConvertLimits { max_input_bytes: 1000, ..ConvertLimits::default() };
    let e = ebook_convert(&corpus().join("convert/lunyu.txt"), BookFormat::Txt, work.path(), &small).await.unwrap_err();
    assert_eq!(e.reason_code(), "input_too_large");

    if !athena_convert::libreoffice_available() {
        let e = ebook_convert(&corpus().join("convert/lunyu.docx"), BookFormat::Doc, work.path(), &lim).await.unwrap_err();
        assert_eq!(e.reason_code(), "libreoffice_missing");
        assert_eq!(e.to_string(), "DOC files need LibreOffice, which is not installed");
    }
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);
}

/// Random bytes named .mobi: Calibre fails, and the error is typed, short and free of server paths.
#[tokio::test]
async fn garbage_input_fails_cleanly() {
    let work = tempfile::tempdir().unwrap();
    let e =
        ebook_convert(&corpus().join("bad/random-bytes.epub"), BookFormat::Mobi, work.path(), &ConvertLimits::default()).await.unwrap_err();
    assert_eq!(e.reason_code(), "convert_failed", "{e}");
    let msg = e.to_string();
    assert!(msg.len() < 800, "{msg}");
    assert!(!msg.contains(&*work.path().to_string_lossy()), "message leaks the work path: {msg}");
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);
}

/// A DJVU that is not one: Calibre must fail with a typed error (a real image-only DJVU gives `djvu_no_text`).
#[tokio::test]
async fn bad_djvu_fails_cleanly() {
    let work = tempfile::tempdir().unwrap();
    let e =
        ebook_convert(&corpus().join("bad/random-bytes.epub"), BookFormat::Djvu, work.path(), &ConvertLimits::default()).await.unwrap_err();
    assert!(matches!(e.reason_code(), "convert_failed" | "djvu_no_text"), "{e}");
}
