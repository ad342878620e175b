//! The content-addressed object copy: every object of the live store is kept once, by its SHA-256,
//! under `objects/ab/cdef…` of the backup target (a folder or an S3 bucket/prefix); a set's
//! `objects.json` maps each live key to its hash. Unchanged objects (same size and time as in the
//! previous set) are not even read again; new content that the target already holds is not copied.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use athena_blob::{BlobError, BlobStore, FsBlobStore, LocalSigner, ObjectKey, S3BlobStore, S3Settings};
use athena_config::{BackupConfig, BackupObjects};
use futures::TryStreamExt;
use sha2::{Digest, Sha256};

use crate::error::{BackupError, Result};
use crate::manifest::{ObjectEntry, ObjectMap};

/// Keys the stores write for their own probes; they are not data.
const IGNORED_PREFIXES: &[&str] = &[".athena-probe/", "health/"];

/// Copied vs skipped, as the report and manifest show them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyStats {
    pub copied: u64,
    pub skipped: u64,
    pub bytes_copied: u64,
}

/// A folder store whose signer is never used (backups never hand out upload URLs).
pub fn plain_folder(root: &Path) -> Result<FsBlobStore> {
    Ok(FsBlobStore::new(root.to_path_buf(), LocalSigner::new(uuid::Uuid::new_v4().as_bytes().to_vec(), "http://127.0.0.1"))?)
}

pub struct ObjectTarget {
    store: Arc<dyn BlobStore>,
    prefix: String,
    describe: String,
}

impl ObjectTarget {
    pub async fn open(config: &BackupConfig) -> Result<Self> {
        match &config.objects {
            BackupObjects::Folder { path } => {
                let store = plain_folder(path)?;
                Ok(Self { store: Arc::new(store), prefix: String::new(), describe: format!("folder:{}", path.display()) })
            }
            BackupObjects::S3 { endpoint, bucket, prefix, region, access_key, secret_key } => {
                let mut settings = S3Settings::new(endpoint, bucket, access_key, secret_key.expose());
                settings.region = region.clone();
                let store = S3BlobStore::new(settings)?;
                store.ensure_bucket().await?;
                let describe = if prefix.is_empty() { format!("s3://{bucket}") } else { format!("s3://{bucket}/{prefix}") };
                let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
                Ok(Self { store: Arc::new(store), prefix, describe })
            }
        }
    }

    /// A target over any store (tests, or callers with their own store).
    pub fn from_store(store: Arc<dyn BlobStore>, prefix: &str, describe: &str) -> Self {
        let prefix = if prefix.is_empty() { String::new() } else { format!("{}/", prefix.trim_matches('/')) };
        Self { store, prefix, describe: describe.to_string() }
    }

    pub fn describe(&self) -> &str {
        &self.describe
    }

    pub fn store(&self) -> &Arc<dyn BlobStore> {
        &self.store
    }

