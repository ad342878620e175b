//! Backups of one Athena deployment: a *backup set* is a folder `BACKUP_DIR/athena_YYYYMMDD_HHMMSS/`
//! holding a consistent database dump (SQLite `VACUUM INTO`, or `pg_dump` inside an exported
//! snapshot), the map of object keys to content hashes, and `manifest.json`, written last through a
//! rename so a set without one never counts as good. Object contents go, once each, to a
//! content-addressed target (a folder or an S3 bucket/prefix). [`create`], [`list`], [`verify`],
//! [`restore`] and [`prune`] are the operations; [`schedule`] is the worker's timer.
//!
//! This crate knows the database dialects and object stores it copies; it must not know HTTP or the
//! use cases. It does not open the live stores itself: callers pass the live object store.

mod error;
pub mod manifest;
pub mod objects;
pub mod postgres;
pub mod schedule;
pub mod sqlite;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use athena_blob::BlobStore;
use athena_config::Config;
use chrono::{DateTime, Utc};
use serde::Serialize;

pub use error::{BackupError, Result};
pub use manifest::{Manifest, ObjectMap, SetKind, TableDigests};
pub use objects::{CopyStats, ObjectTarget};

use manifest::{write_synced, ObjectSummary, Verified, MANIFEST, OBJECT_MAP, VERIFIED};

/// Tables whose rows mean "this deployment holds data" (restore refuses to overwrite them).
const USER_TABLES: &[&str] = &["users", "books"];

/// Which database a configuration names.
#[derive(Clone, Debug)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(postgres::PgTarget),
}

