//! OCR page images and print one JSON line per image: `{"image", "seconds", "lines", "text"}`.
//! Used by `scripts/bench-ocr.sh`; model loading and the first (warm-up) image are timed apart.
//!
//! `cargo run --release -p athena-ocr --example ocr_pages -- [--engine ppocr|tesseract]
//!  [--model-dir DIR] [--threads N] IMAGE...`

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use athena_ocr::{engine_from_config, load_image_file, EngineKind, OcrConfig, OcrEngine, PpOcr};

fn main() -> ExitCode {
    let mut config = OcrConfig::default();
    let mut images = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        let r: Result<(), String> = match a.as_str() {
            "--engine" => value("--engine").and_then(|v| v.parse::<EngineKind>().map_err(|e| e.to_string())).map(|k| config.engine = k),
            "--model-dir" => value("--model-dir").map(|v| config.model_dir = PathBuf::from(v)),
            "--threads" => {
                value("--threads").and_then(|v| v.parse().map_err(|_| "bad --threads".to_owned())).map(|n| config.intra_threads = n)
            }
            "--no-cls" => {
                config.use_angle_cls = false;
                Ok(())
            }
            _ => {
                images.push(PathBuf::from(a));
                Ok(())
            }
        };
        if let Err(e) = r {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    }
    let started = Instant::now();
    let engine = match config.engine {
        EngineKind::PpOcr => PpOcr::new(config.clone()).and_then(|e| e.warm_up().map(|()| e)).map(|e| Arc::new(e) as Arc<dyn OcrEngine>),
        EngineKind::Tesseract => engine_from_config(&config),
    };
    let engine = match engine {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error [{}]: {e}", e.reason_code());
            return ExitCode::FAILURE;
        }
    };
    eprintln!("{}: model load {:.2} s", engine.name(), started.elapsed().as_secs_f64());
    for path in images {
        let result = load_image_file(&path, config.max_pixels).and_then(|img| {
            let t = Instant::now();
            let page = engine.recognize(&img)?;
            Ok((t.elapsed().as_secs_f64(), page))
        });
        match result {
            Ok((seconds, page)) => println!(
                "{}",
                serde_json::json!({
                    "image": path.display().to_string(),
                    "seconds": seconds,
                    "lines": page.lines.len(),
                    "text": page.text(),
                })
            ),
            Err(e) => {
                eprintln!("{}: error [{}]: {e}", path.display(), e.reason_code());
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
