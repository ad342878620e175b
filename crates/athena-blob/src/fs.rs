//! The local-folder backend. Objects are plain files under `root`, so they can be served or
//! parsed in place. Every write lands in `root/.tmp` first and is renamed into place, so a
//! crash never leaves a half-written object visible.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use crate::stream::{self, RemoveOnDrop};
use crate::{resolve_range, BlobError, BlobMeta, BlobRead, BlobStore, ByteStream, ContentHash, LocalSigner, ObjectKey, PresignedPut};

const TMP_DIR: &str = ".tmp";
const READ_CHUNK: usize = 64 * 1024;

/// Objects as files under one root folder.
#[derive(Debug)]
pub struct FsBlobStore {
    root: PathBuf,
    signer: LocalSigner,
}

impl FsBlobStore {
    /// Creates `root` if needed and removes temporary files left by an earlier crash.
    pub fn new(root: PathBuf, signer: LocalSigner) -> Result<Self, BlobError> {
        std::fs::create_dir_all(&root).map_err(internal)?;
        // Canonical, so the "stays under root" check compares like with like.
        let root = root.canonicalize().map_err(internal)?;
        let tmp = root.join(TMP_DIR);
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(internal)?;
        }
        std::fs::create_dir_all(&tmp).map_err(internal)?;
        Ok(Self { root, signer })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn signer(&self) -> &LocalSigner {
        &self.signer
    }

    /// The file for a key, strictly inside root and outside the temporary folder.
    fn path_of(&self, key: &ObjectKey) -> Result<PathBuf, BlobError> {
        let relative = Path::new(key.as_str());
        let plain = relative.components().all(|c| matches!(c, Component::Normal(_)));
        let reserved = relative.components().next() == Some(Component::Normal(TMP_DIR.as_ref()));
        let path = self.root.join(relative);
        if !plain || reserved || !path.starts_with(&self.root) || path == self.root {
            return Err(BlobError::internal(format!("object key {key} does not map inside the storage root")));
        }
        Ok(path)
    }

    fn tmp_path(&self) -> PathBuf {
        self.root.join(TMP_DIR).join(uuid::Uuid::new_v4().to_string())
    }

    /// Moves a finished temporary file into place, creating parent folders.
    async fn publish(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        let parent = to.parent().expect("object paths are below root");
        // A concurrent delete may prune the freshly created parent; one retry covers that race.
        for attempt in 0..2 {
            tokio::fs::create_dir_all(parent).await?;
            match tokio::fs::rename(from, to).await {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt == 0 && tokio::fs::try_exists(from).await? => {}
                other => return other,
            }
        }
        unreachable!("the second attempt always returns")
    }

    /// Removes now-empty parent folders of a deleted object, up to (not including) root.
    async fn prune_empty_parents(&self, path: &Path) {
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == self.root || !d.starts_with(&self.root) || tokio::fs::remove_dir(d).await.is_err() {
                break;
            }
            dir = d.parent();
        }
    }
}

/// Walks `dir` recursively, keeping files whose keys start with `prefix`.
fn collect(root: &Path, dir: &Path, prefix: &str, out: &mut Vec<(ObjectKey, BlobMeta)>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if dir == root && entry.file_name() == TMP_DIR {
            continue;
        }
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            collect(root, &path, prefix, out)?;
        } else if file_type.is_file() {
            let Ok(relative) = path.strip_prefix(root) else {
                continue;
            };
            let Some(relative) = relative.to_str() else {
                continue;
            };
            // Files that are not valid keys (put there by hand) are not objects.
            let Ok(key) = relative.parse::<ObjectKey>() else {
                continue;
            };
            if key.as_str().starts_with(prefix) {
                let meta = entry.metadata()?;
                out.push((key, meta_of(&meta)));
            }
        }
    }
    Ok(())
}

fn meta_of(meta: &std::fs::Metadata) -> BlobMeta {
    BlobMeta { size: meta.len(), last_modified: meta.modified().ok().map(DateTime::<Utc>::from) }
}

fn internal(e: std::io::Error) -> BlobError {
    BlobError::Internal(Box::new(e))
}

