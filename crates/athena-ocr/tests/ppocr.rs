//! PP-OCR accuracy on the scanned corpus PDFs at 300 dpi, and the layered-PDF round trip.
//! Needs the models from `scripts/fetch-models.sh`.

mod common;

use std::io::BufWriter;
use std::time::Instant;

use athena_ocr::{LayeredPdfWriter, OcrEngine, PageOcr, PpOcr};

/// OCRs every page, writes a layered PDF of them, and returns (OCR CER, pdftotext-of-layered-PDF CER).
fn ocr_and_layer(pdf: &str, words: bool) -> (f64, f64) {
    let engine = PpOcr::new(common::config()).expect("engine");
    let dir = tempfile::tempdir().expect("tempdir");
    let truth = common::truth(pdf);
    let pages = common::render(pdf, dir.path());
    assert_eq!(pages.len(), truth.len(), "page count of {pdf}");

    let out_path = dir.path().join("layered.pdf");
    let file = std::fs::File::create(&out_path).expect("create");
    let mut writer = LayeredPdfWriter::new(BufWriter::new(file), 75).expect("writer");
    let (mut dist, mut len) = (0.0, 0.0);
    let mut ocrs: Vec<PageOcr> = Vec::new();
    for (i, (img, dpi)) in pages.iter().enumerate() {
        let t = Instant::now();
        let page = engine.recognize(img).expect("recognize");
        let text = page.text();
        let (d, l) = common::distance(&text, &truth[i], words);
        eprintln!("{pdf} p{}: {:.2} s, CER {:.3}\n{text}", i + 1, t.elapsed().as_secs_f64(), d / l);
        assert_eq!((page.width, page.height), (img.width(), img.height()));
        for line in &page.lines {
            assert!((0.0..=1.0).contains(&line.score), "score {}", line.score);
        }
        dist += d;
        len += l;
        writer.add_page(img, *dpi as f32, &page).expect("add page");
        ocrs.push(page);
    }
    writer.finish().expect("finish");

    let (mut ldist, mut llen) = (0.0, 0.0);
    for (i, t) in truth.iter().enumerate() {
        let text = common::pdftotext(&out_path, i + 1);
        let (d, l) = common::distance(&text, t, words);
        ldist += d;
        llen += l;
    }
    // The layer must carry the OCR's text, whatever its accuracy.
    let ocr_text: String = ocrs.iter().map(PageOcr::text).collect::<Vec<_>>().join("\n");
    let layer_text: String = (1..=truth.len()).map(|p| common::pdftotext(&out_path, p)).collect::<Vec<_>>().join("\n");
    let self_cer =
        if words { athena_ocr::metrics::cer_words(&layer_text, &ocr_text) } else { athena_ocr::metrics::cer(&layer_text, &ocr_text) };
    assert!(self_cer < 0.01, "pdftotext differs from the OCR text (CER {self_cer:.3}):\n{layer_text}");
    (dist / len, ldist / llen)
}

#[test]
fn shijing_cer_at_most_reference() {
    let (cer, layered) = ocr_and_layer("scanned-shijing.pdf", false);
    eprintln!("scanned-shijing: OCR CER {cer:.3}, layered PDF CER {layered:.3}");
    assert!(cer <= 0.115, "CER {cer:.3} is worse than the reference 0.115");
    assert!(layered <= cer + 0.02, "layered PDF CER {layered:.3} vs OCR {cer:.3}");
}

#[test]
fn english_is_exact() {
    let (cer, layered) = ocr_and_layer("scanned-en.pdf", true);
    eprintln!("scanned-en: OCR CER {cer:.3}, layered PDF CER {layered:.3}");
    assert_eq!(cer, 0.0, "English page should be read exactly");
    assert!(layered <= cer + 0.02, "layered PDF CER {layered:.3} vs OCR {cer:.3}");
}
