//! PDF text through Poppler on the corpus.

mod common;

use athena_convert::{pdf_page_count, pdf_text_pages, PdfLimits};
use common::corpus;

#[tokio::test]
async fn text_layer_pdf_gives_pages_with_text() {
    let work = tempfile::tempdir().unwrap();
    let pdf = corpus().join("pdf/text-layer-zh.pdf");
    let mut pages = Vec::new();
    let n = pdf_text_pages(&pdf, work.path(), &PdfLimits::default(), |no, text| pages.push((no, text))).await.unwrap();
    let count = pdf_page_count(&pdf, work.path(), &PdfLimits::default()).await.unwrap();
    assert_eq!(n, count);
    assert_eq!(pages.len() as u32, count);
    assert!(count >= 1);
    for (i, (no, text)) in pages.iter().enumerate() {
        assert_eq!(*no, i as u32 + 1);
        let han = text.chars().filter(|c| ('\u{4e00}'..='\u{9fff}').contains(c)).count();
        assert!(han >= 10, "page {no} has little Chinese text: {text:?}");
    }
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0, "sandboxes removed");
}

#[tokio::test]
async fn not_a_pdf_is_a_clean_error() {
    let work = tempfile::tempdir().unwrap();
    let bad = corpus().join("bad/not-a-pdf.pdf");
    let mut called = false;
    let e = pdf_text_pages(&bad, work.path(), &PdfLimits::default(), |_, _| called = true).await.unwrap_err();
    assert_eq!(e.reason_code(), "pdf_unreadable", "{e}");
    assert!(!called);
    assert!(!e.to_string().contains(&*work.path().to_string_lossy()));
    let e = pdf_page_count(&bad, work.path(), &PdfLimits::default()).await.unwrap_err();
    assert_eq!(e.reason_code(), "pdf_unreadable", "{e}");
}

#[tokio::test]
async fn text_cap_is_enforced() {
    let work = tempfile::tempdir().unwrap();
    let pdf = corpus().join("pdf/text-layer-zh.pdf");
    let lim = PdfLimits { max_text_bytes: 100, ..PdfLimits::default() };
    let e = pdf_text_pages(&pdf, work.path(), &lim, |_, _| {}).await.unwrap_err();
    assert_eq!(e.reason_code(), "pdf_text_too_large");
}
