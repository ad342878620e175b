/// What went wrong in storage, by kind. Callers decide the API code from the kind only.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such row, or a row of another user.
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated (e.g. an email already registered).
    #[error("conflict: {0}")]
    Conflict(String),
    /// An optimistic-concurrency check failed: the row changed since the caller read it.
    #[error("version conflict")]
    VersionConflict,
    /// The database is unreachable, busy or timed out: the caller may retry.
    #[error("storage unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Anything else (a bug, corrupt data, a failed migration).
    #[error("storage error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(e))
    }
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}
