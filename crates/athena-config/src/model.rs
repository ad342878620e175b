use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::env::{spec, SETTINGS};
use crate::{ConfigError, Secret};

pub use crate::env::SettingSpec;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Development,
    Production,
}

#[derive(Clone, Debug, Serialize)]
pub struct S3Config {
    pub endpoint: String,
    pub public_endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: Secret,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    Starttls,
    Tls,
    None,
}

#[derive(Clone, Debug, Serialize)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub from: String,
    pub tls: SmtpTls,
}

#[derive(Clone, Debug, Serialize)]
pub struct Limits {
    pub max_upload_bytes: u64,
    pub quota_books: u64,
    pub quota_bytes: u64,
    pub upload_url_ttl_secs: u64,
    pub pending_upload_ttl_hours: u64,
    pub trash_retention_days: u64,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_days: u64,
    pub login_code_max_attempts: u32,
    pub login_failures_per_hour: u32,
}

/// The effective configuration. Serialising it (for `athena config show`) redacts secrets.
/// Which OCR engine the worker runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OcrEngineKind {
    PpOcr,
    Tesseract,
    Off,
}

/// Which keyword search engine serves `/search`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchEngineKind {
    /// PostgreSQL when the database is PostgreSQL (one index shared by every replica), else tantivy.
    Auto,
    /// The embedded index in the hot dir (one writing process).
    Tantivy,
    /// Full-text tables in the PostgreSQL database; requires a PostgreSQL `DATABASE_URL`.
    Postgres,
}

/// The worker role: queues, time limits, conversion, OCR, watch folder.
#[derive(Clone, Debug, Serialize)]
pub struct WorkerConfig {
    /// Prometheus listener of a worker-only process.
    pub metrics_port: u16,
    pub cpu_concurrency: usize,
    pub ocr_concurrency: usize,
    pub embed_concurrency: usize,
    pub max_attempts: u32,
    pub lease_secs: u64,
    pub timeout_conversion_secs: u64,
    pub timeout_ocr_secs: u64,
    pub timeout_indexing_secs: u64,
    pub timeout_embedding_secs: u64,
    pub timeout_covers_secs: u64,
    pub convert_memory_mb: u64,
    pub ocr_engine: OcrEngineKind,
    pub model_dir: PathBuf,
    pub ort_dylib: PathBuf,
    /// The embedding model for semantic search; `None` when semantic search is off (or `auto` and
    /// the file is missing).
    pub embed_model: Option<PathBuf>,
    pub ocr_dpi: u32,
    /// Page limits of the 1-, 2- and 3-unit tiers; more pages than the last is refused.
    pub ocr_tiers: Vec<u32>,
    pub ocr_free_units: u32,
    pub cover_font: Option<PathBuf>,
    pub watch_dir: Option<PathBuf>,
    pub watch_user: Option<String>,
}

/// Where backups copy objects to.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BackupObjects {
    /// A local folder (default `BACKUP_DIR/objects`).
    Folder { path: PathBuf },
    /// `s3://bucket/prefix`: the main S3 endpoint and credentials unless `ATHENA_BACKUP_S3_*` say otherwise.
    S3 { endpoint: String, bucket: String, prefix: String, region: String, access_key: String, secret_key: Secret },
}

