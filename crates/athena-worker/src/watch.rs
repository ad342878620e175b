//! The watch folder (the seed's `calibre-watcher`): files dropped into `ATHENA_WATCH_DIR` are
//! imported for `ATHENA_WATCH_USER`, then moved to `done/`, or to `failed/` beside a
//! `<name>.reason.txt` that says why. A file is imported only once its size and modification time
//! stayed the same across two scans, so a copy in progress is never imported half-written.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use athena_app::{App, Principal};
use athena_domain::{Email, SessionId};
use tokio_util::sync::CancellationToken;

const SCAN_EVERY: Duration = Duration::from_secs(3);

/// Suffixes of files still being written by common tools.
const PARTIAL_SUFFIXES: [&str; 5] = [".part", ".partial", ".tmp", ".crdownload", ".download"];

pub struct WatchFolder {
    app: App,
    dir: PathBuf,
    user: String,
    /// Path → (size, mtime) seen at the previous scan.
    seen: HashMap<PathBuf, (u64, SystemTime)>,
}

/// What one scan did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScanReport {
    pub imported: Vec<String>,
    pub failed: Vec<(String, String)>,
    /// Files seen for the first time or still changing.
    pub waiting: usize,
}

impl WatchFolder {
    pub fn from_config(app: &App) -> Option<Self> {
        let w = &app.config.worker;
        Some(Self::new(app.clone(), w.watch_dir.clone()?, w.watch_user.clone()?))
    }

    pub fn new(app: App, dir: PathBuf, user: String) -> Self {
        Self { app, dir, user, seen: HashMap::new() }
    }

    pub async fn run(mut self, stop: CancellationToken) {
        tracing::info!(dir = %self.dir.display(), "watching for books to import");
        while !stop.is_cancelled() {
            match self.scan().await {
                Ok(report) if !report.imported.is_empty() || !report.failed.is_empty() => {
                    tracing::info!(imported = report.imported.len(), failed = report.failed.len(), "watch folder");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(dir = %self.dir.display(), error = %e, "watch folder scan failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(SCAN_EVERY) => {}
                _ = stop.cancelled() => {}
            }
        }
    }

    /// Looks at the folder once: imports files that stopped changing since the previous scan.
    pub async fn scan(&mut self) -> anyhow::Result<ScanReport> {
        let mut report = ScanReport::default();
        tokio::fs::create_dir_all(self.dir.join("done")).await?;
        tokio::fs::create_dir_all(self.dir.join("failed")).await?;
        let mut now_seen = HashMap::new();
        let mut entries = tokio::fs::read_dir(&self.dir).await?;
        while let Some(entry) = entries.next_entry().await? {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            let meta = match entry.metadata().await {
                Ok(m) => m,
                Err(_) => continue,
            };
            if !meta.is_file() || name.starts_with('.') || PARTIAL_SUFFIXES.iter().any(|s| name.to_ascii_lowercase().ends_with(s)) {
                continue;
            }
            let stamp = (meta.len(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH));
            if self.seen.get(&path) != Some(&stamp) {
                now_seen.insert(path, stamp);
                report.waiting += 1;
                continue;
            }
            match self.import(&path, &name).await {
                Ok(()) => {
                    move_into(&path, &self.dir.join("done"), &name).await?;
                    report.imported.push(name);
                }
                Err(reason) => {
                    let target = move_into(&path, &self.dir.join("failed"), &name).await?;
                    let mut reason_path = target.into_os_string();
                    reason_path.push(".reason.txt");
                    tokio::fs::write(&reason_path, format!("{reason}\n")).await?;
                    report.failed.push((name, reason));
                }
            }
        }
        self.seen = now_seen;
        Ok(report)
    }

    async fn import(&self, path: &Path, name: &str) -> Result<(), String> {
        let email: Email = self.user.parse().map_err(|_| format!("ATHENA_WATCH_USER {:?} is not an email address", self.user))?;
        let user = match self.app.store.user_by_email(&email).await {
            Ok(Some(u)) => u,
            Ok(None) => return Err(format!("no user {email}; create it with `athena admin create --email {email}`")),
            Err(e) => return Err(format!("database: {e}")),
        };
        let who = Principal { user_id: user.id, session_id: SessionId::new() };
        let file = tokio::fs::File::open(path).await.map_err(|e| format!("reading the file: {e}"))?;
        let body = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
        match self.app.upload_stream(&who, name, None, None, body).await {
            Ok(uploaded) => {
                tracing::info!(file = name, book = %uploaded.book.id, created = uploaded.created, "imported from the watch folder");
                Ok(())
            }
            Err(e) => Err(format!("{}: {e}", e.code())),
        }
    }
}

/// Moves a file into `dir`, keeping its name unless taken (then `name (2)`, `name (3)` …).
async fn move_into(path: &Path, dir: &Path, name: &str) -> std::io::Result<PathBuf> {
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s.to_string(), format!(".{e}")),
        _ => (name.to_string(), String::new()),
    };
    let mut target = dir.join(name);
    let mut n = 2;
    while tokio::fs::try_exists(&target).await? {
        target = dir.join(format!("{stem} ({n}){ext}"));
        n += 1;
    }
    tokio::fs::rename(path, &target).await?;
    Ok(target)
}
