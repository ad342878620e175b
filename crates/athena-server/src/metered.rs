//! Storage error metrics: a decorator around whichever `BlobStore` the configuration chose, so every
//! backend is counted the same way (`athena_storage_errors_total{backend, op, kind}`).
//! Expected outcomes (not found, too large, bad range or signature) are not errors of the store.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use athena_blob::{BlobError, BlobMeta, BlobRead, BlobStore, ByteStream, ContentHash, ObjectKey, PresignedPut};
use bytes::Bytes;

pub struct MeteredBlobStore(pub Arc<dyn BlobStore>);

fn count<T>(backend: &'static str, op: &'static str, result: Result<T, BlobError>) -> Result<T, BlobError> {
    if let Err(e) = &result {
        let kind = match e {
            BlobError::Unavailable(_) => "unavailable",
            BlobError::Internal(_) => "internal",
            _ => return result,
        };
        metrics::counter!("athena_storage_errors_total", "backend" => backend, "op" => op, "kind" => kind).increment(1);
    }
    result
}

#[async_trait]
impl BlobStore for MeteredBlobStore {
    fn backend(&self) -> &'static str {
        self.0.backend()
    }
    async fn put_file(&self, key: &ObjectKey, path: &Path) -> Result<u64, BlobError> {
        count(self.backend(), "put_file", self.0.put_file(key, path).await)
    }
    async fn put_stream(&self, key: &ObjectKey, body: ByteStream, max_bytes: u64) -> Result<(u64, ContentHash), BlobError> {
        count(self.backend(), "put_stream", self.0.put_stream(key, body, max_bytes).await)
    }
    async fn put_bytes(&self, key: &ObjectKey, bytes: Bytes) -> Result<(), BlobError> {
        count(self.backend(), "put_bytes", self.0.put_bytes(key, bytes).await)
    }
    async fn get(&self, key: &ObjectKey, range: Option<(u64, Option<u64>)>) -> Result<BlobRead, BlobError> {
        count(self.backend(), "get", self.0.get(key, range).await)
    }
    async fn stat(&self, key: &ObjectKey) -> Result<Option<BlobMeta>, BlobError> {
        count(self.backend(), "stat", self.0.stat(key).await)
    }
    async fn delete(&self, key: &ObjectKey) -> Result<(), BlobError> {
        count(self.backend(), "delete", self.0.delete(key).await)
    }
    async fn download_to(&self, key: &ObjectKey, path: &Path, max_bytes: u64) -> Result<(u64, ContentHash), BlobError> {
        count(self.backend(), "download_to", self.0.download_to(key, path, max_bytes).await)
    }
    async fn hash_ranges(&self, key: &ObjectKey, ranges: &[(u64, u64)]) -> Result<ContentHash, BlobError> {
        count(self.backend(), "hash_ranges", self.0.hash_ranges(key, ranges).await)
    }
    fn local_path(&self, key: &ObjectKey) -> Option<PathBuf> {
        self.0.local_path(key)
    }
    async fn presign_put(&self, key: &ObjectKey, ttl: Duration) -> Result<PresignedPut, BlobError> {
        count(self.backend(), "presign_put", self.0.presign_put(key, ttl).await)
    }
    async fn list(&self, prefix: &str) -> Result<Vec<(ObjectKey, BlobMeta)>, BlobError> {
        count(self.backend(), "list", self.0.list(prefix).await)
    }
    async fn probe(&self) -> Result<String, BlobError> {
        count(self.backend(), "probe", self.0.probe().await)
    }
}
