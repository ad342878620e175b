//! The S3 backend, through OpenDAL's S3 service with path-style addressing (SeaweedFS, MinIO and
//! friends need it). Writes are multipart uploads of fixed-size parts, so memory stays bounded;
//! an aborted or failed upload is never completed and so leaves no object. (A put whose future is
//! dropped mid-way cannot abort; its invisible parts wait for the bucket's lifecycle rule.)

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use futures::TryStreamExt;
use opendal::{ErrorKind, Operator};
use tokio_util::io::ReaderStream;

use crate::stream::{self, Metered};
use crate::{resolve_range, BlobError, BlobMeta, BlobRead, BlobStore, ByteStream, ContentHash, ObjectKey, PresignedPut};

/// Size of one multipart part, and so of the largest buffer a write holds (S3's minimum is 5 MiB).
const PART_SIZE: usize = 8 * 1024 * 1024;
const FILE_READ_CHUNK: usize = 256 * 1024;
pub const DEFAULT_REGION: &str = "us-east-1";

/// Where the bucket is and how to sign for it.
#[derive(Clone)]
pub struct S3Settings {
    /// Base URL Athena uses, e.g. `http://127.0.0.1:8333`.
    pub endpoint: String,
    /// Base URL clients use for presigned uploads when it differs (e.g. `https://books.example.org/s3`
    /// behind a reverse proxy). The signature covers this host and path.
    pub public_endpoint: Option<String>,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    /// Empty means [`DEFAULT_REGION`].
    pub region: String,
}