    pub fn key_for(&self, sha256: &str) -> Result<ObjectKey> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BackupError::Storage(format!("`{sha256}` is not a SHA-256")));
        }
        format!("{}objects/{}/{}", self.prefix, &sha256[..2], &sha256[2..])
            .parse()
            .map_err(|e| BackupError::Storage(format!("backup object key: {e}")))
    }

    /// Hashes of every content the target holds.
    pub async fn known(&self) -> Result<HashSet<String>> {
        let base = format!("{}objects/", self.prefix);
        let listed = self.store.list(&base).await?;
        Ok(listed
            .into_iter()
            .filter_map(|(k, _)| {
                let rest = k.as_str().strip_prefix(&base)?;
                let (a, b) = rest.split_once('/')?;
                let sha = format!("{a}{b}");
                (sha.len() == 64).then_some(sha)
            })
            .collect())
    }

    /// Streams one content and checks it against its name; `Ok(false)` when it does not match.
    pub async fn check(&self, entry: &ObjectEntry) -> Result<bool> {
        let key = self.key_for(&entry.sha256)?;
        let read = match self.store.get(&key, None).await {
            Ok(r) => r,
            Err(BlobError::NotFound) => return Ok(false),
            // An empty object cannot be read as a range; it is stored and empty.
            Err(BlobError::InvalidRange) => return Ok(entry.size == 0),
            Err(e) => return Err(e.into()),
        };
        let mut body = read.body;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = body.try_next().await.map_err(|e| BackupError::Storage(e.to_string()))? {
            hasher.update(&chunk);
            size += chunk.len() as u64;
        }
        Ok(size == entry.size && hex::encode(hasher.finalize()) == entry.sha256)
    }

    /// Removes contents no kept set refers to; returns how many were removed.
    pub async fn collect_garbage(&self, referenced: &HashSet<String>) -> Result<u64> {
        let mut removed = 0;
        for sha in self.known().await? {
            if !referenced.contains(&sha) {
                self.store.delete(&self.key_for(&sha)?).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// The live store's data objects, probes left out.
pub async fn live_objects(source: &dyn BlobStore) -> Result<Vec<(ObjectKey, athena_blob::BlobMeta)>> {
    let mut all = source.list("").await?;
    all.retain(|(k, _)| !IGNORED_PREFIXES.iter().any(|p| k.as_str().starts_with(p)));
    Ok(all)
}

/// Copies every live object not yet in the target; returns the set's object map and the counts.
/// `scratch` holds one object at a time while it is hashed.
pub async fn copy_incremental(
    source: &dyn BlobStore,
    target: &ObjectTarget,
    previous: &ObjectMap,
    scratch: &Path,
) -> Result<(ObjectMap, CopyStats)> {
    let mut known = target.known().await?;
    let mut map = ObjectMap::new();
    let mut stats = CopyStats::default();
    for (key, meta) in live_objects(source).await? {
        if let Some(prev) = previous.get(key.as_str()) {
            let unchanged = prev.size == meta.size && prev.modified.is_some() && prev.modified == meta.last_modified;
            if unchanged && known.contains(&prev.sha256) {
                map.insert(key.to_string(), prev.clone());
                stats.skipped += 1;
                continue;
            }
        }
        let tmp = scratch.join(uuid::Uuid::new_v4().to_string());
        let (size, hash) = match source.download_to(&key, &tmp, u64::MAX).await {
            Ok(v) => v,
            // Deleted since the listing (e.g. the trash purge): not part of this set.
            Err(BlobError::NotFound) => continue,
            Err(e) => return Err(e.into()),
        };
        let sha = hash.to_string();
        if known.contains(&sha) {
            stats.skipped += 1;
        } else {
            let put = target.store.put_file(&target.key_for(&sha)?, &tmp).await;
            if let Err(e) = put {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e.into());
            }
            stats.copied += 1;
            stats.bytes_copied += size;
            known.insert(sha.clone());
        }
        let _ = tokio::fs::remove_file(&tmp).await;
        map.insert(key.to_string(), ObjectEntry { sha256: sha, size, modified: meta.last_modified });
    }
    Ok((map, stats))
}

/// Writes every object of the map into `dest` from the target, checking each content's hash.
pub async fn restore_all(target: &ObjectTarget, map: &ObjectMap, dest: &dyn BlobStore) -> Result<u64> {
    let mut n = 0;
    for (key, entry) in map {
        let key: ObjectKey = key.parse().map_err(|e| BackupError::Storage(format!("object key `{key}` in the set: {e}")))?;
        let src = target.key_for(&entry.sha256)?;
        if entry.size == 0 {
            dest.put_bytes(&key, bytes::Bytes::new()).await?;
            n += 1;
            continue;
        }
        let read = target.store.get(&src, None).await?;
        let (size, hash) = dest.put_stream(&key, read.body, entry.size).await?;
        if size != entry.size || hash.to_string() != entry.sha256 {
            let _ = dest.delete(&key).await;
            return Err(BackupError::Storage(format!("backup content {} does not match its hash", entry.sha256)));
        }
        n += 1;
    }
    Ok(n)
}
