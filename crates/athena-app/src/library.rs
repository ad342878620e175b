//! The library: both upload paths, dedup with proof of possession, listing, metadata edits with
//! optimistic concurrency, trash, permanent deletion with reference counting, and content reads.

use athena_blob::{BlobRead, PresignedPut};
use athena_domain::{sanitize_filename, BookFormat, BookId, ContentHash, ObjectKey, UserId};
use athena_store::{Book, BookPatch, BookQuery, DedupChallenge, PendingUpload};
use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use futures::Stream;
use rand::Rng;
use serde::Serialize;

use crate::auth::Principal;
use crate::ingest::{Bytesource, Hints};
use crate::{App, AppError, AppResult};

const CHALLENGE_TTL_MINUTES: i64 = 10;
const CHALLENGE_RANGES: usize = 4;
const CHALLENGE_RANGE_LEN: u64 = 4096;

#[derive(Clone, Debug, Default)]
pub struct UploadInit {
    pub filename: String,
    pub content_type: Option<String>,
    pub content_sha256: Option<ContentHash>,
    pub size: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ChallengeView {
    pub id: String,
    /// `[start, end)` byte ranges; the proof is SHA-256 (hex) of these ranges' bytes concatenated.
    pub ranges: Vec<(u64, u64)>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub enum UploadInitResult {
    Own { existing_book_id: BookId },
    Global { canonical_book_id: BookId, challenge: ChallengeView },
    Upload { put: PresignedPut, key: ObjectKey },
}

#[derive(Clone, Debug, Default)]
pub struct UploadComplete {
    pub key: String,
    pub title: Option<String>,
    pub author: Option<String>,
    pub language: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct MetadataEdit {
    pub title: Option<String>,
    pub author: Option<Option<String>>,
    pub language: Option<Option<String>>,
    pub confirmed: Option<bool>,
}

pub struct BookList {
    pub items: Vec<Book>,
    pub next_cursor: Option<String>,
}

pub struct ContentRead {
    pub book: Book,
    pub read: BlobRead,
    pub media_type: String,
    /// Changes whenever the bytes served change.
    pub etag: String,
}

/// Which stored file to serve, its format, and its ETag.
fn reading_file(book: &Book, original: bool) -> (ObjectKey, BookFormat, String) {
    let sha = &book.content_sha256;
    match (&book.ocr_result_key, &book.converted_epub_key) {
        _ if original => (book.minio_key.clone(), book.original_format, sha.to_string()),
        (Some(layered), _) => (layered.clone(), BookFormat::Pdf, format!("{sha}-ocr")),
        (None, Some(epub)) => (epub.clone(), BookFormat::Epub, format!("{sha}-epub")),
        (None, None) => (book.minio_key.clone(), book.original_format, sha.to_string()),
    }
}

fn encode_cursor(book: &Book) -> String {
    let raw = format!("{}|{}", book.created_at.to_rfc3339(), book.id);
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, raw)
}

fn decode_cursor(cursor: &str) -> AppResult<(DateTime<Utc>, BookId)> {
    let invalid = || AppError::validation("cursor", "is not a cursor this server issued");
    let raw = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, cursor).map_err(|_| invalid())?;
    let raw = String::from_utf8(raw).map_err(|_| invalid())?;
    let (at, id) = raw.split_once('|').ok_or_else(invalid)?;
    let at = DateTime::parse_from_rfc3339(at).map_err(|_| invalid())?.with_timezone(&Utc);
    Ok((at, id.parse().map_err(|_| invalid())?))
}

pub(crate) fn check_text(field: &str, value: &str, max_chars: usize) -> AppResult<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(AppError::validation(field, "must not be empty"));
    }
    if v.chars().count() > max_chars {
        return Err(AppError::validation(field, format!("must be at most {max_chars} characters")));
    }
    if v.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(AppError::validation(field, "must not contain control characters"));
    }
    Ok(v.to_string())
}

impl App {
    // ---------- uploads ----------

