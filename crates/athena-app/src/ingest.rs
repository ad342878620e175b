//! Turning bytes into a book: spool to a local file while hashing, sniff the format from content,
//! read quick metadata, then store (or reference already-stored content) and insert the row.
//! The book row is inserted only after its bytes are safely stored, so a crash never leaves a
//! half-visible book; spooled files live in the hot dir's `tmp/uploads`, cleared at start.

use std::path::{Path, PathBuf};

use athena_domain::{BookFormat, BookId, ContentHash, ObjectKey, UserId};
use athena_formats::{FormatError, Limits as FormatLimits, QuickMetadata};
use athena_store::{BookInsert, NewBook};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::{App, AppError, AppResult};

/// A file spooled to local disk, deleted when dropped.
pub(crate) struct Spooled {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: ContentHash,
}

impl Drop for Spooled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Client-supplied hints that win over extracted metadata when given.
#[derive(Clone, Debug, Default)]
pub(crate) struct Hints {
    pub filename: String,
    pub title: Option<String>,
    pub author: Option<String>,
    pub language: Option<String>,
}

/// Where the bytes already are, if they were stored before ingest (two-step uploads).
pub(crate) enum Bytesource<'a> {
    /// A spooled local file that still has to be stored under a new key.
    Spool(&'a Spooled),
    /// Bytes already in the blob store under this key, mirrored in a local file for reading.
    Stored { key: &'a ObjectKey, local: &'a Spooled },
}

pub(crate) fn format_error(e: FormatError) -> AppError {
    let message = match &e {
        FormatError::Empty => "the file is empty".to_string(),
        FormatError::Unrecognized => "the file is not a supported ebook format".to_string(),
        other => format!("the file was rejected: {other}"),
    };
    if let FormatError::Io(io) = e {
        return AppError::internal(io);
    }
    AppError::UnsupportedFormat { reason: e.reason_code(), message }
}

