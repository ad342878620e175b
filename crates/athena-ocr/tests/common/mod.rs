//! Shared helpers for the integration tests: where the models and the corpus are, page rendering, truth.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use athena_ocr::{load_image_file, DynamicImage, OcrConfig, Rasterizer};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The model folder; a missing one fails the test (never a silent skip).
pub fn model_dir() -> PathBuf {
    let dir = std::env::var_os("ATHENA_TEST_MODEL_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("models"));
    for f in ["ppocr/det.onnx", "ppocr/rec.onnx", "ppocr/cls.onnx", "onnxruntime/libonnxruntime.so"] {
        assert!(
            dir.join(f).is_file(),
            "OCR model file {} is missing: run scripts/fetch-models.sh (or set ATHENA_TEST_MODEL_DIR)",
            dir.join(f).display()
        );
    }
    dir
}

pub fn config() -> OcrConfig {
    OcrConfig { model_dir: model_dir(), intra_threads: 2, ..OcrConfig::default() }
}

pub fn corpus() -> PathBuf {
    let dir = std::env::var_os("ATHENA_CORPUS").map(PathBuf::from).unwrap_or_else(|| repo_root().join("../shared/corpus"));
    if dir.join("truth.json").is_file() {
        dir
    } else {
        PathBuf::from("/work/shared/corpus")
    }
}

/// The printed text of each page of a scanned corpus PDF.
pub fn truth(pdf: &str) -> Vec<String> {
    let raw = std::fs::read_to_string(corpus().join("truth.json")).expect("truth.json");
    let v: serde_json::Value = serde_json::from_str(&raw).expect("truth.json parses");
    v[format!("pdf/{pdf}")]["text"].as_array().expect("text[]").iter().map(|t| t.as_str().expect("page text").to_owned()).collect()
}

/// Renders every page of a corpus PDF at 300 dpi into `dir`.
pub fn render(pdf: &str, dir: &Path) -> Vec<(DynamicImage, u32)> {
    let path = corpus().join("pdf").join(pdf);
    let r = Rasterizer::default();
    let n = r.page_count(&path).expect("page count");
    (1..=n)
        .map(|p| {
            let page = r.render_page(&path, p, dir).expect("render page");
            (load_image_file(&page.path, 100_000_000).expect("decode page"), page.dpi)
        })
        .collect()
}

/// Character edit distance and truth length, whitespace ignored (Chinese) or collapsed (`words`).
pub fn distance(ocr: &str, truth: &str, words: bool) -> (f64, f64) {
    let cer = if words { athena_ocr::metrics::cer_words(ocr, truth) } else { athena_ocr::metrics::cer(ocr, truth) };
    let len = if words {
        truth.split_whitespace().collect::<Vec<_>>().join(" ").chars().count()
    } else {
        truth.chars().filter(|c| !c.is_whitespace()).count()
    };
    (cer * len as f64, len as f64)
}

/// `pdftotext` of one page of `pdf`.
pub fn pdftotext(pdf: &Path, page: usize) -> String {
    let out = Command::new("pdftotext")
        .args(["-f", &page.to_string(), "-l", &page.to_string(), "-enc", "UTF-8"])
        .arg(pdf)
        .arg("-")
        .output()
        .expect("run pdftotext");
    assert!(out.status.success(), "pdftotext failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}
