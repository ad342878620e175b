use std::path::Path;

/// What went wrong, by kind: the CLI prints these as they are, so each names what to do.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("no backup set named `{0}` (see `athena backup list`)")]
    NotFound(String),
    /// The set is truncated, corrupt, from an unknown format, or does not match what its manifest says.
    #[error("backup `{name}` is not usable: {reason}")]
    Corrupt { name: String, reason: String },
    /// The operation would overwrite data or mix backends; nothing was changed.
    #[error("refused: {0}")]
    Refused(String),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("database: {0}")]
    Database(String),
    #[error("object storage: {0}")]
    Storage(String),
    /// An external tool (pg_dump, psql) failed.
    #[error("{0}")]
    Tool(String),
}

pub type Result<T, E = BackupError> = std::result::Result<T, E>;

impl BackupError {
    pub fn io(context: impl std::fmt::Display, path: &Path) -> impl FnOnce(std::io::Error) -> BackupError {
        let context = format!("{context} {}", path.display());
        move |source| BackupError::Io { context, source }
    }

    pub fn corrupt(name: &str, reason: impl Into<String>) -> Self {
        Self::Corrupt { name: name.to_string(), reason: reason.into() }
    }

    /// True when the backup set itself is unusable (as opposed to the environment failing).
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Self::Corrupt { .. })
    }
}

impl From<sqlx::Error> for BackupError {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(e.to_string())
    }
}

impl From<athena_store::StoreError> for BackupError {
    fn from(e: athena_store::StoreError) -> Self {
        Self::Database(e.to_string())
    }
}

impl From<athena_blob::BlobError> for BackupError {
    fn from(e: athena_blob::BlobError) -> Self {
        Self::Storage(e.to_string())
    }
}

impl From<tokio::task::JoinError> for BackupError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::Tool(format!("a backup task stopped: {e}"))
    }
}