#[async_trait]
impl BlobStore for FsBlobStore {
    fn backend(&self) -> &'static str {
        "fs"
    }

    async fn put_file(&self, key: &ObjectKey, path: &Path) -> Result<u64, BlobError> {
        let dest = self.path_of(key)?;
        let source = tokio::fs::File::open(path).await.map_err(internal)?;
        let size = source.metadata().await.map_err(internal)?.len();
        // The caller may not have flushed its file; make it durable before it becomes an object.
        source.sync_all().await.map_err(internal)?;
        drop(source);
        match self.publish(path, &dest).await {
            Ok(()) => return Ok(size),
            // Other filesystem (or another rename failure): fall back to copying.
            Err(e) => tracing::debug!(error = %e, "rename into blob store failed, copying"),
        }
        let tmp = self.tmp_path();
        let guard = RemoveOnDrop::new(&tmp);
        let mut input = tokio::fs::File::open(path).await.map_err(internal)?;
        let mut output = tokio::fs::File::create(&tmp).await.map_err(internal)?;
        let copied = tokio::io::copy(&mut input, &mut output).await.map_err(internal)?;
        output.sync_all().await.map_err(internal)?;
        drop(output);
        self.publish(&tmp, &dest).await.map_err(internal)?;
        guard.disarm();
        Ok(copied)
    }

    async fn put_stream(&self, key: &ObjectKey, body: ByteStream, max_bytes: u64) -> Result<(u64, ContentHash), BlobError> {
        let dest = self.path_of(key)?;
        let tmp = self.tmp_path();
        let guard = RemoveOnDrop::new(&tmp);
        let mut file = tokio::fs::File::create(&tmp).await.map_err(internal)?;
        let out = stream::write_body(body, &mut file, max_bytes, BlobError::from_body).await?;
        drop(file);
        self.publish(&tmp, &dest).await.map_err(internal)?;
        guard.disarm();
        Ok(out)
    }

    async fn put_bytes(&self, key: &ObjectKey, bytes: Bytes) -> Result<(), BlobError> {
        self.put_stream(key, stream::once(bytes), u64::MAX).await.map(|_| ())
    }

    async fn get(&self, key: &ObjectKey, range: Option<(u64, Option<u64>)>) -> Result<BlobRead, BlobError> {
        let path = self.path_of(key)?;
        let mut file = tokio::fs::File::open(&path).await?;
        let meta = file.metadata().await?;
        if !meta.is_file() {
            return Err(BlobError::NotFound);
        }
        let total_size = meta.len();
        let (start, end) = resolve_range(total_size, range)?;
        let len = if total_size == 0 { 0 } else { end - start + 1 };
        if start > 0 {
            file.seek(std::io::SeekFrom::Start(start)).await.map_err(internal)?;
        }
        let body = ReaderStream::with_capacity(file.take(len), READ_CHUNK);
        Ok(BlobRead { total_size, start, end, body: Box::pin(body) })
    }

    async fn stat(&self, key: &ObjectKey) -> Result<Option<BlobMeta>, BlobError> {
        let path = self.path_of(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(Some(meta_of(&meta))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(internal(e)),
        }
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), BlobError> {
        let path = self.path_of(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {
                self.prune_empty_parents(&path).await;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(internal(e)),
        }
    }

    async fn download_to(&self, key: &ObjectKey, path: &Path, max_bytes: u64) -> Result<(u64, ContentHash), BlobError> {
        stream::download_to(self, key, path, max_bytes).await
    }

    async fn hash_ranges(&self, key: &ObjectKey, ranges: &[(u64, u64)]) -> Result<ContentHash, BlobError> {
        stream::hash_ranges(self, key, ranges).await
    }

    fn local_path(&self, key: &ObjectKey) -> Option<PathBuf> {
        self.path_of(key).ok()
    }

    async fn presign_put(&self, key: &ObjectKey, ttl: Duration) -> Result<PresignedPut, BlobError> {
        let ttl = chrono::Duration::from_std(ttl).map_err(|e| BlobError::internal(format!("bad ttl: {e}")))?;
        let expires_at = Utc::now() + ttl;
        let url = self.signer.url(key, expires_at.timestamp());
        Ok(PresignedPut { url, method: "PUT".into(), headers: Vec::new(), expires_at })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(ObjectKey, BlobMeta)>, BlobError> {
        // Walk only the folder named by the prefix's complete segments.
        let dir = match prefix.rfind('/') {
            Some(i) => {
                let dir = &prefix[..i];
                let plain = Path::new(dir).components().all(|c| matches!(c, Component::Normal(_)));
                if !plain {
                    return Ok(Vec::new());
                }
                self.root.join(dir)
            }
            None => self.root.clone(),
        };
        let prefix = prefix.to_string();
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            collect(&root, &dir, &prefix, &mut out).map(|()| out)
        })
        .await
        .map_err(|e| BlobError::Internal(Box::new(e)))?
        .map_err(internal)
        .map(|mut out| {
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        })
    }

    async fn probe(&self) -> Result<String, BlobError> {
        stream::probe(self).await?;
        Ok(format!("fs at {}: write, read and delete ok", self.root.display()))
    }
}
