//! The worker's backup timer: the daily set at `ATHENA_BACKUP_AT` (UTC), followed by a prune, and on
//! SQLite a snapshot every `ATHENA_BACKUP_SQLITE_INTERVAL_MINUTES`, which bounds the RPO. [`Scheduler::tick`]
//! is one deterministic step for a given time, so tests drive it with a moved clock.

use std::sync::Arc;

use athena_blob::BlobStore;
use athena_config::Config;
use chrono::{DateTime, Duration, NaiveTime, Utc};
use sqlx::{Connection, PgConnection};

use crate::{create, newest_good, prune, CreateReport, Database, Result, SetKind};

/// Advisory lock key: only one PostgreSQL worker takes the daily backup.
const BACKUP_LOCK_KEY: i64 = 0x4174_6865_6e61_4270; // "AthenaBp"

pub struct Scheduler {
    config: Arc<Config>,
    live: Arc<dyn BlobStore>,
    last_tick: Option<DateTime<Utc>>,
    last_snapshot: Option<DateTime<Utc>>,
}

/// What a tick did.
#[derive(Debug)]
pub enum Ran {
    Nothing,
    /// Another process holds the backup lock.
    Skipped,
    Created(CreateReport),
}

impl Scheduler {
    pub fn new(config: Arc<Config>, live: Arc<dyn BlobStore>) -> Self {
        // The newest set on disk counts as the last snapshot: a restart does not reset the interval.
        let last_snapshot = newest_good(&config.backup_dir).ok().flatten().map(|m| m.created_at);
        Self { config, live, last_tick: None, last_snapshot }
    }

    /// The daily slot at or before `now`.
    fn slot(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let (h, m) = self.config.backup.at?;
        let time = NaiveTime::from_hms_opt(h, m, 0)?;
        let today = now.date_naive().and_time(time).and_utc();
        Some(if today <= now { today } else { today - Duration::days(1) })
    }

    /// Runs whatever is due at `now`: the daily backup when `now` passed its slot since the last
    /// tick, else a SQLite snapshot when the interval has gone by.
    pub async fn tick(&mut self, now: DateTime<Utc>) -> Result<Ran> {
        let previous = self.last_tick.replace(now);
        let daily_due = match (self.slot(now), previous) {
            (Some(slot), Some(prev)) => prev < slot && slot <= now,
            _ => false,
        };
        let db = Database::from_config(&self.config)?;
        if daily_due {
            let ran = match &db {
                Database::Postgres(t) => {
                    let mut conn = PgConnection::connect(&t.url()).await?;
                    let got: bool =
                        sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(BACKUP_LOCK_KEY).fetch_one(&mut conn).await?;
                    let already = newest_good(&self.config.backup_dir)?.is_some_and(|m| Some(m.created_at) >= self.slot(now));
                    let ran = if got && !already { self.daily(now).await.map(Ran::Created) } else { Ok(Ran::Skipped) };
                    let _ = conn.close().await; // closing the session releases the lock
                    ran
                }
                Database::Sqlite(_) => self.daily(now).await.map(Ran::Created),
            };
            if matches!(ran, Ok(Ran::Created(_))) {
                self.last_snapshot = Some(now);
            }
            return ran;
        }
        let interval = i64::from(self.config.backup.sqlite_interval_minutes);
        if let (Database::Sqlite(_), true) = (&db, interval > 0) {
            let due = self.last_snapshot.is_none_or(|last| now - last >= Duration::minutes(interval));
            if due {
                let report = create(&self.config, &*self.live, SetKind::Snapshot, now).await?;
                self.last_snapshot = Some(now);
                return Ok(Ran::Created(report));
            }
        }
        Ok(Ran::Nothing)
    }

    async fn daily(&self, now: DateTime<Utc>) -> Result<CreateReport> {
        let report = create(&self.config, &*self.live, SetKind::Full, now).await?;
        match prune(&self.config, now).await {
            Ok(p) => tracing::info!(removed_sets = p.removed_sets.len(), removed_objects = p.removed_objects, "backup prune"),
            Err(e) => tracing::warn!(error = %e, "backup prune failed"),
        }
        Ok(report)
    }
}