/// Backups: object target, offsite copy, retention and the worker's schedule.
#[derive(Clone, Debug, Serialize)]
pub struct BackupConfig {
    pub objects: BackupObjects,
    pub offsite_dir: Option<PathBuf>,
    pub keep_days: u32,
    pub offsite_keep_days: u32,
    /// UTC (hour, minute) of the daily backup; `None` = off.
    pub at: Option<(u32, u32)>,
    /// Minutes between SQLite snapshots (the RPO on SQLite); 0 = off.
    pub sqlite_interval_minutes: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct Config {
    pub mode: Mode,
    pub bind: IpAddr,
    pub api_port: u16,
    pub sync_port: u16,
    pub metrics_port: u16,
    pub public_url: Option<String>,
    pub data_dir: PathBuf,
    pub hot_dir: PathBuf,
    pub cold_dir: PathBuf,
    pub backup_dir: PathBuf,
    /// `None`: embedded SQLite in the hot dir.
    pub database_url: Option<Secret>,
    pub db_max_connections: u32,
    /// `None`: local folder in the cold dir.
    pub s3: Option<S3Config>,
    /// `None` until [`Config::ensure_dev_secret`] in development; required in production.
    pub jwt_secret: Option<Secret>,
    pub powersync_upload_enabled: bool,
    /// `None`: the rules built into the binary (`deploy/sync_rules.yaml`).
    pub sync_rules: Option<PathBuf>,
    pub smtp: Option<SmtpConfig>,
    pub sentry_dsn: Option<Secret>,
    pub cors_origins: Vec<String>,
    /// The built web app served at `/` (`web/dist`); the placeholder page when it has no `index.html`.
    pub web_dir: PathBuf,
    pub global_dedup: bool,
    pub search_engine: SearchEngineKind,
    pub limits: Limits,
    pub worker: WorkerConfig,
    pub backup: BackupConfig,
    pub log_format: String,
    pub log_level: String,
}

impl Config {
    /// Loads from `athena.toml` (the path given, or `ATHENA_CONFIG`, or `./athena.toml` if it exists)
    /// and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let env_file = std::env::var("ATHENA_CONFIG").ok().map(PathBuf::from);
        let path = file.map(Path::to_path_buf).or(env_file);
        let (path, required) = match path {
            Some(p) => (p, true),
            None => (PathBuf::from("athena.toml"), false),
        };
        let toml_text = match std::fs::read_to_string(&path) {
            Ok(t) => Some(t),
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(ConfigError::File { path: path.display().to_string(), reason: e.to_string() }),
        };
        Self::from_sources(toml_text.as_deref(), &path.display().to_string(), |name| std::env::var(name).ok())
    }

    /// Defaults, then the TOML text, then `env` (a lookup, so tests need not touch the process env).
    pub fn from_sources(toml_text: Option<&str>, toml_name: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut raw: BTreeMap<&'static str, (String, String)> = BTreeMap::new();
        if let Some(text) = toml_text {
            let table: toml::Table =
                text.parse().map_err(|e: toml::de::Error| ConfigError::File { path: toml_name.into(), reason: e.message().into() })?;
            for (key, value) in table {
                let spec =
                    spec(&key).ok_or_else(|| ConfigError::File { path: toml_name.into(), reason: format!("unknown setting `{key}`") })?;
                let text = match value {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    toml::Value::Float(f) => f.to_string(),
                    toml::Value::Array(items) => {
                        items.iter().map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).collect::<Vec<_>>().join(",")
                    }
                    _ => return Err(ConfigError::invalid(key, "must be a string, number, boolean or list")),
                };
                raw.insert(spec.key, (text, format!("{toml_name}: {key}")));
            }
        }
        for spec in SETTINGS {
            // The first environment name that is set wins over the file.
            if let Some((name, value)) = spec.env.iter().find_map(|n| env(n).map(|v| (*n, v))) {
                raw.insert(spec.key, (value, name.to_string()));
            }
        }
        Resolver { raw }.resolve()
    }

    /// The address and port of the API listener.
    pub fn api_addr(&self) -> std::net::SocketAddr {
        (self.bind, self.api_port).into()
    }

    /// In development, a missing signing secret is generated once and kept in
    /// `{hot_dir}/secrets/jwt_secret` (mode 0600), so tokens survive restarts.
    pub fn ensure_dev_secret(&mut self) -> Result<(), ConfigError> {
        if self.jwt_secret.is_some() {
            return Ok(());
        }
        if self.mode == Mode::Production {
            return Err(ConfigError::Missing { setting: "POWERSYNC_JWT_SECRET".into() });
        }
        let dir = self.hot_dir.join("secrets");
        let path = dir.join("jwt_secret");
        let io = |e: std::io::Error| ConfigError::Io(format!("{}: {e}", path.display()));
        if let Ok(existing) = std::fs::read_to_string(&path) {
            let existing = existing.trim().to_string();
            if existing.len() >= 32 {
                self.jwt_secret = Some(Secret::new(existing));
                return Ok(());
            }
        }
        std::fs::create_dir_all(&dir).map_err(io)?;
        let mut bytes = [0u8; 48];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        let secret = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
        write_private(&path, &secret).map_err(io)?;
        self.jwt_secret = Some(Secret::new(secret));
        Ok(())
    }

    /// Every setting with its environment names and help, for docs and `.env.example` checks.
    pub fn specs() -> &'static [SettingSpec] {
        SETTINGS
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

