//! Periodic cleanup that keeps storage honest: spool files left by a killed process, uploads that
//! were never completed, the 30-day trash, and old rate-limit events.

use chrono::Duration;

use crate::{App, AppResult};

#[derive(Debug, Default, serde::Serialize)]
pub struct SweepReport {
    pub spool_files_removed: u64,
    pub pending_uploads_removed: u64,
    pub books_purged: u64,
    /// Succeeded and cancelled jobs older than a week (dead ones stay for operators).
    pub jobs_purged: u64,
}

impl App {
    /// At start-up: spool files belong to requests of a previous process, which are gone.
    pub async fn clear_spool(&self) -> AppResult<u64> {
        let dir = self.spool_dir();
        let mut removed = 0;
        if let Ok(mut entries) = tokio::fs::read_dir(&dir).await {
            while let Ok(Some(entry)) = entries.next_entry().await {
                if tokio::fs::remove_file(entry.path()).await.is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Deletes uploads never completed after their deadline, purges the trash, prunes old events.
    pub async fn sweep(&self) -> AppResult<SweepReport> {
        let now = self.clock.now();
        let mut report = SweepReport::default();
        loop {
            let expired = self.store.pending_uploads_expired(now, 100).await?;
            if expired.is_empty() {
                break;
            }
            for upload in expired {
                // A pending row whose key became stored content (completed, then crashed before the
                // row was removed) must not take the content with it.
                let in_use = self.store.content_key_in_use(&upload.key).await?;
                if !in_use {
                    self.blobs.delete(&upload.key).await?;
                }
                self.store.delete_pending_upload(&upload.key).await?;
                report.pending_uploads_removed += 1;
            }
        }
        let cutoff = now - Duration::days(self.config.limits.trash_retention_days as i64);
        loop {
            let old = self.store.books_deleted_before(cutoff, 100).await?;
            if old.is_empty() {
                break;
            }
            for book in old {
                self.purge_book(&book.user_id, &book.id).await?;
                report.books_purged += 1;
            }
        }
        self.store.prune_rate_events(now - Duration::days(1)).await?;
        report.jobs_purged = self.store.purge_finished_jobs(now - Duration::days(7)).await?;
        Ok(report)
    }
}
