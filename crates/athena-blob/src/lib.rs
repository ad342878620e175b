//! Object storage behind one trait: book files, covers and pending uploads live either in a local
//! folder ([`FsBlobStore`]) or in an S3-compatible bucket through OpenDAL ([`S3BlobStore`]), chosen
//! at runtime and shared as `Arc<dyn BlobStore>`. This crate owns streaming (nothing is ever read
//! whole into memory), size limits, SHA-256 hashing while data moves, byte ranges and signed upload
//! URLs ([`LocalSigner`] for the local backend). It must not know about HTTP frameworks, SQL, users
//! or books: callers hand it [`ObjectKey`]s and get bytes, sizes and hashes back.

mod error;
mod fs;
mod s3;
mod signer;
mod stream;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;

pub use athena_domain::{ContentHash, ObjectKey};
pub use error::BlobError;
pub use fs::FsBlobStore;
pub use s3::{S3BlobStore, S3Settings, DEFAULT_REGION as S3_DEFAULT_REGION};
pub use signer::LocalSigner;

/// A streamed body, as the backends produce and accept it.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// Size and age of a stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobMeta {
    pub size: u64,
    pub last_modified: Option<DateTime<Utc>>,
}

/// An object being read: the bytes `start..=end` of an object of `total_size` bytes.
/// For an empty object read whole, `start == end == 0` and the body is empty; use [`BlobRead::len`].
pub struct BlobRead {
    pub total_size: u64,
    pub start: u64,
    pub end: u64,
    pub body: ByteStream,
}

impl BlobRead {
    /// Number of bytes the body yields.
    pub fn len(&self) -> u64 {
        if self.total_size == 0 {
            0
        } else {
            self.end - self.start + 1
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for BlobRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobRead")
            .field("total_size", &self.total_size)
            .field("start", &self.start)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

/// A signed, expiring request a client may send to upload one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresignedPut {
    pub url: String,
    pub method: String,
    /// Headers the client must send unchanged (they are part of the signature).
    pub headers: Vec<(String, String)>,
    pub expires_at: DateTime<Utc>,
}

/// Object storage. Every method streams; none buffers a whole object.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// `"fs"` or `"s3"`.
    fn backend(&self) -> &'static str;

    /// Streams a local file into the store and returns its size. On `fs` the file is moved
    /// (renamed) when it sits on the same filesystem, so callers must treat `path` as consumed.
    async fn put_file(&self, key: &ObjectKey, path: &Path) -> Result<u64, BlobError>;

    /// Streams a body into the store, hashing it, and fails with [`BlobError::TooLarge`] as soon
    /// as more than `max_bytes` arrive. A failed put leaves no object behind.
    async fn put_stream(&self, key: &ObjectKey, body: ByteStream, max_bytes: u64) -> Result<(u64, ContentHash), BlobError>;

    async fn put_bytes(&self, key: &ObjectKey, bytes: Bytes) -> Result<(), BlobError>;

    /// Streamed read of the whole object or of the inclusive range `[start, end]`; an open or
    /// overlong end is clamped to the last byte (HTTP Range semantics). A start past the end, an
    /// end before the start, or any range of an empty object is [`BlobError::InvalidRange`].
    async fn get(&self, key: &ObjectKey, range: Option<(u64, Option<u64>)>) -> Result<BlobRead, BlobError>;

    /// `None` when there is no such object.
    async fn stat(&self, key: &ObjectKey) -> Result<Option<BlobMeta>, BlobError>;

    /// Removes the object; deleting a missing object succeeds.
    async fn delete(&self, key: &ObjectKey) -> Result<(), BlobError>;

    /// Streams the object into a new local file, hashing it; stops with
    /// [`BlobError::TooLarge`] past `max_bytes` and removes the partial file on any failure.
    async fn download_to(&self, key: &ObjectKey, path: &Path, max_bytes: u64) -> Result<(u64, ContentHash), BlobError>;

    /// SHA-256 over the concatenation of the half-open byte ranges `[start, end)` (proof that a
    /// client holds the same file). A range reaching past the object is [`BlobError::InvalidRange`].
    async fn hash_ranges(&self, key: &ObjectKey, ranges: &[(u64, u64)]) -> Result<ContentHash, BlobError>;

    /// Where the object lives on disk, for zero-copy reads (`fs` only).
    fn local_path(&self, key: &ObjectKey) -> Option<PathBuf>;

    /// A signed, expiring `PUT` a client may use to upload `key` directly.
    async fn presign_put(&self, key: &ObjectKey, ttl: Duration) -> Result<PresignedPut, BlobError>;

    /// Objects whose keys start with `prefix` (plain string prefix, not only whole segments).
    async fn list(&self, prefix: &str) -> Result<Vec<(ObjectKey, BlobMeta)>, BlobError>;

    /// Writes, reads back and deletes a probe object; `Ok` describes the backend.
    async fn probe(&self) -> Result<String, BlobError>;
}

/// Resolves an HTTP-style inclusive range against an object size into `(start, end)` inclusive.
/// `None` (whole object) of an empty object gives `(0, 0)`.
pub fn resolve_range(size: u64, range: Option<(u64, Option<u64>)>) -> Result<(u64, u64), BlobError> {
    match range {
        None => Ok((0, size.saturating_sub(1))),
        Some((start, end)) => {
            if start >= size {
                return Err(BlobError::InvalidRange);
            }
            let end = end.unwrap_or(u64::MAX).min(size - 1);
            if end < start {
                return Err(BlobError::InvalidRange);
            }
            Ok((start, end))
        }
    }
}

/// A fresh key for probe objects; a random segment keeps concurrent probes apart.
fn probe_key() -> ObjectKey {
    format!(".athena-probe/{}", uuid::Uuid::new_v4()).parse().expect("probe keys are valid object keys")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_http_semantics() {
        assert_eq!(resolve_range(10, None).unwrap(), (0, 9));
        assert_eq!(resolve_range(0, None).unwrap(), (0, 0));
        assert_eq!(resolve_range(10, Some((2, Some(4)))).unwrap(), (2, 4));
        assert_eq!(resolve_range(10, Some((2, None))).unwrap(), (2, 9));
        assert_eq!(resolve_range(10, Some((2, Some(100)))).unwrap(), (2, 9));
        assert!(matches!(resolve_range(10, Some((10, None))), Err(BlobError::InvalidRange)));
        assert!(matches!(resolve_range(10, Some((5, Some(4)))), Err(BlobError::InvalidRange)));
        assert!(matches!(resolve_range(0, Some((0, None))), Err(BlobError::InvalidRange)));
    }
}
