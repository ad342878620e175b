//! The one error type of the crate; every variant has a stable `reason_code`.

use std::path::PathBuf;

/// Why an OCR, rasterising or PDF-writing step failed.
#[derive(Debug, thiserror::Error)]
pub enum OcrError {
    #[error("onnxruntime library not found at {0} (run scripts/fetch-models.sh)")]
    RuntimeMissing(PathBuf),
    #[error("onnxruntime library at {path} could not be loaded: {message}")]
    RuntimeLoad { path: PathBuf, message: String },
    #[error("OCR model not found at {0} (run scripts/fetch-models.sh)")]
    ModelMissing(PathBuf),
    #[error("OCR model {path} is unusable: {message}")]
    ModelInvalid { path: PathBuf, message: String },
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("bad image: {0}")]
    BadImage(String),
    #[error("image of {width}x{height} pixels exceeds the limit of {max_pixels} pixels")]
    ImageTooLarge { width: u64, height: u64, max_pixels: u64 },
    #[error("could not run {program}: {message}")]
    ToolMissing { program: String, message: String },
    #[error("{program} did not finish within {seconds} s and was killed")]
    Timeout { program: String, seconds: u64 },
    #[error("{program} failed ({status}): {stderr}")]
    ToolFailed { program: String, status: String, stderr: String },
    #[error("bad PDF: {0}")]
    BadPdf(String),
    #[error("invalid OCR configuration: {0}")]
    Config(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl OcrError {
    /// A short, stable, machine-readable code for logs, job records and metrics.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Self::RuntimeMissing(_) => "ocr_runtime_missing",
            Self::RuntimeLoad { .. } => "ocr_runtime_load",
            Self::ModelMissing(_) => "ocr_model_missing",
            Self::ModelInvalid { .. } => "ocr_model_invalid",
            Self::Inference(_) => "ocr_inference",
            Self::BadImage(_) => "ocr_bad_image",
            Self::ImageTooLarge { .. } => "ocr_image_too_large",
            Self::ToolMissing { .. } => "ocr_tool_missing",
            Self::Timeout { .. } => "ocr_timeout",
            Self::ToolFailed { .. } => "ocr_tool_failed",
            Self::BadPdf(_) => "ocr_bad_pdf",
            Self::Config(_) => "ocr_config",
            Self::Io { .. } => "ocr_io",
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { context: context.into(), source }
    }
}

impl From<ort::Error> for OcrError {
    fn from(e: ort::Error) -> Self {
        Self::Inference(e.to_string())
    }
}