impl App {
    /// Writes a body stream to a spool file, hashing as it goes; stops as soon as `max` is passed.
    pub(crate) async fn spool<S>(&self, mut body: S, max: u64) -> AppResult<Spooled>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Unpin,
    {
        let dir = self.spool_dir();
        tokio::fs::create_dir_all(&dir).await.map_err(AppError::internal)?;
        let spooled_path = dir.join(uuid::Uuid::new_v4().to_string());
        // From here on the guard owns the file: any early return deletes it.
        let mut spooled = Spooled { path: spooled_path, size: 0, sha256: ContentHash::of_bytes(b"") };
        let file = tokio::fs::File::create(&spooled.path).await.map_err(AppError::internal)?;
        let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
        let mut hasher = Sha256::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| AppError::validation("body", format!("upload interrupted: {e}")))?;
            spooled.size += chunk.len() as u64;
            if spooled.size > max {
                return Err(AppError::PayloadTooLarge { limit: max });
            }
            hasher.update(&chunk);
            out.write_all(&chunk).await.map_err(AppError::internal)?;
        }
        out.flush().await.map_err(AppError::internal)?;
        let file = out.into_inner();
        file.sync_all().await.map_err(AppError::internal)?;
        spooled.sha256 = ContentHash::from_digest(hasher.finalize().into());
        Ok(spooled)
    }

    /// Sniffs and reads quick metadata on a blocking thread (parsing hostile files is CPU work).
    pub(crate) async fn inspect(&self, path: &Path) -> AppResult<(BookFormat, QuickMetadata)> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let format = athena_formats::sniff_file(&path).map_err(format_error)?;
            let meta = match format {
                BookFormat::Epub | BookFormat::Pdf => {
                    athena_formats::quick_metadata(&path, format, &FormatLimits::default()).map_err(format_error)?
                }
                // Cheap metadata only; the worker converts and fills in the rest.
                other => athena_formats::quick_metadata(&path, other, &FormatLimits::default()).unwrap_or_default(),
            };
            Ok((format, meta))
        })
        .await
        .map_err(AppError::internal)?
    }

    /// Quota check before accepting bytes: over either limit the account is read-only.
    pub(crate) async fn ensure_can_upload(&self, user: &UserId) -> AppResult<()> {
        let usage = self.store.usage(user).await?;
        let limits = &self.config.limits;
        if usage.books as u64 >= limits.quota_books || usage.bytes as u64 >= limits.quota_bytes {
            return Err(AppError::UploadForbiddenQuotaExceeded);
        }
        Ok(())
    }

    /// Stores (if needed) and records a book for bytes the server has hashed itself.
    pub(crate) async fn ingest(&self, user: &UserId, source: Bytesource<'_>, hints: Hints) -> AppResult<crate::Uploaded> {
        let local = match &source {
            Bytesource::Spool(s) => *s,
            Bytesource::Stored { local, .. } => *local,
        };
        // The user already has these bytes: answer with that book (restored if it was in the trash).
        if let Some(existing) = self.store.book_by_content(user, &local.sha256).await? {
            if let Bytesource::Stored { key, .. } = source {
                self.blobs.delete(key).await?;
            }
            let book = self.restore_if_deleted(user, existing).await?;
            return Ok(crate::Uploaded { book, created: false });
        }
        let (format, meta) = self.inspect(&local.path).await?;
        let book_id = BookId::new();
        let content = self.store.content(&local.sha256).await?;
        let (storage_key, stored_now) = match (&content, &source) {
            // Someone stored these exact bytes before: reference them, keep no second copy.
            (Some(c), Bytesource::Stored { key, .. }) => {
                self.blobs.delete(key).await?;
                (c.storage_key.clone(), None)
            }
            (Some(c), Bytesource::Spool(_)) => (c.storage_key.clone(), None),
            (None, Bytesource::Stored { key, .. }) => ((*key).clone(), None),
            (None, Bytesource::Spool(s)) => {
                let key = ObjectKey::for_upload(user, &uuid::Uuid::new_v4(), &hints.filename);
                self.blobs.put_file(&key, &s.path).await?;
                (key.clone(), Some(key))
            }
        };
        let cover_key = self.store_cover(&book_id, &meta).await;
        let now = self.clock.now();
        let title = first_nonempty([hints.title.clone(), meta.title.clone()]).unwrap_or_else(|| title_from_filename(&hints.filename));
        let author = first_nonempty([hints.author.clone(), (!meta.authors.is_empty()).then(|| meta.authors.join(", "))]);
        let new = NewBook {
            id: book_id.clone(),
            user_id: user.clone(),
            title: clip(&title, 500),
            author: author.map(|a| clip(&a, 500)),
            language: first_nonempty([hints.language.clone(), meta.language.clone()]).map(|l| clip(&l, 35)),
            format,
            size: local.size as i64,
            sha256: local.sha256.clone(),
            storage_key,
            cover_key: cover_key.clone(),
            page_count: meta.page_count.map(i64::from),
            is_digitalized: meta.is_digitalized,
            digitalization_confidence: meta.digitalization_confidence,
            meta: metadata_json(&meta),
            conversion_status: (!format.is_readable_directly()).then(|| "pending".to_string()),
            // Enqueued in the book's own transaction: a created book always has its processing queued.
            jobs: crate::pipeline::jobs_for_new_book(format, &book_id, user, self.config.worker.max_attempts, now),
            now,
        };
        match self.store.insert_book(new).await {
            Ok(BookInsert::Created { book, content_is_new }) => {
                if !content_is_new {
                    // Lost a race with an identical upload: its copy is the content now.
                    if let Some(key) = stored_now {
                        if key != book.minio_key {
                            self.blobs.delete(&key).await?;
                        }
                    }
                }
                Ok(crate::Uploaded { book, created: true })
            }
            Ok(BookInsert::Existing(book)) => {
                if let Some(key) = stored_now {
                    self.blobs.delete(&key).await?;
                }
                if let Some(cover) = cover_key {
                    let _ = self.blobs.delete(&cover).await;
                }
                Ok(crate::Uploaded { book, created: false })
            }
            Err(e) => {
                if let Some(key) = stored_now {
                    let _ = self.blobs.delete(&key).await;
                }
                if let Some(cover) = cover_key {
                    let _ = self.blobs.delete(&cover).await;
                }
                Err(e.into())
            }
        }
    }

    async fn store_cover(&self, book: &BookId, meta: &QuickMetadata) -> Option<ObjectKey> {
        let cover = meta.cover.as_ref()?;
        let ext = match cover.media_type.as_str() {
            "image/png" => "png",
            "image/gif" => "gif",
            "image/webp" => "webp",
            _ => "jpg",
        };
        let key = ObjectKey::for_cover(book, ext);
        match self.blobs.put_bytes(&key, Bytes::from(cover.bytes.clone())).await {
            Ok(()) => Some(key),
            Err(e) => {
                // A missing cover is not worth failing an upload for; the worker regenerates covers.
                tracing::warn!(error = %e, "could not store cover");
                None
            }
        }
    }

    pub(crate) async fn restore_if_deleted(&self, user: &UserId, book: athena_store::Book) -> AppResult<athena_store::Book> {
        if book.deleted_at.is_none() {
            return Ok(book);
        }
        Ok(self.store.set_book_deleted(user, &book.id, None, self.clock.now()).await?)
    }
}

fn first_nonempty<const N: usize>(options: [Option<String>; N]) -> Option<String> {
    options.into_iter().flatten().map(|s| s.trim().to_string()).find(|s| !s.is_empty())
}

fn clip(s: &str, max_chars: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max_chars).collect()
}

fn title_from_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let stem = base.rsplit_once('.').map(|(s, _)| s).unwrap_or(base);
    let t = clip(stem.trim(), 500);
    if t.is_empty() {
        "Untitled".to_string()
    } else {
        t
    }
}

fn metadata_json(meta: &QuickMetadata) -> serde_json::Value {
    serde_json::json!({
        "authors": meta.authors,
        "language": meta.language,
        "publisher": meta.publisher,
        "identifiers": meta.identifiers,
        "description": meta.description,
        "page_count": meta.page_count,
        "toc": meta.toc,
        "warnings": meta.warnings,
    })
}
