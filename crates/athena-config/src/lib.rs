//! Athena's configuration: defaults, then `athena.toml`, then the environment (the seed's variable
//! names such as `DATABASE_URL`, `MINIO_*`, `POWERSYNC_JWT_SECRET`, `SMTP_*`, plus `ATHENA_*`).
//!
//! Loading is pure except for reading the TOML file; [`Config::ensure_dev_secret`] is the one step
//! that writes (the signing secret that development mode generates and persists). Secrets are held
//! in [`Secret`], which never prints its value. A malformed value stops start-up with an error that
//! names the setting. This crate knows nothing about HTTP, SQL or storage clients.

mod env;
mod model;
mod secret;

pub use model::*;
pub use secret::Secret;

/// Why configuration could not be loaded; the message always names the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{setting}: {reason}")]
    Invalid { setting: String, reason: String },
    #[error("{setting} is required in production mode")]
    Missing { setting: String },
    #[error("config file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("{0}")]
    Io(String),
}

impl ConfigError {
    pub(crate) fn invalid(setting: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid { setting: setting.into(), reason: reason.into() }
    }
}
