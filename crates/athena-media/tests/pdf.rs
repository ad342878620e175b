//! `pdf_first_page_png` on the corpus PDFs and the broken ones, with real `pdftoppm`.

use std::path::Path;
use std::time::Duration;

use athena_media::pdf_first_page_png;

mod common;

const TIMEOUT: Duration = Duration::from_secs(30);

fn png_size(png: &[u8]) -> (u32, u32) {
    let img = image::load_from_memory_with_format(png, image::ImageFormat::Png).expect("valid PNG");
    (img.width(), img.height())
}

#[test]
fn corpus_pdfs_render_page_one_at_the_requested_width() {
    for name in ["text-layer-zh", "scanned-shijing", "scanned-en"] {
        let tmp = tempfile::tempdir().unwrap();
        let pdf = common::corpus().join(format!("pdf/{name}.pdf"));
        let png = pdf_first_page_png(Path::new(&pdf), 400, TIMEOUT, tmp.path()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (w, h) = png_size(&png);
        assert_eq!(w, 400, "{name}");
        // A4 portrait: 400 × 400·√2 ≈ 566.
        assert!((560..=570).contains(&h), "{name}: height {h}");
        // The rendered page is not blank: a text or scanned page has dark pixels.
        let gray = image::load_from_memory(&png).unwrap().to_luma8();
        let dark = gray.pixels().filter(|p| p.0[0] < 128).count();
        assert!(dark > 100, "{name}: only {dark} dark pixels");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "temp output left behind");
    }
}

#[test]
fn not_a_pdf_is_a_clean_render_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let err = pdf_first_page_png(&common::corpus().join("bad/not-a-pdf.pdf"), 400, TIMEOUT, tmp.path()).unwrap_err();
    assert_eq!(err.reason_code(), "render_failed", "{err}");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

/// broken-xref.pdf has an xref table pointing at offset 9999999999 and a bogus startxref, but
/// its objects are intact; Poppler reconstructs the xref by scanning and renders the one
/// (empty, 612×792 pt) page. So the truthful expectation is a blank Letter-sized render.
#[test]
fn broken_xref_is_recovered_by_poppler_as_a_blank_letter_page() {
    let tmp = tempfile::tempdir().unwrap();
    let png =
        pdf_first_page_png(&common::corpus().join("bad/broken-xref.pdf"), 400, TIMEOUT, tmp.path()).expect("poppler recovers this file");
    assert_eq!(png_size(&png), (400, 518)); // 400 × 792/612
    let gray = image::load_from_memory(&png).unwrap().to_luma8();
    assert!(gray.pixels().all(|p| p.0[0] == 255), "the page has no content");
}

#[test]
fn missing_and_empty_inputs_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let err = pdf_first_page_png(Path::new("/nonexistent.pdf"), 400, TIMEOUT, tmp.path()).unwrap_err();
    assert_eq!(err.reason_code(), "render_failed");
    let err = pdf_first_page_png(&common::corpus().join("bad/empty.epub"), 400, TIMEOUT, tmp.path()).unwrap_err();
    assert_eq!(err.reason_code(), "render_failed");
}

#[test]
fn degenerate_page_shapes_are_cropped_to_three_times_the_width() {
    let tmp = tempfile::tempdir().unwrap();
    let pdf = tmp.path().join("tall.pdf");
    // A valid one-page PDF 3 pt wide and 14400 pt tall (the largest page PDF allows).
    std::fs::write(
        &pdf,
        "%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n\
         2 0 obj<</Type/Pages/Count 1/Kids[3 0 R]>>endobj\n\
         3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 3 14400]>>endobj\n\
         trailer<</Root 1 0 R>>\n%%EOF\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let png = pdf_first_page_png(&pdf, 400, TIMEOUT, &out).unwrap();
    assert_eq!(png_size(&png), (400, 1200));
}

#[test]
fn a_tiny_timeout_is_a_render_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let err =
        pdf_first_page_png(&common::corpus().join("pdf/scanned-shijing.pdf"), 4000, Duration::from_millis(1), tmp.path()).unwrap_err();
    assert_eq!(err.reason_code(), "render_timeout", "{err}");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}
