//! Bad input gives typed errors, never panics: non-images, truncated and oversized images, missing
//! runtime or models, broken PDFs.

mod common;

use std::io::Cursor;
use std::path::PathBuf;

use athena_ocr::{load_image, DynamicImage, OcrConfig, OcrEngine, PpOcr, Rasterizer};

const MAX: u64 = 100_000_000;

fn page_png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(200, 100, |x, y| image::Rgb([(x % 255) as u8, (y % 255) as u8, 128]));
    let mut buf = Vec::new();
    DynamicImage::ImageRgb8(img).write_to(&mut Cursor::new(&mut buf), image::ImageFormat::Png).expect("encode");
    buf
}

/// A PNG whose header claims `w × h` pixels, with valid chunk checksums and almost no image data.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    // A few bytes of (deflate-stored) image data: enough for a decoder to read the header and start.
    chunk(b"IDAT", &[0x78, 0x01, 0x01, 0x04, 0x00, 0xfb, 0xff, 0, 0, 0, 0]);
    chunk(b"IEND", &[]);
    out
}

#[test]
fn non_image_and_truncated_image_are_errors() {
    let err = load_image(b"%PDF-1.4 this is not an image", MAX).expect_err("not an image");
    assert_eq!(err.reason_code(), "ocr_bad_image", "{err}");
    assert_eq!(load_image(&[], MAX).expect_err("empty").reason_code(), "ocr_bad_image");

    let png = page_png();
    assert!(load_image(&png, MAX).is_ok());
    for cut in [8, 40, png.len() / 2, png.len() - 13] {
        let err = load_image(&png[..cut], MAX).expect_err("truncated");
        assert_eq!(err.reason_code(), "ocr_bad_image", "cut at {cut}: {err}");
    }
}

#[test]
fn oversized_images_are_refused_before_decoding() {
    let err = load_image(&png_header(30_000, 30_000), MAX).expect_err("bomb");
    assert_eq!(err.reason_code(), "ocr_image_too_large", "{err}");
}

#[test]
fn engine_refuses_empty_and_huge_images_and_reads_blank_ones() {
    let engine = PpOcr::new(OcrConfig { max_pixels: 4_000_000, ..common::config() }).expect("engine");
    let empty = DynamicImage::new_rgb8(0, 0);
    assert_eq!(engine.recognize(&empty).expect_err("empty").reason_code(), "ocr_bad_image");
    let huge = DynamicImage::new_luma8(3000, 3000);
    assert_eq!(engine.recognize(&huge).expect_err("huge").reason_code(), "ocr_image_too_large");
    // Blank and tiny images are valid input with no text.
    for (w, h) in [(640, 480), (1, 1), (5, 3000)] {
        let blank = DynamicImage::ImageLuma8(image::GrayImage::from_pixel(w, h, image::Luma([255])));
        let page = engine.recognize(&blank).expect("blank page");
        assert!(page.lines.is_empty(), "{w}x{h}: {:?}", page.lines);
        assert_eq!((page.width, page.height), (w, h));
    }
}

#[test]
fn missing_runtime_and_models_are_named() {
    let err = PpOcr::new(OcrConfig { ort_dylib: Some(PathBuf::from("/nonexistent/libonnxruntime.so")), ..common::config() })
        .expect_err("no runtime");
    assert_eq!(err.reason_code(), "ocr_runtime_missing");
    assert!(err.to_string().contains("onnxruntime library not found at /nonexistent/libonnxruntime.so"), "{err}");

    let empty = tempfile::tempdir().expect("tempdir");
    let err = PpOcr::new(OcrConfig {
        model_dir: empty.path().to_path_buf(),
        ort_dylib: Some(common::model_dir().join("onnxruntime/libonnxruntime.so")),
        ..common::config()
    })
    .expect_err("no models");
    assert_eq!(err.reason_code(), "ocr_model_missing");
    assert!(err.to_string().contains("fetch-models.sh"), "{err}");

    assert_eq!("paddle".parse::<athena_ocr::EngineKind>().expect_err("kind").reason_code(), "ocr_config");
}

#[test]
fn broken_pdfs_and_bad_pages_are_errors() {
    let r = Rasterizer::default();
    let dir = tempfile::tempdir().expect("tempdir");
    let not_pdf = common::corpus().join("bad/not-a-pdf.pdf");
    let err = r.page_count(&not_pdf).expect_err("not a pdf");
    assert_eq!(err.reason_code(), "ocr_bad_pdf", "{err}");
    let err = r.render_page(&not_pdf, 1, dir.path()).expect_err("not a pdf");
    assert_eq!(err.reason_code(), "ocr_bad_pdf", "{err}");

    let en = common::corpus().join("pdf/scanned-en.pdf");
    assert_eq!(r.page_count(&en).expect("count"), 1);
    assert_eq!(r.render_page(&en, 2, dir.path()).expect_err("page 2").reason_code(), "ocr_bad_pdf");
    assert_eq!(r.render_page(&en, 0, dir.path()).expect_err("page 0").reason_code(), "ocr_bad_pdf");

    // A tiny pixel budget lowers the resolution instead of rendering a huge image.
    let small = Rasterizer { max_pixels: 1_000_000, ..Rasterizer::default() };
    let page = small.render_page(&en, 1, dir.path()).expect("render");
    assert!(page.dpi < 300);
    let img = athena_ocr::load_image_file(&page.path, MAX).expect("decode");
    assert!(img.width() as u64 * img.height() as u64 <= 1_000_000);

    // A tool that hangs is killed at the limit (a real pdfinfo can beat a tiny limit on a fast machine).
    let hanging = dir.path().join("hanging-pdfinfo");
    std::fs::write(&hanging, "#!/bin/sh\nsleep 30\n").unwrap();
    let mut perms = std::fs::metadata(&hanging).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&hanging, perms).unwrap();
    let slow = Rasterizer { timeout: std::time::Duration::from_millis(300), pdfinfo: hanging, ..Rasterizer::default() };
    let started = std::time::Instant::now();
    assert_eq!(slow.page_count(&en).expect_err("timeout").reason_code(), "ocr_timeout");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
