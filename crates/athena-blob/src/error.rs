use std::error::Error as StdError;

type Source = Box<dyn StdError + Send + Sync>;

/// What went wrong with object storage. `Unavailable` is worth retrying; `Internal` is not.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("object not found")]
    NotFound,
    #[error("body is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("byte range is outside the object")]
    InvalidRange,
    #[error("signature does not match")]
    InvalidSignature,
    #[error("signed URL has expired")]
    Expired,
    #[error("object storage is unavailable: {0}")]
    Unavailable(#[source] Source),
    #[error("object storage failed: {0}")]
    Internal(#[source] Source),
}

impl BlobError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    pub(crate) fn internal(msg: impl Into<String>) -> Self {
        Self::Internal(msg.into().into())
    }

    /// Errors from the body a caller streams in: our own errors pass through (the stream may
    /// carry a `BlobError`), the rest are the caller's I/O failing, not the store's.
    pub(crate) fn from_body(e: std::io::Error) -> Self {
        match e.downcast::<BlobError>() {
            Ok(inner) => inner,
            Err(e) => Self::Internal(Box::new(e)),
        }
    }
}

impl From<std::io::Error> for BlobError {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::NotFound => Self::NotFound,
            K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected
            | K::TimedOut
            | K::Interrupted
            | K::BrokenPipe
            | K::UnexpectedEof => Self::Unavailable(Box::new(e)),
            _ => match e.downcast::<opendal::Error>() {
                Ok(inner) => inner.into(),
                Err(e) => Self::Internal(Box::new(e)),
            },
        }
    }
}

impl From<opendal::Error> for BlobError {
    fn from(e: opendal::Error) -> Self {
        use opendal::ErrorKind as K;
        match e.kind() {
            K::NotFound => Self::NotFound,
            K::RangeNotSatisfied => Self::InvalidRange,
            // Network failures, throttling and 5xx are marked temporary by OpenDAL.
            // Persistent: transient, and still failing after the retry layer gave up: still a
            // "try again later" for callers, not a bug.
            _ if e.is_temporary() || e.is_persistent() => Self::Unavailable(Box::new(e)),
            K::RateLimited => Self::Unavailable(Box::new(e)),
            _ => Self::Internal(Box::new(e)),
        }
    }
}