impl Database {
    pub fn from_config(config: &Config) -> Result<Self> {
        match &config.database_url {
            Some(url) if url.expose().starts_with("postgres") => Ok(Self::Postgres(postgres::PgTarget::parse(url.expose())?)),
            _ => Ok(Self::Sqlite(sqlite::live_path(config))),
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// Row digests and migration version of the live database (for drills and tests).
    pub async fn digest(&self) -> Result<(TableDigests, i64)> {
        match self {
            Self::Sqlite(path) => sqlite::digest_file(path).await,
            Self::Postgres(t) => postgres::digest_database(t).await,
        }
    }
}

/// What [`create`] did.
#[derive(Clone, Debug, Serialize)]
pub struct CreateReport {
    pub name: String,
    pub dir: PathBuf,
    pub bytes: u64,
    pub objects: u64,
    pub objects_copied: u64,
    pub objects_skipped: u64,
    pub objects_bytes_copied: u64,
    pub seconds: f64,
    /// The offsite copy's failure, if any (the set itself is good).
    pub offsite_error: Option<String>,
}

/// One set as `list` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct SetInfo {
    pub name: String,
    pub dir: PathBuf,
    pub created_at: Option<DateTime<Utc>>,
    pub kind: Option<SetKind>,
    pub backend: Option<String>,
    pub bytes: u64,
    /// A manifest was written: the set finished.
    pub good: bool,
    /// `Some(true)` after a passing `verify`, `Some(false)` after a failing one.
    pub verified: Option<bool>,
    pub problem: Option<String>,
}

fn set_name(at: DateTime<Utc>) -> String {
    format!("athena_{}", at.format("%Y%m%d_%H%M%S"))
}

fn is_set_dir_name(name: &str) -> bool {
    name.starts_with("athena_") && !name.contains(".partial")
}

/// Creates a backup set of the configured database and of the live object store `live`.
/// `now` names the set (UTC), so tests can move time.
pub async fn create(config: &Config, live: &dyn BlobStore, kind: SetKind, now: DateTime<Utc>) -> Result<CreateReport> {
    let started = Instant::now();
    let db = Database::from_config(config)?;
    let root = &config.backup_dir;
    std::fs::create_dir_all(root).map_err(BackupError::io("creating", root))?;
    let mut name = set_name(now);
    let mut n = 2;
    while root.join(&name).exists() {
        name = format!("{}_{n}", set_name(now));
        n += 1;
    }
    let dir = root.join(&name);
    std::fs::create_dir(&dir).map_err(BackupError::io("creating", &dir))?;
    let scratch = root.join(format!(".scratch-{name}"));
    let result = async {
        std::fs::create_dir_all(&scratch).map_err(BackupError::io("creating", &scratch))?;
        create_in(config, &db, live, kind, now, &name, &dir, &scratch).await
    }
    .await;
    let _ = std::fs::remove_dir_all(&scratch);
    let (manifest, stats) = match result {
        Ok(m) => m,
        Err(e) => {
            // A failed set leaves nothing behind that could be mistaken for a backup.
            let _ = std::fs::remove_dir_all(&dir);
            metrics::gauge!("athena_backup_last_status").set(0.0);
            return Err(e);
        }
    };
    let offsite_error = match &config.backup.offsite_dir {
        Some(offsite) => copy_offsite(&dir, offsite, &name).err().map(|e| e.to_string()),
        None => None,
    };
    if let Some(e) = &offsite_error {
        tracing::warn!(error = %e, set = %name, "offsite copy of the backup set failed");
    }
    let report = CreateReport {
        name,
        dir,
        bytes: manifest.bytes(),
        objects: manifest.objects.count,
        objects_copied: manifest.objects.copied,
        objects_skipped: manifest.objects.skipped,
        objects_bytes_copied: stats.bytes_copied,
        seconds: started.elapsed().as_secs_f64(),
        offsite_error,
    };
    metrics::gauge!("athena_backup_last_status").set(1.0);
    metrics::gauge!("athena_backup_last_success_timestamp_seconds").set(manifest.created_at.timestamp() as f64);
    metrics::gauge!("athena_backup_last_size_bytes").set(report.bytes as f64);
    metrics::gauge!("athena_backup_age_seconds").set(0.0);
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn create_in(
    config: &Config,
    db: &Database,
    live: &dyn BlobStore,
    kind: SetKind,
    now: DateTime<Utc>,
    name: &str,
    dir: &Path,
    scratch: &Path,
) -> Result<(Manifest, CopyStats)> {
    // Rows first, then bytes: every object a dumped row names existed before the dump, so it is copied.
    let (db_file, tables, migration_version) = match db {
        Database::Sqlite(path) => sqlite::snapshot(path, dir, scratch).await?,
        Database::Postgres(t) => postgres::dump(t, dir, &postgres::dump_file_name(now)).await?,
    };
    let target = ObjectTarget::open(&config.backup).await?;
    let previous = match newest_good(&config.backup_dir)? {
        Some(m) => m.load_object_map(&config.backup_dir.join(&m.name)).unwrap_or_default(),
        None => ObjectMap::new(),
    };
    let (map, stats) = objects::copy_incremental(live, &target, &previous, scratch).await?;
    let map_path = dir.join(OBJECT_MAP);
    let text = serde_json::to_vec(&map).map_err(|e| BackupError::Tool(e.to_string()))?;
    write_synced(&map_path, &text)?;
    let (sha256, bytes) = manifest::hash_file(&map_path).map_err(BackupError::io("reading", &map_path))?;
    let map_file = manifest::FileEntry { name: OBJECT_MAP.to_string(), sha256, bytes };
    let manifest = Manifest {
        format: manifest::FORMAT_VERSION,
        athena_version: env!("CARGO_PKG_VERSION").to_string(),
        name: name.to_string(),
        kind,
        backend: db.backend().to_string(),
        object_backend: live.backend().to_string(),
        created_at: now,
        migration_version,
        files: vec![db_file, map_file],
        tables,
        objects: ObjectSummary {
            target: target.describe().to_string(),
            count: map.len() as u64,
            bytes: map.values().map(|e| e.size).sum(),
            copied: stats.copied,
            skipped: stats.skipped,
        },
    };
    manifest.write(dir)?;
    tracing::info!(set = name, copied = stats.copied, skipped = stats.skipped, "backup set written");
    Ok((manifest, stats))
}

/// Copies a finished set into the offsite folder (through a `.partial` folder and a rename).
fn copy_offsite(dir: &Path, offsite: &Path, name: &str) -> Result<()> {
    std::fs::create_dir_all(offsite).map_err(BackupError::io("creating", offsite))?;
    let partial = offsite.join(format!("{name}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir(&partial).map_err(BackupError::io("creating", &partial))?;
    let result = (|| {
        for entry in std::fs::read_dir(dir).map_err(BackupError::io("reading", dir))? {
            let entry = entry.map_err(BackupError::io("reading", dir))?;
            let to = partial.join(entry.file_name());
            std::fs::copy(entry.path(), &to).map_err(BackupError::io("copying to", &to))?;
        }
        let final_dir = offsite.join(name);
        std::fs::rename(&partial, &final_dir).map_err(BackupError::io("publishing", &final_dir))
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&partial);
    }
    result
}

fn read_sets(root: &Path) -> Result<Vec<SetInfo>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(BackupError::io("reading", root)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(BackupError::io("reading", root))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if !is_set_dir_name(&name) || !entry.path().is_dir() {
            continue;
        }
        let dir = entry.path();
        let verified =
            std::fs::read_to_string(dir.join(VERIFIED)).ok().and_then(|t| serde_json::from_str::<Verified>(&t).ok()).map(|v| v.ok);
        let info = match Manifest::load(&dir) {
            Ok(m) => SetInfo {
                name,
                created_at: Some(m.created_at),
                kind: Some(m.kind),
                backend: Some(m.backend.clone()),
                bytes: m.bytes(),
                good: true,
                verified,
                problem: None,
                dir,
            },
            Err(e) => SetInfo {
                name,
                created_at: None,
                kind: None,
                backend: None,
                bytes: dir_size(&dir),
                good: false,
                verified,
                problem: Some(e.to_string()),
                dir,
            },
        };
        out.push(info);
    }
    out.sort_by(|a, b| (a.created_at, &a.name).cmp(&(b.created_at, &b.name)));
    Ok(out)
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map(|es| es.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum()).unwrap_or(0)
}

/// Every set in the backup dir, oldest first; unfinished ones are listed as not good.
pub fn list(config: &Config) -> Result<Vec<SetInfo>> {
    read_sets(&config.backup_dir)
}

/// The newest finished set's manifest.
pub fn newest_good(root: &Path) -> Result<Option<Manifest>> {
    let newest = read_sets(root)?.into_iter().rev().find(|s| s.good);
    newest.map(|s| Manifest::load(&s.dir)).transpose()
}

fn set_dir(config: &Config, name: &str) -> Result<PathBuf> {
    let valid = is_set_dir_name(name) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let dir = config.backup_dir.join(name);
    if !valid || !dir.is_dir() {
        return Err(BackupError::NotFound(name.to_string()));
    }
    Ok(dir)
}

/// What [`verify`] checked.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub name: String,
    pub files: usize,
    pub tables: usize,
    pub rows: u64,
    pub objects: u64,
    pub seconds: f64,
}

/// Checksums, then a trial restore into a temporary location that must pass the database and
/// storage checks of `athena doctor` and match the manifest row for row; the result is recorded.
pub async fn verify(config: &Config, name: &str) -> Result<VerifyReport> {
    let dir = set_dir(config, name)?;
    let result = verify_in(config, name, &dir).await;
    let record = Verified { ok: result.is_ok(), at: Utc::now(), error: result.as_ref().err().map(|e| e.to_string()) };
    if let Ok(text) = serde_json::to_vec_pretty(&record) {
        let _ = write_synced(&dir.join(VERIFIED), &text);
    }
    result
}

async fn verify_in(config: &Config, name: &str, dir: &Path) -> Result<VerifyReport> {
    let started = Instant::now();
    let manifest = Manifest::load(dir)?;
    manifest.check_files(dir)?;
    let db = Database::from_config(config)?;
    let temp = tempfile::Builder::new()
        .prefix(".verify-")
        .tempdir_in(&config.backup_dir)
        .map_err(BackupError::io("creating a folder in", &config.backup_dir))?;
    let trial = trial_restore(&manifest, dir, &db, temp.path()).await?;
    let checked = async {
        match &trial {
            Trial::Sqlite(path) => sqlite::doctor_check(path).await,
            Trial::Postgres(t) => postgres::doctor_check(t).await,
        }
    }
    .await;
    trial.discard(&db).await;
    checked?;
    // Storage: the target answers the doctor's probe, and every content is there and matches its hash.
    let target = ObjectTarget::open(&config.backup).await?;
    target.store().probe().await?;
    let map = manifest.load_object_map(dir)?;
    let mut seen = HashSet::new();
    for entry in map.values() {
        if seen.insert(entry.sha256.clone()) && !target.check(entry).await? {
            return Err(BackupError::corrupt(
                name,
                format!("object content {} is missing or damaged in {}", entry.sha256, target.describe()),
            ));
        }
    }
    Ok(VerifyReport {
        name: name.to_string(),
        files: manifest.files.len(),
        tables: manifest.tables.len(),
        rows: manifest.tables.values().map(|t| t.rows).sum(),
        objects: map.len() as u64,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A database restored somewhere temporary.
enum Trial {
    Sqlite(PathBuf),
    Postgres(postgres::PgTarget),
}

impl Trial {
    async fn discard(&self, db: &Database) {
        match (self, db) {
            (Trial::Sqlite(path), _) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            (Trial::Postgres(t), Database::Postgres(live)) => {
                if let Err(e) = postgres::drop_database(live, &t.database()).await {
                    tracing::warn!(error = %e, "dropping the temporary database");
                }
            }
            (Trial::Postgres(_), Database::Sqlite(_)) => {}
        }
    }
}

/// Restores the set's database into `place` (a folder for SQLite; PostgreSQL gets a temporary
/// database on the configured server) and checks it against the manifest.
async fn trial_restore(manifest: &Manifest, dir: &Path, db: &Database, place: &Path) -> Result<Trial> {
    let name = &manifest.name;
    if manifest.backend != db.backend() {
        return Err(BackupError::Refused(format!(
            "backup `{name}` is of a {} database, but this Athena is configured for {}",
            manifest.backend,
            db.backend()
        )));
    }
    let file = manifest.database_file().ok_or_else(|| BackupError::corrupt(name, "the manifest lists no database file"))?;
    let dump = dir.join(&file.name);
    let trial = match db {
        Database::Sqlite(_) => {
            let path = place.join(format!("athena.db.restore-{}", uuid::Uuid::new_v4().simple()));
            let (from, to) = (dump.clone(), path.clone());
            let unpacked = tokio::task::spawn_blocking(move || manifest::gunzip_to_file(&from, &to)).await?;
            if let Err(e) = unpacked {
                let _ = std::fs::remove_file(&path);
                return Err(BackupError::corrupt(name, format!("the database file does not decompress: {e}")));
            }
            Trial::Sqlite(path)
        }
        Database::Postgres(live) => {
            let temp_name = format!("athena_restore_{}", uuid::Uuid::new_v4().simple());
            Trial::Postgres(postgres::restore_into(live, &temp_name, &dump).await?)
        }
    };
    let digested = match &trial {
        Trial::Sqlite(path) => sqlite::digest_file(path).await,
        Trial::Postgres(t) => postgres::digest_database(t).await,
    };
    let mismatch = match digested {
        Err(e) => Some(format!("the restored database does not open: {e}")),
        Ok((tables, version)) => {
            if version != manifest.migration_version {
                Some(format!("migration version {version}, the manifest says {}", manifest.migration_version))
            } else if tables != manifest.tables {
                let diff: Vec<String> = manifest
                    .tables
                    .iter()
                    .filter(|(t, d)| tables.get(*t) != Some(d))
                    .map(|(t, d)| format!("{t} ({} rows expected, {} restored)", d.rows, tables.get(t).map(|x| x.rows).unwrap_or(0)))
                    .collect();
                Some(format!("restored rows differ from the manifest: {}", diff.join(", ")))
            } else {
                None
            }
        }
    };
    if let Some(reason) = mismatch {
        trial.discard(db).await;
        return Err(BackupError::corrupt(name, reason));
    }
    Ok(trial)
}

/// What [`restore`] did; `seconds` is the measured recovery time.
#[derive(Clone, Debug, Serialize)]
pub struct RestoreReport {
    pub name: String,
    pub tables: usize,
    pub rows: u64,
    pub objects: u64,
    pub seconds: f64,
}

/// Restores a set into the configured database and object store. Refuses when they hold data
/// (unless `force`) and when the set is damaged: the set is restored and checked in a temporary
/// place first and swapped in only then. The server must be stopped.
pub async fn restore(config: &Config, live: &dyn BlobStore, name: &str, force: bool) -> Result<RestoreReport> {
    let started = Instant::now();
    let dir = set_dir(config, name)?;
    let manifest = Manifest::load(&dir)?;
    manifest.check_files(&dir)?;
    let db = Database::from_config(config)?;
    if manifest.backend != db.backend() {
        return Err(BackupError::Refused(format!(
            "backup `{name}` is of a {} database, but this Athena is configured for {}",
            manifest.backend,
            db.backend()
        )));
    }
    if !force {
        let has_rows = match &db {
            Database::Sqlite(path) => sqlite::has_data(path).await?,
            Database::Postgres(t) => postgres::has_data(t).await?,
        };
        if has_rows {
            return Err(BackupError::Refused("the database already holds data; restore with --force to replace it".into()));
        }
        if !objects::live_objects(live).await?.is_empty() {
            return Err(BackupError::Refused("the object store already holds objects; restore with --force to replace them".into()));
        }
    }
    let map = manifest.load_object_map(&dir)?;
    let target = ObjectTarget::open(&config.backup).await?;
    let known = target.known().await?;
    if let Some(missing) = map.values().find(|e| !known.contains(&e.sha256)) {
        return Err(BackupError::corrupt(name, format!("object content {} is missing from {}", missing.sha256, target.describe())));
    }
    // The trial database sits next to the live one, so the final swap is a rename on one filesystem.
    let place = match &db {
        Database::Sqlite(path) => path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(".")),
        Database::Postgres(_) => config.backup_dir.clone(),
    };
    std::fs::create_dir_all(&place).map_err(BackupError::io("creating", &place))?;
    let trial = trial_restore(&manifest, &dir, &db, &place).await?;

    // Objects: a local store is rebuilt in a sibling folder and swapped; S3 cannot be swapped, so
    // objects are written in place, only after every check above passed.
    let local_root = if config.s3.is_none() { Some(config.cold_dir.join("objects")) } else { None };
    let staged = match &local_root {
        Some(root) => {
            let staging = root.with_file_name(format!("objects.restore-{}", uuid::Uuid::new_v4().simple()));
            let result = async {
                let store = objects::plain_folder(&staging)?;
                objects::restore_all(&target, &map, &store).await
            }
            .await;
            if let Err(e) = result {
                let _ = std::fs::remove_dir_all(&staging);
                trial.discard(&db).await;
                return Err(e);
            }
            Some(staging)
        }
        None => {
            if let Err(e) = objects::restore_all(&target, &map, live).await {
                trial.discard(&db).await;
                return Err(e);
            }
            None
        }
    };

    match (&trial, &db) {
        (Trial::Sqlite(path), Database::Sqlite(live_path)) => {
            // The old WAL belongs to the old database; it must not be replayed onto the restored one.
            for suffix in ["-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", live_path.display()));
            }
            std::fs::rename(path, live_path).map_err(BackupError::io("moving the restored database to", live_path))?;
            sqlite::doctor_check(live_path).await?;
        }
        (Trial::Postgres(t), Database::Postgres(live_t)) => {
            postgres::swap_in(live_t, &t.database()).await?;
            postgres::doctor_check(live_t).await?;
        }
        _ => unreachable!("the trial was made for this backend"),
    }
    if let (Some(staging), Some(root)) = (staged, local_root) {
        let aside = root.with_file_name(format!("objects.old-{}", uuid::Uuid::new_v4().simple()));
        if root.exists() {
            std::fs::rename(&root, &aside).map_err(BackupError::io("moving aside", &root))?;
        }
        std::fs::rename(&staging, &root).map_err(BackupError::io("moving the restored objects to", &root))?;
        let _ = std::fs::remove_dir_all(&aside);
    }
    // Derived data: there is no search index in this build; when one exists, its rebuild starts here.
    tracing::info!(set = name, "restore finished; derived data to rebuild: none in this build (no search index yet)");
    Ok(RestoreReport {
        name: name.to_string(),
        tables: manifest.tables.len(),
        rows: manifest.tables.values().map(|t| t.rows).sum(),
        objects: map.len() as u64,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// What [`prune`] removed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PruneReport {
    pub removed_sets: Vec<String>,
    pub removed_offsite: Vec<String>,
    pub removed_objects: u64,
}

/// Frequent SQLite snapshots are kept a day; the daily sets for the configured days.
const SNAPSHOT_KEEP: Duration = Duration::from_secs(24 * 3600);
/// Unfinished sets older than this are leftovers of a crash, not backups in progress.
const INCOMPLETE_GRACE: Duration = Duration::from_secs(6 * 3600);

fn expired(sets: &[SetInfo], keep_days: u32, now: DateTime<Utc>) -> Vec<SetInfo> {
    let newest_good = sets.iter().rev().find(|s| s.good).map(|s| s.name.clone());
    sets.iter()
        .filter(|s| Some(&s.name) != newest_good.as_ref())
        .filter(|s| match (s.good, s.created_at, s.kind) {
            (true, Some(at), Some(kind)) => {
                let keep = match kind {
                    SetKind::Full => chrono::Duration::days(i64::from(keep_days)),
                    SetKind::Snapshot => chrono::Duration::from_std(SNAPSHOT_KEEP).unwrap_or_default(),
                };
                now - at > keep
            }
            _ => {
                let modified = std::fs::metadata(&s.dir).and_then(|m| m.modified()).ok();
                modified.and_then(|m| m.elapsed().ok()).is_some_and(|age| age > INCOMPLETE_GRACE)
            }
        })
        .cloned()
        .collect()
}

/// Removes sets past their retention (never the newest good one), then object contents that no
/// kept set, local or offsite, refers to.
pub async fn prune(config: &Config, now: DateTime<Utc>) -> Result<PruneReport> {
    let mut report = PruneReport::default();
    for s in expired(&read_sets(&config.backup_dir)?, config.backup.keep_days, now) {
        std::fs::remove_dir_all(&s.dir).map_err(BackupError::io("removing", &s.dir))?;
        report.removed_sets.push(s.name);
    }
    let mut kept = read_sets(&config.backup_dir)?;
    if let Some(offsite) = &config.backup.offsite_dir {
        for s in expired(&read_sets(offsite)?, config.backup.offsite_keep_days, now) {
            std::fs::remove_dir_all(&s.dir).map_err(BackupError::io("removing", &s.dir))?;
            report.removed_offsite.push(s.name);
        }
        kept.extend(read_sets(offsite)?);
    }
    let mut referenced = HashSet::new();
    for s in kept.iter().filter(|s| s.good) {
        let m = Manifest::load(&s.dir)?;
        // A set whose map cannot be read keeps everything: deleting on a guess could lose data.
        let map = m.load_object_map(&s.dir).map_err(|e| BackupError::Refused(format!("not collecting objects: {e}")))?;
        referenced.extend(map.into_values().map(|e| e.sha256));
    }
    let target = ObjectTarget::open(&config.backup).await?;
    report.removed_objects = target.collect_garbage(&referenced).await?;
    Ok(report)
}

/// The `/health` view: `Ok(detail)` when the newest good set is under 24 h old, `Err(detail)` otherwise.
pub fn freshness(config: &Config, now: DateTime<Utc>) -> std::result::Result<String, String> {
    match newest_good(&config.backup_dir) {
        Ok(Some(m)) => {
            let age = now - m.created_at;
            metrics::gauge!("athena_backup_age_seconds").set(age.num_seconds().max(0) as f64);
            if age > chrono::Duration::hours(24) {
                Err(format!("newest backup {} is {} h old", m.name, age.num_hours()))
            } else {
                Ok(format!("newest backup {} ({} min old)", m.name, age.num_minutes()))
            }
        }
        Ok(None) => Err("no backup yet (athena backup create)".to_string()),
        Err(e) => Err(format!("backups unreadable: {e}")),
    }
}

/// Names of the files a set must have, for tests that damage one on purpose.
pub fn manifest_file_name() -> &'static str {
    MANIFEST
}