    pub async fn upload_init(&self, who: &Principal, req: UploadInit) -> AppResult<UploadInitResult> {
        let filename = req.filename.trim();
        if filename.is_empty() {
            return Err(AppError::MissingField("filename"));
        }
        check_text("filename", filename, 2000)?;
        let max = self.config.limits.max_upload_bytes;
        if req.size.is_some_and(|s| s > max) {
            return Err(AppError::PayloadTooLarge { limit: max });
        }
        if let Some(sha) = &req.content_sha256 {
            if let Some(own) = self.store.book_by_content(&who.user_id, sha).await? {
                let own = self.restore_if_deleted(&who.user_id, own).await?;
                return Ok(UploadInitResult::Own { existing_book_id: own.id });
            }
        }
        self.ensure_can_upload(&who.user_id).await?;
        if let (true, Some(sha)) = (self.config.global_dedup, &req.content_sha256) {
            if let (Some(content), Some(canonical)) = (self.store.content(sha).await?, self.store.canonical_book_for(sha).await?) {
                let challenge = self.new_challenge(&who.user_id, sha, content.size as u64).await?;
                return Ok(UploadInitResult::Global { canonical_book_id: canonical.id, challenge });
            }
        }
        let key = ObjectKey::for_upload(&who.user_id, &uuid::Uuid::new_v4(), filename);
        let ttl = std::time::Duration::from_secs(self.config.limits.upload_url_ttl_secs);
        let now = self.clock.now();
        self.store
            .create_pending_upload(PendingUpload {
                key: key.clone(),
                user_id: who.user_id.clone(),
                filename: sanitize_filename(filename),
                content_type: req.content_type.map(|c| c.chars().take(255).collect()),
                declared_size: req.size.map(|s| s as i64),
                declared_sha256: req.content_sha256,
                expires_at: now + Duration::hours(self.config.limits.pending_upload_ttl_hours as i64),
                created_at: now,
            })
            .await?;
        let put = self.blobs.presign_put(&key, ttl).await?;
        Ok(UploadInitResult::Upload { put, key })
    }

    async fn new_challenge(&self, user: &UserId, sha: &ContentHash, size: u64) -> AppResult<ChallengeView> {
        let now = self.clock.now();
        let ranges: Vec<(u64, u64)> = {
            let mut rng = rand::rngs::OsRng;
            (0..CHALLENGE_RANGES)
                .map(|_| {
                    if size <= CHALLENGE_RANGE_LEN {
                        (0, size)
                    } else {
                        let start = rng.gen_range(0..=size - CHALLENGE_RANGE_LEN);
                        (start, start + CHALLENGE_RANGE_LEN)
                    }
                })
                .collect()
        };
        let challenge = DedupChallenge {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: user.clone(),
            sha256: sha.clone(),
            ranges: ranges.clone(),
            expires_at: now + Duration::minutes(CHALLENGE_TTL_MINUTES),
            created_at: now,
        };
        self.store.create_dedup_challenge(challenge.clone()).await?;
        Ok(ChallengeView { id: challenge.id, ranges, expires_at: challenge.expires_at })
    }

    /// Bytes PUT to a signed local URL (embedded mode): streamed into the store under `key`, bounded
    /// by the size limit. The signature has been checked by the caller with the blob signer.
    pub async fn receive_signed_put<S>(&self, key: &ObjectKey, body: S) -> AppResult<u64>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + Unpin + 'static,
    {
        let (size, _) = self.blobs.put_stream(key, Box::pin(body), self.config.limits.max_upload_bytes).await?;
        Ok(size)
    }

    pub async fn upload_complete(&self, who: &Principal, req: UploadComplete) -> AppResult<crate::Uploaded> {
        if req.key.trim().is_empty() {
            return Err(AppError::MissingField("key"));
        }
        let key: ObjectKey = req.key.trim().parse().map_err(|_| AppError::NotFound)?;
        let pending = self.store.pending_upload(&who.user_id, &key).await?;
        let max = self.config.limits.max_upload_bytes;
        let Some(stat) = self.blobs.stat(&key).await? else {
            return Err(AppError::validation("key", "no file was uploaded to this key yet"));
        };
        if stat.size > max {
            // A presigned PUT cannot enforce the limit; this is where it is enforced.
            self.blobs.delete(&key).await?;
            self.store.delete_pending_upload(&key).await?;
            return Err(AppError::PayloadTooLarge { limit: max });
        }
        self.ensure_can_upload(&who.user_id).await?;
        // Hash what is actually stored; the client's hash was only a hint.
        let local = self.mirror_locally(&key, max).await?;
        let hints = Hints { filename: pending.filename.clone(), title: req.title, author: req.author, language: req.language };
        let result = self.ingest(&who.user_id, Bytesource::Stored { key: &key, local: &local }, hints).await;
        if let Err(AppError::UnsupportedFormat { .. }) = &result {
            self.blobs.delete(&key).await?;
        }
        if result.is_ok() || matches!(result, Err(AppError::UnsupportedFormat { .. })) {
            self.store.delete_pending_upload(&key).await?;
        }
        result
    }

    async fn mirror_locally(&self, key: &ObjectKey, max: u64) -> AppResult<crate::ingest::Spooled> {
        let dir = self.spool_dir();
        tokio::fs::create_dir_all(&dir).await.map_err(AppError::internal)?;
        let path = dir.join(uuid::Uuid::new_v4().to_string());
        let mut spooled = crate::ingest::Spooled { path, size: 0, sha256: ContentHash::of_bytes(b"") };
        let (size, sha) = self.blobs.download_to(key, &spooled.path, max).await?;
        spooled.size = size;
        spooled.sha256 = sha;
        Ok(spooled)
    }

