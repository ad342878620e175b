//! Pieces both backends share: hashing under a size limit, writing a body to a local file, and
//! the read-based operations (`download_to`, `hash_ranges`) that only need `get`.

use std::path::Path;

use bytes::Bytes;
use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::{BlobError, BlobStore, ByteStream, ContentHash, ObjectKey};

/// Counts and hashes bytes as they pass, refusing the chunk that would cross the limit.
pub(crate) struct Metered {
    hasher: Sha256,
    size: u64,
    limit: u64,
}

impl Metered {
    pub(crate) fn new(limit: u64) -> Self {
        Self { hasher: Sha256::new(), size: 0, limit }
    }

    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        let size = self.size.saturating_add(chunk.len() as u64);
        if size > self.limit {
            return Err(BlobError::TooLarge { limit: self.limit });
        }
        self.size = size;
        self.hasher.update(chunk);
        Ok(())
    }

    pub(crate) fn finish(self) -> (u64, ContentHash) {
        (self.size, ContentHash::from_digest(self.hasher.finalize().into()))
    }
}

/// Writes a body into an open file under a limit and flushes it to disk.
pub(crate) async fn write_body(
    mut body: ByteStream,
    file: &mut tokio::fs::File,
    limit: u64,
    body_error: fn(std::io::Error) -> BlobError,
) -> Result<(u64, ContentHash), BlobError> {
    let mut meter = Metered::new(limit);
    while let Some(chunk) = body.try_next().await.map_err(body_error)? {
        meter.feed(&chunk)?;
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    // Durable before it becomes visible: a crash after the rename must not expose a torn file.
    file.sync_all().await?;
    Ok(meter.finish())
}

/// Removes a file on drop unless disarmed, so failed or cancelled writes leave nothing behind.
pub(crate) struct RemoveOnDrop(Option<std::path::PathBuf>);

impl RemoveOnDrop {
    pub(crate) fn new(path: &Path) -> Self {
        Self(Some(path.to_path_buf()))
    }

    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            // Blocking is fine here: unlink is quick and Drop cannot await.
            let _ = std::fs::remove_file(path);
        }
    }
}

pub(crate) async fn download_to(
    store: &dyn BlobStore,
    key: &ObjectKey,
    path: &Path,
    max_bytes: u64,
) -> Result<(u64, ContentHash), BlobError> {
    let read = store.get(key, None).await?;
    if read.total_size > max_bytes {
        return Err(BlobError::TooLarge { limit: max_bytes });
    }
    let mut file = tokio::fs::File::create(path).await.map_err(local_file_error)?;
    let guard = RemoveOnDrop::new(path);
    // The stored object's own read errors are storage errors, not a caller's body failing.
    let out = write_body(read.body, &mut file, max_bytes, BlobError::from).await?;
    guard.disarm();
    Ok(out)
}

pub(crate) async fn hash_ranges(store: &dyn BlobStore, key: &ObjectKey, ranges: &[(u64, u64)]) -> Result<ContentHash, BlobError> {
    let size = store.stat(key).await?.ok_or(BlobError::NotFound)?.size;
    if ranges.iter().any(|&(start, end)| start > end || end > size) {
        return Err(BlobError::InvalidRange);
    }
    let mut meter = Metered::new(u64::MAX);
    for &(start, end) in ranges.iter().filter(|(start, end)| start < end) {
        let mut body = store.get(key, Some((start, Some(end - 1)))).await?.body;
        while let Some(chunk) = body.try_next().await? {
            meter.feed(&chunk)?;
        }
    }
    Ok(meter.finish().1)
}

/// Failing to create the caller's destination file is the caller's problem, not missing data.
fn local_file_error(e: std::io::Error) -> BlobError {
    BlobError::Internal(Box::new(e))
}

/// Turns a byte buffer into a one-chunk body.
pub(crate) fn once(bytes: Bytes) -> ByteStream {
    Box::pin(futures::stream::once(async move { Ok(bytes) }))
}

/// Reads a whole body into memory; only for small objects such as probes.
pub(crate) async fn read_small(mut body: ByteStream) -> Result<Vec<u8>, BlobError> {
    let mut out = Vec::new();
    while let Some(chunk) = body.try_next().await? {
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Writes, reads back and deletes a probe object; the delete runs even when the read fails.
pub(crate) async fn probe(store: &dyn BlobStore) -> Result<(), BlobError> {
    let key = crate::probe_key();
    let payload = Bytes::from(format!("athena probe {}", chrono::Utc::now().to_rfc3339()));
    store.put_bytes(&key, payload.clone()).await?;
    let read = match store.get(&key, None).await {
        Ok(read) => read_small(read.body).await,
        Err(e) => Err(e),
    };
    store.delete(&key).await?;
    if read? != payload {
        return Err(BlobError::internal("probe object read back differently"));
    }
    Ok(())
}