struct Resolver {
    /// key → (value, where it came from, for error messages)
    raw: BTreeMap<&'static str, (String, String)>,
}

impl Resolver {
    fn text(&self, key: &str) -> Option<&str> {
        self.raw.get(key).map(|(v, _)| v.as_str()).filter(|v| !v.trim().is_empty())
    }

    fn name(&self, key: &str) -> String {
        match self.raw.get(key) {
            Some((_, source)) => source.clone(),
            None => spec(key).map(|s| s.env[0].to_string()).unwrap_or_else(|| key.to_string()),
        }
    }

    fn parse<T: std::str::FromStr>(&self, key: &str, default: T, what: &str) -> Result<T, ConfigError> {
        match self.text(key) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| ConfigError::invalid(self.name(key), format!("must be {what}, got `{v}`"))),
        }
    }

    fn flag(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.text(key).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) => match v.as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(ConfigError::invalid(self.name(key), format!("must be true or false, got `{v}`"))),
            },
        }
    }

    fn url(&self, key: &str, schemes: &[&str]) -> Result<Option<String>, ConfigError> {
        let Some(v) = self.text(key) else { return Ok(None) };
        let parsed = url::Url::parse(v.trim()).map_err(|e| ConfigError::invalid(self.name(key), format!("must be a URL ({e})")))?;
        if !schemes.contains(&parsed.scheme()) {
            return Err(ConfigError::invalid(self.name(key), format!("must be a {} URL", schemes.join(" or "))));
        }
        Ok(Some(v.trim().trim_end_matches('/').to_string()))
    }

    fn resolve(self) -> Result<Config, ConfigError> {
        let mode = match self.text("mode").map(|m| m.trim().to_ascii_lowercase()) {
            None => Mode::Development,
            Some(m) if m == "development" || m == "dev" => Mode::Development,
            Some(m) if m == "production" || m == "prod" => Mode::Production,
            Some(m) => return Err(ConfigError::invalid(self.name("mode"), format!("must be development or production, got `{m}`"))),
        };
        let bind: IpAddr = self.parse("bind", IpAddr::from([127, 0, 0, 1]), "an IP address")?;
        if mode == Mode::Development && !bind.is_loopback() {
            return Err(ConfigError::invalid(
                self.name("bind"),
                "development mode returns login codes in responses, so it only listens on loopback; set ATHENA_MODE=production",
            ));
        }
        let port = |key: &str, default: u16| self.parse(key, default, "a port number (0-65535)");
        let data_dir = PathBuf::from(self.text("data_dir").unwrap_or("./data"));
        let hot_dir = self.text("hot_dir").map(PathBuf::from).unwrap_or_else(|| data_dir.join("hot"));
        let cold_dir = self.text("cold_dir").map(PathBuf::from).unwrap_or_else(|| data_dir.join("cold"));
        let backup_dir = PathBuf::from(self.text("backup_dir").unwrap_or("./backups"));

        let database_url = match self.url("database_url", &["postgres", "postgresql", "sqlite"])? {
            Some(u) => Some(Secret::new(u)),
            None => self.postgres_from_parts()?,
        };

        let s3 = match self.url("minio_endpoint", &["http", "https"])? {
            None => None,
            Some(endpoint) => {
                let access_key = self.text("minio_access_key").map(str::to_string);
                let secret_key = self.text("minio_secret_key").map(Secret::new);
                let (Some(access_key), Some(secret_key)) = (access_key, secret_key) else {
                    return Err(ConfigError::invalid("MINIO_ACCESS_KEY/MINIO_SECRET_KEY", "are required when MINIO_ENDPOINT is set"));
                };
                Some(S3Config {
                    endpoint,
                    public_endpoint: self.url("minio_public_endpoint", &["http", "https"])?,
                    bucket: self.text("minio_bucket").unwrap_or("athena").to_string(),
                    region: self.text("minio_region").unwrap_or("us-east-1").to_string(),
                    access_key,
                    secret_key,
                })
            }
        };

        let jwt_secret = self.text("jwt_secret").map(|s| Secret::new(s.trim()));
        if let Some(s) = &jwt_secret {
            if s.expose().len() < 32 {
                return Err(ConfigError::invalid(self.name("jwt_secret"), "must be at least 32 characters"));
            }
        }

        let smtp = match self.text("smtp_host") {
            None => None,
            Some(host) => {
                let tls = match self.text("smtp_tls").map(|t| t.trim().to_ascii_lowercase()).as_deref() {
                    None | Some("starttls") => SmtpTls::Starttls,
                    Some("tls") => SmtpTls::Tls,
                    Some("none") => SmtpTls::None,
                    Some(other) => {
                        return Err(ConfigError::invalid(self.name("smtp_tls"), format!("must be starttls, tls or none, got `{other}`")))
                    }
                };
                let from = self.text("smtp_from").ok_or_else(|| ConfigError::invalid("SMTP_FROM", "is required when SMTP_HOST is set"))?;
                if from.parse::<athena_domain::Email>().is_err() && !from.contains('<') {
                    return Err(ConfigError::invalid(self.name("smtp_from"), "must be an email address"));
                }
                Some(SmtpConfig {
                    host: host.trim().to_string(),
                    port: port("smtp_port", 587)?,
                    user: self.text("smtp_user").map(str::to_string),
                    password: self.text("smtp_password").map(Secret::new),
                    from: from.to_string(),
                    tls,
                })
            }
        };

        if mode == Mode::Production {
            if jwt_secret.is_none() {
                return Err(ConfigError::Missing { setting: "POWERSYNC_JWT_SECRET".into() });
            }
            if smtp.is_none() {
                return Err(ConfigError::Missing { setting: "SMTP_HOST (login codes are mailed in production)".into() });
            }
        }

        let cors_origins = self
            .text("cors_origins")
            .map(|v| v.split(',').map(|o| o.trim().trim_end_matches('/').to_string()).filter(|o| !o.is_empty()).collect())
            .unwrap_or_default();

        let limits = Limits {
            max_upload_bytes: self.parse("max_upload_bytes", 500 * 1024 * 1024, "a byte count")?,
            quota_books: self.parse("quota_books", 50, "a number")?,
            quota_bytes: self.parse("quota_bytes", 1024 * 1024 * 1024, "a byte count")?,
            upload_url_ttl_secs: self.parse("upload_url_ttl_secs", 3600, "seconds")?,
            pending_upload_ttl_hours: self.parse("pending_upload_ttl_hours", 24, "hours")?,
            trash_retention_days: self.parse("trash_retention_days", 30, "days")?,
            access_token_ttl_secs: self.parse("access_token_ttl_secs", 3600, "seconds")?,
            refresh_token_ttl_days: self.parse("refresh_token_ttl_days", 30, "days")?,
            login_code_max_attempts: self.parse("login_code_max_attempts", 5, "a number")?,
            login_failures_per_hour: self.parse("login_failures_per_hour", 20, "a number")?,
        };
        if limits.access_token_ttl_secs == 0 || limits.access_token_ttl_secs > 86_400 {
            return Err(ConfigError::invalid(self.name("access_token_ttl_secs"), "must be between 1 and 86400"));
        }

        let worker = self.worker()?;
        let backup = self.backup(&backup_dir, s3.as_ref())?;

        let log_format = self.text("log_format").unwrap_or("json").trim().to_ascii_lowercase();
        if log_format != "json" && log_format != "pretty" {
            return Err(ConfigError::invalid(self.name("log_format"), "must be json or pretty"));
        }

        Ok(Config {
            mode,
            bind,
            api_port: port("api_port", 48000)?,
            sync_port: port("sync_port", 48090)?,
            metrics_port: port("metrics_port", 49091)?,
            public_url: self.url("public_url", &["http", "https"])?,
            data_dir,
            hot_dir,
            cold_dir,
            backup_dir,
            database_url,
            db_max_connections: self.parse("db_max_connections", 10, "a number")?,
            s3,
            jwt_secret,
            powersync_upload_enabled: self.flag("powersync_upload_enabled", true)?,
            sync_rules: self.text("sync_rules").map(PathBuf::from),
            smtp,
            sentry_dsn: self.text("sentry_dsn").map(Secret::new),
            cors_origins,
            web_dir: PathBuf::from(self.text("web_dir").unwrap_or("web/dist")),
            global_dedup: self.flag("global_dedup", true)?,
            search_engine: match self.text("search_engine").map(|v| v.trim().to_ascii_lowercase()).as_deref() {
                None | Some("auto") => SearchEngineKind::Auto,
                Some("tantivy") => SearchEngineKind::Tantivy,
                Some("postgres") | Some("postgresql") => SearchEngineKind::Postgres,
                Some(other) => {
                    return Err(ConfigError::invalid(
                        self.name("search_engine"),
                        format!("must be auto, tantivy or postgres, got `{other}`"),
                    ))
                }
            },
            limits,
            worker,
            backup,
            log_format,
            log_level: self.text("log_level").unwrap_or("info").to_string(),
        })
    }

    fn worker(&self) -> Result<WorkerConfig, ConfigError> {
        let positive = |key: &str, default: u64| -> Result<u64, ConfigError> {
            let v: u64 = self.parse(key, default, "a positive number")?;
            if v == 0 {
                return Err(ConfigError::invalid(self.name(key), "must be at least 1"));
            }
            Ok(v)
        };
        let ocr_engine = match self.text("ocr_engine").map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("ppocr") | Some("pp-ocr") => OcrEngineKind::PpOcr,
            Some("tesseract") => OcrEngineKind::Tesseract,
            Some("off") | Some("none") => OcrEngineKind::Off,
            Some(other) => {
                return Err(ConfigError::invalid(self.name("ocr_engine"), format!("must be ppocr, tesseract or off, got `{other}`")))
            }
        };
        let model_dir = PathBuf::from(self.text("model_dir").unwrap_or("./models"));
        let ort_dylib =
            self.text("ort_dylib").map(PathBuf::from).unwrap_or_else(|| model_dir.join("onnxruntime").join("libonnxruntime.so"));
        let embed_path = self.text("embed_model").map(PathBuf::from).unwrap_or_else(|| model_dir.join("e5-small").join("e5-small-q4.bin"));
        let embed_model = match self.text("semantic").map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("auto") => embed_path.exists().then_some(embed_path),
            Some("on") => Some(embed_path),
            Some("off") => None,
            Some(other) => return Err(ConfigError::invalid(self.name("semantic"), format!("must be auto, on or off, got `{other}`"))),
        };
        let ocr_tiers = match self.text("ocr_tiers") {
            None => vec![600, 1000, 2000],
            Some(v) => {
                let tiers: Result<Vec<u32>, _> = v.split(',').map(|t| t.trim().parse::<u32>()).collect();
                match tiers {
                    Ok(t) if !t.is_empty() && t.windows(2).all(|w| w[0] < w[1]) && t[0] > 0 => t,
                    _ => return Err(ConfigError::invalid(self.name("ocr_tiers"), "must be increasing page counts, e.g. 600,1000,2000")),
                }
            }
        };
        let ocr_dpi: u32 = self.parse("ocr_dpi", 300, "a resolution in dpi")?;
        if !(72..=600).contains(&ocr_dpi) {
            return Err(ConfigError::invalid(self.name("ocr_dpi"), "must be between 72 and 600"));
        }
        let watch_dir = self.text("watch_dir").map(PathBuf::from);
        let watch_user = self.text("watch_user").map(|s| s.trim().to_string());
        if watch_dir.is_some() && watch_user.is_none() {
            return Err(ConfigError::invalid("ATHENA_WATCH_USER", "is required when ATHENA_WATCH_DIR is set"));
        }
        Ok(WorkerConfig {
            metrics_port: self.parse("worker_metrics_port", 49092, "a port number (0-65535)")?,
            cpu_concurrency: positive("worker_cpu_concurrency", 2)? as usize,
            ocr_concurrency: positive("worker_ocr_concurrency", 1)? as usize,
            embed_concurrency: positive("worker_embed_concurrency", 1)? as usize,
            max_attempts: positive("job_max_attempts", 3)? as u32,
            lease_secs: positive("job_lease_secs", 60)?,
            timeout_conversion_secs: positive("job_timeout_conversion_secs", 300)?,
            timeout_ocr_secs: positive("job_timeout_ocr_secs", 1800)?,
            timeout_indexing_secs: positive("job_timeout_indexing_secs", 600)?,
            timeout_embedding_secs: positive("job_timeout_embedding_secs", 3600)?,
            timeout_covers_secs: positive("job_timeout_covers_secs", 120)?,
            convert_memory_mb: positive("convert_memory_mb", 4096)?,
            ocr_engine,
            model_dir,
            ort_dylib,
            embed_model,
            ocr_dpi,
            ocr_tiers,
            ocr_free_units: self.parse("ocr_free_units", 3, "a number")?,
            cover_font: self.text("cover_font").map(PathBuf::from),
            watch_dir,
            watch_user,
        })
    }

    fn backup(&self, backup_dir: &Path, s3: Option<&S3Config>) -> Result<BackupConfig, ConfigError> {
        let objects = match self.text("backup_objects").map(str::trim) {
            None => BackupObjects::Folder { path: backup_dir.join("objects") },
            Some(v) if v.starts_with("s3://") => {
                let rest = &v["s3://".len()..];
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(ConfigError::invalid(self.name("backup_objects"), "must be s3://bucket/prefix"));
                }
                let endpoint = match self.url("backup_s3_endpoint", &["http", "https"])? {
                    Some(e) => e,
                    None => s3.map(|s| s.endpoint.clone()).ok_or_else(|| {
                        ConfigError::invalid(
                            self.name("backup_objects"),
                            "is an s3:// URL but neither ATHENA_BACKUP_S3_ENDPOINT nor MINIO_ENDPOINT is set",
                        )
                    })?,
                };
                let access_key = self.text("backup_s3_access_key").map(str::to_string).or_else(|| s3.map(|s| s.access_key.clone()));
                let secret_key = self.text("backup_s3_secret_key").map(Secret::new).or_else(|| s3.map(|s| s.secret_key.clone()));
                let (Some(access_key), Some(secret_key)) = (access_key, secret_key) else {
                    return Err(ConfigError::invalid(
                        "ATHENA_BACKUP_S3_ACCESS_KEY/ATHENA_BACKUP_S3_SECRET_KEY",
                        "are required for an s3:// backup target",
                    ));
                };
                BackupObjects::S3 {
                    endpoint,
                    bucket: bucket.to_string(),
                    prefix: prefix.trim_matches('/').to_string(),
                    region: s3.map(|s| s.region.clone()).unwrap_or_else(|| "us-east-1".to_string()),
                    access_key,
                    secret_key,
                }
            }
            Some(v) => BackupObjects::Folder { path: PathBuf::from(v) },
        };
        let at = match self.text("backup_at").map(|v| v.trim().to_ascii_lowercase()) {
            None => Some((2, 0)),
            Some(v) if v == "off" || v == "none" => None,
            Some(v) => {
                let parsed = v.split_once(':').and_then(|(h, m)| Some((h.parse::<u32>().ok()?, m.parse::<u32>().ok()?)));
                match parsed {
                    Some((h, m)) if h < 24 && m < 60 => Some((h, m)),
                    _ => return Err(ConfigError::invalid(self.name("backup_at"), format!("must be HH:MM (UTC) or off, got `{v}`"))),
                }
            }
        };
        Ok(BackupConfig {
            objects,
            offsite_dir: self.text("backup_offsite_dir").map(PathBuf::from),
            keep_days: self.parse("backup_keep_days", 7, "a number of days")?,
            offsite_keep_days: self.parse("backup_offsite_keep_days", 30, "a number of days")?,
            at,
            sqlite_interval_minutes: self.parse("backup_sqlite_interval_minutes", 10, "a number of minutes")?,
        })
    }

    /// The seed's compose files pass `POSTGRES_*` pieces instead of one URL.
    fn postgres_from_parts(&self) -> Result<Option<Secret>, ConfigError> {
        let Some(host) = self.text("postgres_host") else { return Ok(None) };
        let port: u16 = self.parse("postgres_port", 5432, "a port number")?;
        let user = self.text("postgres_user").unwrap_or("athena");
        let db = self.text("postgres_db").unwrap_or("athena");
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let auth = match self.text("postgres_password") {
            Some(p) => format!("{}:{}", enc(user), enc(p)),
            None => enc(user),
        };
        Ok(Some(Secret::new(format!("postgres://{auth}@{host}:{port}/{}", enc(db)))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: Option<&str>, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: BTreeMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_sources(toml, "athena.toml", |k| env.get(k).cloned())
    }

    #[test]
    fn zero_configuration_gives_embedded_defaults() {
        let c = load(None, &[]).unwrap();
        assert_eq!(c.mode, Mode::Development);
        assert_eq!((c.api_port, c.sync_port, c.metrics_port), (48000, 48090, 49091));
        assert_eq!(c.hot_dir, PathBuf::from("./data/hot"));
        assert!(c.database_url.is_none() && c.s3.is_none());
        assert_eq!(c.limits.max_upload_bytes, 500 * 1024 * 1024);
    }

    #[test]
    fn environment_overrides_file_and_seed_names_work() {
        let c = load(
            Some("api_port = 1000\nminio_bucket = \"b\""),
            &[
                ("ATHENA_API_PORT", "0"),
                ("MINIO_ENDPOINT", "http://127.0.0.1:48333"),
                ("MINIO_ROOT_USER", "admin"),
                ("MINIO_ROOT_PASSWORD", "pw"),
                ("POSTGRES_HOST", "db"),
                ("POSTGRES_PASSWORD", "p@ss"),
            ],
        )
        .unwrap();
        assert_eq!(c.api_port, 0);
        let s3 = c.s3.unwrap();
        assert_eq!((s3.bucket.as_str(), s3.access_key.as_str(), s3.secret_key.expose()), ("b", "admin", "pw"));
        assert_eq!(c.database_url.unwrap().expose(), "postgres://athena:p%40ss@db:5432/athena");
    }

    #[test]
    fn malformed_values_name_the_setting() {
        let e = load(None, &[("ATHENA_API_PORT", "http")]).unwrap_err().to_string();
        assert!(e.contains("ATHENA_API_PORT") && e.contains("port"), "{e}");
        let e = load(Some("api_port = 70000"), &[]).unwrap_err().to_string();
        assert!(e.contains("api_port"), "{e}");
        let e = load(Some("no_such = 1"), &[]).unwrap_err().to_string();
        assert!(e.contains("no_such"), "{e}");
        let e = load(None, &[("DATABASE_URL", "mysql://x")]).unwrap_err().to_string();
        assert!(e.contains("DATABASE_URL"), "{e}");
        let e = load(None, &[("POWERSYNC_JWT_SECRET", "short")]).unwrap_err().to_string();
        assert!(e.contains("POWERSYNC_JWT_SECRET") && !e.contains("short"), "{e}");
    }

    #[test]
    fn production_requires_secrets_and_dev_refuses_public_bind() {
        let e = load(None, &[("ATHENA_MODE", "production")]).unwrap_err().to_string();
        assert!(e.contains("POWERSYNC_JWT_SECRET"), "{e}");
        let secret = "x".repeat(40);
        let e = load(None, &[("ATHENA_MODE", "production"), ("POWERSYNC_JWT_SECRET", &secret)]).unwrap_err().to_string();
        assert!(e.contains("SMTP_HOST"), "{e}");
        let e = load(None, &[("ATHENA_BIND", "0.0.0.0")]).unwrap_err().to_string();
        assert!(e.contains("ATHENA_BIND"), "{e}");
    }

    #[test]
    fn secrets_never_print() {
        let c = load(
            None,
            &[("POWERSYNC_JWT_SECRET", "super-secret-value-that-is-long-enough!!"), ("DATABASE_URL", "postgres://u:hunter2@h/d")],
        )
        .unwrap();
        let shown = format!("{c:?} {}", serde_json::to_string(&c).unwrap());
        assert!(!shown.contains("super-secret") && !shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn dev_secret_is_generated_once_and_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let hot = dir.path().join("hot");
        let mut c = load(None, &[("ATHENA_HOT_DIR", hot.to_str().unwrap())]).unwrap();
        c.ensure_dev_secret().unwrap();
        let first = c.jwt_secret.clone().unwrap();
        let mut again = load(None, &[("ATHENA_HOT_DIR", hot.to_str().unwrap())]).unwrap();
        again.ensure_dev_secret().unwrap();
        assert_eq!(again.jwt_secret.unwrap(), first);
        assert!(first.expose().len() >= 32);
    }
}