impl S3Settings {
    pub fn new(
        endpoint: impl Into<String>,
        bucket: impl Into<String>,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> Self {
        Self {
            endpoint: endpoint.into(),
            public_endpoint: None,
            bucket: bucket.into(),
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            region: DEFAULT_REGION.into(),
        }
    }
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret key stays out of logs.
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("public_endpoint", &self.public_endpoint)
            .field("bucket", &self.bucket)
            .field("access_key", &self.access_key)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// Objects in one S3 bucket.
#[derive(Debug)]
pub struct S3BlobStore {
    settings: S3Settings,
    op: Operator,
    /// Signs presigned URLs for the public endpoint; the same operator when there is none.
    presign_op: Operator,
}

fn operator(settings: &S3Settings, endpoint: &str) -> Result<Operator, BlobError> {
    let region = if settings.region.trim().is_empty() { DEFAULT_REGION } else { settings.region.trim() };
    // Path-style addressing is OpenDAL's default (virtual-host style stays off). Credentials come
    // only from the settings, never from the environment or instance metadata.
    let builder = opendal::services::S3::default()
        .endpoint(endpoint.trim_end_matches('/'))
        .bucket(&settings.bucket)
        .region(region)
        .access_key_id(&settings.access_key)
        .secret_access_key(&settings.secret_key)
        .disable_config_load()
        .disable_ec2_metadata();
    // SeaweedFS (and S3 generally) closes idle keep-alive connections; a request that lands on one
    // fails as "temporary". Retrying with backoff turns that into a short delay instead of a 503.
    Ok(Operator::new(builder)?.layer(opendal::layers::RetryLayer::new().with_max_times(4).with_jitter()).finish())
}

/// OpenDAL reports S3's `NoSuchBucket` as a configuration error rather than as `NotFound`.
fn is_missing_bucket(e: &opendal::Error) -> bool {
    e.kind() == ErrorKind::NotFound || (e.kind() == ErrorKind::ConfigInvalid && e.to_string().contains("NoSuchBucket"))
}

impl S3BlobStore {
    pub fn new(settings: S3Settings) -> Result<Self, BlobError> {
        let op = operator(&settings, &settings.endpoint)?;
        let presign_op = match settings.public_endpoint.as_deref().filter(|e| !e.trim().is_empty()) {
            Some(public) => operator(&settings, public)?,
            None => op.clone(),
        };
        Ok(Self { settings, op, presign_op })
    }

    pub fn settings(&self) -> &S3Settings {
        &self.settings
    }

    /// Checks that the bucket exists; when it does not, tries to create it by writing a probe
    /// object (SeaweedFS creates buckets on first upload for admin identities) rather than
    /// signing a CreateBucket request by hand.
    pub async fn ensure_bucket(&self) -> Result<(), BlobError> {
        let missing = match self.op.lister_with("/").limit(1).await {
            Ok(mut lister) => match lister.try_next().await {
                Ok(_) => false,
                Err(e) if is_missing_bucket(&e) => true,
                Err(e) => return Err(e.into()),
            },
            Err(e) if is_missing_bucket(&e) => true,
            Err(e) => return Err(e.into()),
        };
        if !missing {
            return Ok(());
        }
        stream::probe(self).await.map_err(|e| match e {
            BlobError::Unavailable(source) => BlobError::Unavailable(source),
            other => BlobError::internal(format!(
                "bucket {} does not exist and writing to it did not create it ({other}); create the bucket first",
                self.settings.bucket
            )),
        })
    }

    /// Streams a body into a multipart upload, aborting it on any failure.
    async fn upload(
        &self,
        key: &ObjectKey,
        mut body: ByteStream,
        limit: u64,
        body_error: fn(std::io::Error) -> BlobError,
    ) -> Result<(u64, ContentHash), BlobError> {
        let mut writer = self.op.writer_with(key.as_str()).chunk(PART_SIZE).await?;
        let result = async {
            let mut meter = Metered::new(limit);
            while let Some(chunk) = body.try_next().await.map_err(body_error)? {
                meter.feed(&chunk)?;
                writer.write(chunk).await?;
            }
            writer.close().await?;
            Ok(meter.finish())
        }
        .await;
        if result.is_err() {
            if let Err(e) = writer.abort().await {
                tracing::warn!(key = %key, error = %e, "aborting a failed S3 upload failed");
            }
        }
        result
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    fn backend(&self) -> &'static str {
        "s3"
    }

    async fn put_file(&self, key: &ObjectKey, path: &Path) -> Result<u64, BlobError> {
        let file = tokio::fs::File::open(path).await.map_err(|e| BlobError::Internal(Box::new(e)))?;
        let body = ReaderStream::with_capacity(file, FILE_READ_CHUNK);
        // A local read failure is ours to report as internal, not as the bucket being down.
        let (size, _) = self.upload(key, Box::pin(body), u64::MAX, BlobError::from_body).await?;
        Ok(size)
    }

    async fn put_stream(&self, key: &ObjectKey, body: ByteStream, max_bytes: u64) -> Result<(u64, ContentHash), BlobError> {
        self.upload(key, body, max_bytes, BlobError::from_body).await
    }

    async fn put_bytes(&self, key: &ObjectKey, bytes: Bytes) -> Result<(), BlobError> {
        self.op.write(key.as_str(), bytes).await?;
        Ok(())
    }

    async fn get(&self, key: &ObjectKey, range: Option<(u64, Option<u64>)>) -> Result<BlobRead, BlobError> {
        let total_size = self.stat(key).await?.ok_or(BlobError::NotFound)?.size;
        let (start, end) = resolve_range(total_size, range)?;
        if total_size == 0 {
            return Ok(BlobRead { total_size, start, end, body: Box::pin(futures::stream::empty()) });
        }
        let body = self.op.reader(key.as_str()).await?.into_bytes_stream(start..=end).await?;
        Ok(BlobRead { total_size, start, end, body: Box::pin(body) })
    }

    async fn stat(&self, key: &ObjectKey) -> Result<Option<BlobMeta>, BlobError> {
        match self.op.stat(key.as_str()).await {
            Ok(meta) if meta.is_dir() => Ok(None),
            Ok(meta) => Ok(Some(BlobMeta { size: meta.content_length(), last_modified: meta.last_modified() })),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), BlobError> {
        // S3 DELETE of a missing key succeeds, and OpenDAL treats NotFound as done.
        self.op.delete(key.as_str()).await?;
        Ok(())
    }

    async fn download_to(&self, key: &ObjectKey, path: &Path, max_bytes: u64) -> Result<(u64, ContentHash), BlobError> {
        stream::download_to(self, key, path, max_bytes).await
    }

    async fn hash_ranges(&self, key: &ObjectKey, ranges: &[(u64, u64)]) -> Result<ContentHash, BlobError> {
        stream::hash_ranges(self, key, ranges).await
    }

    fn local_path(&self, _key: &ObjectKey) -> Option<PathBuf> {
        None
    }

    async fn presign_put(&self, key: &ObjectKey, ttl: Duration) -> Result<PresignedPut, BlobError> {
        let expires_at = Utc::now() + chrono::Duration::from_std(ttl).map_err(|e| BlobError::internal(format!("bad ttl: {e}")))?;
        let req = self.presign_op.presign_write(key.as_str(), ttl).await?;
        let headers =
            req.header().iter().filter_map(|(name, value)| Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))).collect();
        Ok(PresignedPut { url: req.uri().to_string(), method: req.method().as_str().to_string(), headers, expires_at })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(ObjectKey, BlobMeta)>, BlobError> {
        // List the folder of the prefix's complete segments and filter the rest, so a prefix that
        // ends mid-segment works the same as on the local backend.
        let dir = match prefix.rfind('/') {
            Some(i) => &prefix[..=i],
            None => "/",
        };
        let mut lister = match self.op.lister_with(dir).recursive(true).await {
            Ok(lister) => lister,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        while let Some(entry) = lister.try_next().await? {
            let (path, meta) = entry.into_parts();
            if meta.is_dir() || !path.starts_with(prefix) {
                continue;
            }
            let Ok(key) = path.parse::<ObjectKey>() else {
                continue;
            };
            out.push((key, BlobMeta { size: meta.content_length(), last_modified: meta.last_modified() }));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    async fn probe(&self) -> Result<String, BlobError> {
        stream::probe(self).await?;
        Ok(format!("s3 bucket {} at {}: write, read and delete ok", self.settings.bucket, self.settings.endpoint))
    }
}
