use athena_domain::ParseError;
use athena_store::StoreError;

/// A use case's failure, by kind. Each kind has one stable API code (`CONTRACTS.md`); the HTTP layer
/// maps codes to statuses and never invents its own.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("authentication required")]
    Unauthorized,
    #[error("the access token is invalid or expired")]
    InvalidToken,
    #[error("the code is wrong or expired")]
    InvalidCode,
    #[error("the refresh token is invalid, expired or already used")]
    InvalidRefresh,
    #[error("the signature is invalid or expired")]
    BadSignature,
    #[error("{0}")]
    Forbidden(String),
    #[error("the account is over its storage quota; uploads are disabled")]
    UploadForbiddenQuotaExceeded,
    #[error("not found")]
    NotFound,
    #[error("the resource changed since you read it")]
    VersionConflict,
    #[error("{field}: {message}")]
    Validation { field: String, message: String },
    #[error("missing {0}")]
    MissingField(&'static str),
    #[error("the upload is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: u64 },
    #[error("{message}")]
    UnsupportedFormat { reason: &'static str, message: String },
    #[error("the book already has a text layer")]
    AlreadyDigitalized,
    #[error("the book has {pages} pages; OCR takes at most {max}")]
    OcrMaxPagesExceeded { pages: u32, max: u32 },
    #[error("OCR of this book is already under way")]
    OcrInProgress,
    #[error("this OCR needs {needed} units and {left} of your monthly units are left")]
    OcrQuotaExceeded { needed: u32, left: u32 },
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("a dependency is unavailable; retry later")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl AppError {
    /// The stable code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::InvalidToken => "invalid_token",
            Self::InvalidCode => "invalid_code",
            Self::InvalidRefresh => "invalid_refresh",
            Self::BadSignature => "bad_signature",
            Self::Forbidden(_) => "forbidden",
            Self::UploadForbiddenQuotaExceeded => "upload_forbidden_quota_exceeded",
            Self::NotFound => "not_found",
            Self::VersionConflict => "version_conflict",
            Self::Validation { .. } => "validation_error",
            Self::MissingField("filename") => "missing_filename",
            Self::MissingField("key") => "missing_key",
            Self::MissingField(_) => "validation_error",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedFormat { .. } => "unsupported_format",
            Self::RateLimited { .. } => "rate_limited",
            Self::AlreadyDigitalized => "already_digitalized",
            Self::OcrMaxPagesExceeded { .. } => "ocr_max_pages_exceeded",
            Self::OcrInProgress => "ocr_in_progress",
            Self::OcrQuotaExceeded { .. } => "ocr_quota_exceeded",
            Self::Unavailable(_) | Self::Internal(_) => "internal_error",
        }
    }

    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation { field: field.into(), message: message.into() }
    }

    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(e))
    }

    /// Structured details for the error body (`details`), never containing internals.
    pub fn details(&self) -> serde_json::Value {
        match self {
            Self::Validation { field, message } => serde_json::json!({ "field": field, "message": message }),
            Self::MissingField(field) => serde_json::json!({ "field": field }),
            Self::PayloadTooLarge { limit } => serde_json::json!({ "limit_bytes": limit }),
            Self::UnsupportedFormat { reason, .. } => serde_json::json!({ "reason": reason }),
            Self::RateLimited { retry_after_secs } => serde_json::json!({ "retry_after_secs": retry_after_secs }),
            Self::OcrMaxPagesExceeded { pages, max } => serde_json::json!({ "pages": pages, "max_pages": max }),
            Self::OcrQuotaExceeded { needed, left } => serde_json::json!({ "units_needed": needed, "units_left": left }),
            _ => serde_json::json!({}),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound,
            StoreError::VersionConflict => Self::VersionConflict,
            StoreError::Conflict(what) => Self::Internal(format!("unexpected conflict: {what}").into()),
            StoreError::Unavailable(source) => Self::Unavailable(source),
            StoreError::Internal(source) => Self::Internal(source),
        }
    }
}

impl From<athena_blob::BlobError> for AppError {
    fn from(e: athena_blob::BlobError) -> Self {
        use athena_blob::BlobError as B;
        match e {
            B::NotFound => Self::NotFound,
            B::TooLarge { limit } => Self::PayloadTooLarge { limit },
            B::InvalidRange => Self::validation("range", "is outside the file"),
            B::InvalidSignature | B::Expired => Self::BadSignature,
            B::Unavailable(source) => Self::Unavailable(source),
            other => Self::internal(other),
        }
    }
}

impl From<ParseError> for AppError {
    fn from(e: ParseError) -> Self {
        Self::validation(e.field, e.reason)
    }
}

pub type AppResult<T> = Result<T, AppError>;