    /// One-step upload: the body is streamed to a spool file, hashed, inspected and stored.
    pub async fn upload_stream<S>(
        &self,
        who: &Principal,
        filename: &str,
        title: Option<String>,
        author: Option<String>,
        body: S,
    ) -> AppResult<crate::Uploaded>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Unpin,
    {
        let filename = filename.trim();
        if filename.is_empty() {
            return Err(AppError::MissingField("filename"));
        }
        self.ensure_can_upload(&who.user_id).await?;
        let spooled = self.spool(body, self.config.limits.max_upload_bytes).await?;
        let hints = Hints { filename: filename.to_string(), title, author, language: None };
        self.ingest(&who.user_id, Bytesource::Spool(&spooled), hints).await
    }

    /// Instant upload of content stored by someone else, after proving possession.
    pub async fn dedup_reference(
        &self,
        who: &Principal,
        sha: &ContentHash,
        canonical_book_id: &BookId,
        proof: &str,
        title: Option<String>,
        author: Option<String>,
    ) -> AppResult<crate::Uploaded> {
        if let Some(own) = self.store.book_by_content(&who.user_id, sha).await? {
            let book = self.restore_if_deleted(&who.user_id, own).await?;
            return Ok(crate::Uploaded { book, created: false });
        }
        let refused = || AppError::Forbidden("proof of possession failed; upload the file instead".into());
        if !self.config.global_dedup {
            return Err(refused());
        }
        self.ensure_can_upload(&who.user_id).await?;
        let now = self.clock.now();
        let challenge = self.store.take_dedup_challenge(&who.user_id, sha, now).await?.ok_or_else(refused)?;
        let content = self.store.content(sha).await?.ok_or_else(refused)?;
        let canonical = self.store.canonical_book_for(sha).await?.ok_or_else(refused)?;
        if &canonical.id != canonical_book_id {
            return Err(refused());
        }
        let expected = self.blobs.hash_ranges(&content.storage_key, &challenge.ranges).await?;
        let proof = proof.trim().to_ascii_lowercase();
        if proof.len() != 64 || !crate::auth_eq(expected.as_str(), &proof) {
            return Err(refused());
        }
        let book_id = BookId::new();
        let cover_key = match &canonical.cover_image_key {
            Some(src) => self.copy_cover(src, &book_id).await,
            None => None,
        };
        let new = athena_store::NewBook {
            id: book_id,
            user_id: who.user_id.clone(),
            title: title.map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).unwrap_or(canonical.title.clone()),
            author: author.map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).or(canonical.author.clone()),
            language: canonical.language.clone(),
            format: content.format,
            size: content.size,
            sha256: content.sha256.clone(),
            storage_key: content.storage_key.clone(),
            cover_key,
            page_count: canonical.page_count,
            is_digitalized: canonical.is_digitalized,
            digitalization_confidence: canonical.initial_digitalization_confidence,
            meta: canonical.meta.clone(),
            conversion_status: (!content.format.is_readable_directly()).then(|| "pending".to_string()),
            jobs: Vec::new(),
            now,
        };
        match self.store.insert_book(new).await? {
            athena_store::BookInsert::Created { book, .. } => Ok(crate::Uploaded { book, created: true }),
            athena_store::BookInsert::Existing(book) => Ok(crate::Uploaded { book, created: false }),
        }
    }

    async fn copy_cover(&self, src: &ObjectKey, book: &BookId) -> Option<ObjectKey> {
        let ext = src.as_str().rsplit_once('.').map(|(_, e)| e.to_string()).unwrap_or_else(|| "jpg".into());
        let dst = ObjectKey::for_cover(book, &ext);
        let read = self.blobs.get(src, None).await.ok()?;
        let bytes = collect_small(read, 16 << 20).await?;
        self.blobs.put_bytes(&dst, bytes).await.ok()?;
        Some(dst)
    }

    // ---------- reading the library ----------

    pub async fn list_books(&self, who: &Principal, deleted: bool, cursor: Option<&str>, limit: Option<u32>) -> AppResult<BookList> {
        let limit = limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(AppError::validation("limit", "must be between 1 and 200"));
        }
        let after = cursor.filter(|c| !c.is_empty()).map(decode_cursor).transpose()?;
        let mut items = self.store.list_books(&who.user_id, &BookQuery { deleted, after, limit: limit + 1 }).await?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(encode_cursor)
        } else {
            None
        };
        Ok(BookList { items, next_cursor })
    }

    pub async fn book(&self, who: &Principal, id: &BookId) -> AppResult<Book> {
        Ok(self.store.book(&who.user_id, id, false).await?)
    }

    pub async fn edit_metadata(&self, who: &Principal, id: &BookId, expected_version: i64, edit: MetadataEdit) -> AppResult<Book> {
        let patch = BookPatch {
            title: edit.title.as_deref().map(|t| check_text("title", t, 500)).transpose()?,
            author: edit
                .author
                .map(|a| a.filter(|a| !a.trim().is_empty()).map(|a| check_text("author", &a, 500)).transpose())
                .transpose()?,
            language: edit
                .language
                .map(|l| l.filter(|l| !l.trim().is_empty()).map(|l| check_text("language", &l, 35)).transpose())
                .transpose()?,
            metadata_confirmed: edit.confirmed,
            cover_image_key: None,
        };
        let book = self.store.update_book(&who.user_id, id, Some(expected_version), patch, self.clock.now()).await?;
        // The title and author are searchable: index them again.
        let job = crate::pipeline::TaskKind::Index.for_book(&book.id, &book.user_id, self.config.worker.max_attempts, self.clock.now());
        self.store.enqueue_job(job).await?;
        Ok(book)
    }

    pub async fn delete_book(&self, who: &Principal, id: &BookId) -> AppResult<Book> {
        let book = self.store.book(&who.user_id, id, false).await?;
        let now = self.clock.now();
        Ok(self.store.set_book_deleted(&who.user_id, &book.id, Some(now), now).await?)
    }

    pub async fn restore_book(&self, who: &Principal, id: &BookId) -> AppResult<Book> {
        let book = self.store.book(&who.user_id, id, true).await?;
        self.restore_if_deleted(&who.user_id, book).await
    }

    /// Deletes the row and frees storage once nothing references the bytes any more.
    pub async fn delete_book_permanently(&self, who: &Principal, id: &BookId) -> AppResult<()> {
        self.purge_book(&who.user_id, id).await
    }

    /// Deletes a book for good and frees what nothing references any more — its files, and the
    /// text extracted from its content once no book has that content.
    pub(crate) async fn purge_book(&self, user: &UserId, id: &BookId) -> AppResult<()> {
        let book = self.store.book(user, id, true).await?;
        let mut unreferenced = self.store.delete_book_permanently(user, id).await?;
        let content_gone = self.store.content(&book.content_sha256).await?.is_none();
        if content_gone {
            unreferenced.push(ObjectKey::for_text(&book.content_sha256));
        }
        self.free_objects(unreferenced).await;
        self.unindex_book(&book, content_gone).await;
        Ok(())
    }

    pub(crate) async fn free_objects(&self, keys: Vec<ObjectKey>) {
        for key in keys {
            // The rows are gone already; an object that fails to delete is only wasted space,
            // which the orphan sweep reclaims.
            if let Err(e) = self.blobs.delete(&key).await {
                tracing::warn!(key = %key, error = %e, "could not free object");
            }
        }
    }

    /// The file a reader opens — the layered PDF after OCR, the EPUB made from a converted format —
    /// or, with `original`, the uploaded file itself (kept as it was).
    pub async fn book_content(
        &self,
        who: &Principal,
        id: &BookId,
        range: Option<(u64, Option<u64>)>,
        original: bool,
    ) -> AppResult<ContentRead> {
        let book = self.store.book(&who.user_id, id, false).await?;
        let (key, format, etag) = reading_file(&book, original);
        let read = self.blobs.get(&key, range).await?;
        let media_type = format.mime_type().to_string();
        Ok(ContentRead { book, read, media_type, etag })
    }

    /// The size of what [`App::book_content`] would serve (for suffix ranges).
    pub async fn book_content_size(&self, who: &Principal, id: &BookId, original: bool) -> AppResult<u64> {
        let book = self.store.book(&who.user_id, id, false).await?;
        let (key, _, _) = reading_file(&book, original);
        Ok(self.blobs.stat(&key).await?.ok_or(AppError::NotFound)?.size)
    }

    pub async fn book_cover(&self, who: &Principal, id: &BookId) -> AppResult<ContentRead> {
        let book = self.store.book(&who.user_id, id, false).await?;
        let key = book.cover_image_key.clone().ok_or(AppError::NotFound)?;
        let media_type = match key.as_str().rsplit_once('.').map(|(_, e)| e) {
            Some("png") => "image/png",
            Some("gif") => "image/gif",
            Some("webp") => "image/webp",
            _ => "image/jpeg",
        }
        .to_string();
        let read = self.blobs.get(&key, None).await?;
        // The worker replaces covers without touching `version`; the key and time say which one this is.
        let etag = format!("{}-cover-{}", book.id, book.updated_at.timestamp_millis());
        Ok(ContentRead { book, read, media_type, etag })
    }
}

async fn collect_small(read: BlobRead, max: usize) -> Option<Bytes> {
    use futures::StreamExt;
    let mut out = Vec::new();
    let mut body = read.body;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.ok()?;
        if out.len() + chunk.len() > max {
            return None;
        }
        out.extend_from_slice(&chunk);
    }
    Some(Bytes::from(out))
}
