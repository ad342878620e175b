//! `athena doctor`: the seed's health checks in one report — configuration, data dirs, disk space,
//! database and migrations, object storage round trip, signing secret, mail.

use std::time::Instant;

use athena_config::{Config, Mode};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    /// `ok`, `warn` or `fail`.
    pub status: &'static str,
    pub detail: String,
    pub ms: u128,
}

#[derive(Debug, Serialize)]
pub struct DoctorReport {
    pub healthy: bool,
    pub checks: Vec<Check>,
}

/// Disk space below this is a warning (uploads of large books would fail).
const LOW_DISK_BYTES: u64 = 2 * 1024 * 1024 * 1024;

pub async fn doctor(mut config: Config) -> DoctorReport {
    let mut checks = Vec::new();
    let mut push = |name, started: Instant, result: Result<(&'static str, String), String>| {
        let (status, detail) = match result {
            Ok((status, detail)) => (status, detail),
            Err(e) => ("fail", e),
        };
        checks.push(Check { name, status, detail, ms: started.elapsed().as_millis() });
    };

    let t = Instant::now();
    push("config", t, Ok(("ok", format!("mode {:?}, API {}", config.mode, config.api_addr()))));

    let t = Instant::now();
    push(
        "data_dirs",
        t,
        crate::backends::ensure_dirs(&config)
            .map(|dirs| ("ok", format!("{} dirs writable", dirs.len())))
            .and_then(|r| {
                for dir in [&config.hot_dir, &config.cold_dir] {
                    let probe = dir.join(".doctor-probe");
                    std::fs::write(&probe, b"ok").map_err(|e| anyhow::anyhow!("{} is not writable: {e}", dir.display()))?;
                    let _ = std::fs::remove_file(&probe);
                }
                Ok(r)
            })
            .map_err(|e| e.to_string()),
    );

    for (name, dir) in [("disk_hot", config.hot_dir.clone()), ("disk_cold", config.cold_dir.clone())] {
        let t = Instant::now();
        let result = fs4::available_space(&dir)
            .map(|free| {
                let gib = free as f64 / (1024.0 * 1024.0 * 1024.0);
                if free < LOW_DISK_BYTES {
                    ("warn", format!("{gib:.1} GiB free in {}", dir.display()))
                } else {
                    ("ok", format!("{gib:.1} GiB free in {}", dir.display()))
                }
            })
            .map_err(|e| format!("{}: {e}", dir.display()));
        push(name, t, result);
    }

    let t = Instant::now();
    let secret = config.ensure_dev_secret();
    push("signing_secret", t, secret.map(|_| ("ok", "present".to_string())).map_err(|e| e.to_string()));

    let t = Instant::now();
    match crate::backends::open_store(&config).await {
        Ok(store) => {
            let r = async {
                store.ping().await.map_err(|e| format!("{e}"))?;
                store.migrate().await.map_err(|e| format!("migrations: {e}"))?;
                Ok::<_, String>(("ok", format!("{} reachable, migrations applied", store.backend())))
            }
            .await;
            push("database", t, r);
            store.close().await;
        }
        Err(e) => push("database", t, Err(format!("{e:#}"))),
    }

    let t = Instant::now();
    match crate::backends::open_blobs(&config, "http://127.0.0.1").await {
        Ok((blobs, _)) => push("storage", t, blobs.probe().await.map(|d| ("ok", d)).map_err(|e| e.to_string())),
        Err(e) => push("storage", t, Err(format!("{e:#}"))),
    }

    let t = Instant::now();
    let mail = match (&config.smtp, config.mode) {
        (Some(s), _) => Ok(("ok", format!("SMTP {}:{}", s.host, s.port))),
        (None, Mode::Development) => Ok(("warn", "no SMTP: login codes are logged and returned as dev_code (development)".to_string())),
        (None, Mode::Production) => Err("SMTP_HOST is required in production".to_string()),
    };
    push("mail", t, mail);

    // The worker's tools: missing ones are warnings (the rest of Athena works; those books say why they failed).
    let t = Instant::now();
    let calibre = if athena_convert::calibre_available() {
        match athena_convert::calibre_version(&std::env::temp_dir()).await {
            Ok(v) => Ok(("ok", format!("Calibre {v} (ebook-convert)"))),
            Err(e) => Ok(("warn", format!("ebook-convert found but does not run: {e}"))),
        }
    } else {
        Ok((
            "warn",
            "ebook-convert not found: MOBI, AZW3, FB2, TXT, RTF, DOCX … cannot be converted (install Debian's calibre)".to_string(),
        ))
    };
    push("conversion", t, calibre);

    let t = Instant::now();
    let w = &config.worker;
    let ocr = match w.ocr_engine {
        athena_config::OcrEngineKind::Off => Ok(("ok", "turned off (ATHENA_OCR_ENGINE=off)".to_string())),
        athena_config::OcrEngineKind::Tesseract => Ok(if athena_convert::sandbox::find_program("tesseract".as_ref()).is_some() {
            ("ok", "Tesseract".to_string())
        } else {
            ("warn", "tesseract not found".to_string())
        }),
        athena_config::OcrEngineKind::PpOcr => {
            let missing: Vec<String> = ["ppocr/det.onnx", "ppocr/rec.onnx", "ppocr/cls.onnx"]
                .iter()
                .map(|f| w.model_dir.join(f))
                .chain(std::iter::once(w.ort_dylib.clone()))
                .filter(|p| !p.exists())
                .map(|p| p.display().to_string())
                .collect();
            if missing.is_empty() {
                Ok(("ok", format!("PP-OCR models in {}", w.model_dir.display())))
            } else {
                Ok(("warn", format!("PP-OCR files missing (run scripts/fetch-models.sh): {}", missing.join(", "))))
            }
        }
    };
    push("ocr", t, ocr);

    let healthy = checks.iter().all(|c| c.status != "fail");
    DoctorReport { healthy, checks }
}
