//! The Tesseract fallback on the scanned English page, through the same trait and constructor.

mod common;

use std::time::Duration;

use athena_ocr::{engine_from_config, EngineKind, OcrConfig, OcrError};

#[test]
fn tesseract_reads_scanned_english() {
    let config = OcrConfig { engine: EngineKind::Tesseract, tesseract_langs: "eng".into(), ..OcrConfig::default() };
    let engine = engine_from_config(&config).expect("engine");
    assert_eq!(engine.name(), "tesseract");
    let dir = tempfile::tempdir().expect("tempdir");
    let truth = common::truth("scanned-en.pdf");
    let pages = common::render("scanned-en.pdf", dir.path());
    let page = engine.recognize(&pages[0].0).expect("recognize");
    let text = page.text();
    let cer = athena_ocr::metrics::cer_words(&text, &truth[0]);
    eprintln!("tesseract scanned-en CER {cer:.3}\n{text}");
    assert!(cer <= 0.01, "CER {cer:.3}");
    assert!(page.lines.len() >= 4, "expected the page's lines, got {}", page.lines.len());
    let first = &page.lines[0];
    assert!(first.quad[2][0] > first.quad[0][0] && first.quad[2][1] > first.quad[0][1]);
}

#[test]
fn tesseract_reads_scanned_chinese() {
    // chi_sim alone: with chi_sim+eng, Tesseract 5.3 reads these Chinese lines as Latin garbage.
    let engine =
        engine_from_config(&OcrConfig { engine: EngineKind::Tesseract, tesseract_langs: "chi_sim".into(), ..OcrConfig::default() })
            .expect("engine");
    let dir = tempfile::tempdir().expect("tempdir");
    let truth = common::truth("scanned-shijing.pdf");
    let (mut dist, mut len) = (0.0, 0.0);
    for (i, (img, _)) in common::render("scanned-shijing.pdf", dir.path()).iter().enumerate() {
        let text = engine.recognize(img).expect("recognize").text();
        let (d, l) = common::distance(&text, &truth[i], false);
        dist += d;
        len += l;
    }
    let cer = dist / len;
    eprintln!("tesseract chi_sim scanned-shijing CER {cer:.3}");
    // Reference figure for Tesseract 5.3 chi_sim on this document: 0.460.
    assert!(cer <= 0.5, "CER {cer:.3}");
}

#[test]
fn tesseract_time_limit_and_missing_binary_are_errors() {
    let img = athena_ocr::DynamicImage::new_luma8(64, 32);
    let missing = engine_from_config(&OcrConfig {
        engine: EngineKind::Tesseract,
        tesseract_cmd: "/nonexistent/tesseract".into(),
        ..OcrConfig::default()
    })
    .expect("engine");
    let err = missing.recognize(&img).expect_err("missing binary");
    assert_eq!(err.reason_code(), "ocr_tool_missing", "{err}");

    let slow = engine_from_config(&OcrConfig { engine: EngineKind::Tesseract, timeout: Duration::from_millis(1), ..OcrConfig::default() })
        .expect("engine");
    match slow.recognize(&common_big_page()) {
        Err(OcrError::Timeout { .. }) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }

    let bad_lang =
        engine_from_config(&OcrConfig { engine: EngineKind::Tesseract, tesseract_langs: "eng; rm -rf /".into(), ..OcrConfig::default() });
    assert_eq!(bad_lang.err().map(|e| e.reason_code()), Some("ocr_config"));
}

fn common_big_page() -> athena_ocr::DynamicImage {
    athena_ocr::DynamicImage::ImageLuma8(image_like(1200, 1600))
}

fn image_like(w: u32, h: u32) -> image::GrayImage {
    image::GrayImage::from_fn(w, h, |x, y| image::Luma([((x ^ y) & 0xff) as u8]))
}
