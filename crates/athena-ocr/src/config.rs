//! Engine configuration, plain data with defaults that match the reference PP-OCR settings.

use std::path::PathBuf;
use std::time::Duration;

/// Which OCR engine [`crate::engine_from_config`] builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    /// PP-OCRv4 through ONNX Runtime ([`crate::PpOcr`]).
    PpOcr,
    /// The `tesseract` binary as a subprocess ([`crate::TesseractOcr`]).
    Tesseract,
}

impl std::str::FromStr for EngineKind {
    type Err = crate::OcrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ppocr" => Ok(Self::PpOcr),
            "tesseract" => Ok(Self::Tesseract),
            other => Err(crate::OcrError::Config(format!("unknown OCR engine {other:?} (expected ppocr or tesseract)"))),
        }
    }
}

/// Settings for both engines.
#[derive(Debug, Clone)]
pub struct OcrConfig {
    pub engine: EngineKind,
    /// Folder laid out by `scripts/fetch-models.sh`: `ppocr/{det,rec,cls}.onnx`, `onnxruntime/libonnxruntime.so`.
    pub model_dir: PathBuf,
    /// ONNX Runtime shared library; `None` means `$ORT_DYLIB_PATH`, else `model_dir/onnxruntime/libonnxruntime.so`.
    /// The library is loaded once per process: the first engine to run decides which file is used.
    pub ort_dylib: Option<PathBuf>,
    /// Threads ONNX Runtime may use inside one operator (and `OMP_THREAD_LIMIT` for Tesseract).
    pub intra_threads: usize,
    /// Run the 0°/180° text-direction classifier on each detected line.
    pub use_angle_cls: bool,
    /// Pages are downscaled so that their longer side is at most this many pixels before detection
    /// (the reference pipeline uses 2000; it bounds memory and time per page).
    pub max_side_len: u32,
    /// Images with more pixels than this are refused outright (decode bombs, absurd scans); this also
    /// bounds the one full-size RGB copy made of an image that is neither 8-bit RGB nor gray.
    pub max_pixels: u64,
    /// Recognised lines whose mean character confidence is below this are dropped.
    pub min_text_score: f32,
    /// Tesseract executable and languages.
    pub tesseract_cmd: PathBuf,
    pub tesseract_langs: String,
    /// Time limit for one Tesseract run.
    pub timeout: Duration,
}

impl Default for OcrConfig {
    fn default() -> Self {
        Self {
            engine: EngineKind::PpOcr,
            model_dir: PathBuf::from("models"),
            ort_dylib: None,
            intra_threads: 2,
            use_angle_cls: true,
            max_side_len: 2000,
            max_pixels: 120_000_000,
            min_text_score: 0.5,
            tesseract_cmd: PathBuf::from("tesseract"),
            tesseract_langs: "chi_sim+eng".to_owned(),
            timeout: Duration::from_secs(120),
        }
    }
}

impl OcrConfig {
    /// The ONNX Runtime library this configuration points at.
    pub fn ort_dylib_path(&self) -> PathBuf {
        if let Some(p) = &self.ort_dylib {
            return p.clone();
        }
        if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        self.model_dir.join("onnxruntime").join("libonnxruntime.so")
    }
}
