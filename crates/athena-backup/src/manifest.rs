//! The manifest of a backup set and the checks that a set on disk matches it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{BackupError, Result};

/// Bumped when a set written by this version could not be read by an older one.
pub const FORMAT_VERSION: u32 = 1;
pub const MANIFEST: &str = "manifest.json";
pub const OBJECT_MAP: &str = "objects.json";
pub const VERIFIED: &str = "verified.json";

/// A daily (scheduled or manual) backup, or one of the worker's frequent SQLite snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SetKind {
    Full,
    Snapshot,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub sha256: String,
    pub bytes: u64,
}

/// Row count and a SHA-256 over the table's rows (each rendered as text, in sorted order).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDigest {
    pub rows: u64,
    pub sha256: String,
}

pub type TableDigests = BTreeMap<String, TableDigest>;

/// One object of the live store, as the set saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEntry {
    pub sha256: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<DateTime<Utc>>,
}

/// Object key → content; the contents live once each, by hash, in the backup object target.
pub type ObjectMap = BTreeMap<String, ObjectEntry>;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectSummary {
    /// Where the contents are (`folder:/path` or `s3://bucket/prefix`).
    pub target: String,
    pub count: u64,
    pub bytes: u64,
    pub copied: u64,
    pub skipped: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub athena_version: String,
    pub name: String,
    pub kind: SetKind,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// `fs` or `s3`: the live object store the set was taken from.
    pub object_backend: String,
    pub created_at: DateTime<Utc>,
    /// Highest applied migration of the database in the set.
    pub migration_version: i64,
    /// The database dump first, then the object map.
    pub files: Vec<FileEntry>,
    pub tables: TableDigests,
    pub objects: ObjectSummary,
}

impl Manifest {
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }

    pub fn database_file(&self) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.name != OBJECT_MAP)
    }

    /// Reads a set's manifest, refusing unknown formats with a clear message.
    pub fn load(dir: &Path) -> Result<Self> {
        let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let path = dir.join(MANIFEST);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BackupError::corrupt(&name, "it has no manifest.json (the backup never finished)"))
            }
            Err(e) => return Err(BackupError::io("reading", &path)(e)),
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| BackupError::corrupt(&name, format!("manifest.json is not valid JSON ({e})")))?;
        match value.get("format").and_then(|f| f.as_u64()) {
            Some(f) if f == u64::from(FORMAT_VERSION) => {}
            Some(f) => {
                return Err(BackupError::corrupt(
                    &name,
                    format!("it has backup format {f}; this Athena reads format {FORMAT_VERSION} (use the Athena version that wrote it)"),
                ))
            }
            None => return Err(BackupError::corrupt(&name, "manifest.json has no format version")),
        }
        serde_json::from_value(value).map_err(|e| BackupError::corrupt(&name, format!("manifest.json is malformed ({e})")))
    }

    /// Writes `manifest.json` through a temporary file and a rename, so it appears whole or not at all.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let tmp = dir.join(format!("{MANIFEST}.tmp"));
        let text = serde_json::to_vec_pretty(self).map_err(|e| BackupError::Tool(e.to_string()))?;
        write_synced(&tmp, &text)?;
        let path = dir.join(MANIFEST);
        std::fs::rename(&tmp, &path).map_err(BackupError::io("publishing", &path))?;
        sync_dir(dir);
        Ok(())
    }

    /// Checks every file's size and SHA-256 against the manifest (streamed).
    pub fn check_files(&self, dir: &Path) -> Result<()> {
        for f in &self.files {
            let path = dir.join(&f.name);
            let (sha, bytes) = match hash_file(&path) {
                Ok(v) => v,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(BackupError::corrupt(&self.name, format!("{} is missing", f.name)))
                }
                Err(e) => return Err(BackupError::io("reading", &path)(e)),
            };
            if bytes != f.bytes {
                return Err(BackupError::corrupt(
                    &self.name,
                    format!("{} has {bytes} bytes, the manifest says {} (truncated?)", f.name, f.bytes),
                ));
            }
            if sha != f.sha256 {
                return Err(BackupError::corrupt(&self.name, format!("{} does not match its checksum (corrupt)", f.name)));
            }
        }
        Ok(())
    }

    /// The object map, after its checksum was checked by [`Manifest::check_files`].
    pub fn load_object_map(&self, dir: &Path) -> Result<ObjectMap> {
        let path = dir.join(OBJECT_MAP);
        let file = std::fs::File::open(&path).map_err(BackupError::io("reading", &path))?;
        serde_json::from_reader(std::io::BufReader::new(file))
            .map_err(|e| BackupError::corrupt(&self.name, format!("objects.json is malformed ({e})")))
    }
}

/// The result of the last `verify` of a set, kept next to its manifest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Verified {
    pub ok: bool,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), total))
}

pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::File::create(path).map_err(BackupError::io("creating", path))?;
    f.write_all(bytes).map_err(BackupError::io("writing", path))?;
    f.sync_all().map_err(BackupError::io("syncing", path))
}

/// Makes a rename in `dir` durable; best effort (not every filesystem supports it).
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// A writer that hashes and counts what passes through it.
pub struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        Self { inner, hasher: Sha256::new(), bytes: 0 }
    }
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.bytes)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Gzips `reader` into a new file `path`, returning its manifest entry (hash of the compressed bytes).
pub fn gzip_to_file(mut reader: impl Read, path: &Path) -> Result<FileEntry> {
    let file = std::fs::File::create(path).map_err(BackupError::io("creating", path))?;
    let hashing = HashingWriter::new(std::io::BufWriter::new(file));
    let mut gz = flate2::write::GzEncoder::new(hashing, flate2::Compression::new(6));
    std::io::copy(&mut reader, &mut gz).map_err(BackupError::io("compressing into", path))?;
    let hashing = gz.finish().map_err(BackupError::io("compressing into", path))?;
    let (buf, sha256, bytes) = hashing.finish();
    let file = buf.into_inner().map_err(|e| BackupError::io("writing", path)(e.into_error()))?;
    file.sync_all().map_err(BackupError::io("syncing", path))?;
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    Ok(FileEntry { name, sha256, bytes })
}

/// Decompresses a gzip file into a new file.
pub fn gunzip_to_file(from: &Path, to: &Path) -> Result<u64> {
    let input = std::fs::File::open(from).map_err(BackupError::io("reading", from))?;
    let mut gz = flate2::read::GzDecoder::new(std::io::BufReader::new(input));
    let mut out = std::fs::File::create(to).map_err(BackupError::io("creating", to))?;
    let n = std::io::copy(&mut gz, &mut out).map_err(BackupError::io("decompressing", from))?;
    out.sync_all().map_err(BackupError::io("syncing", to))?;
    Ok(n)
}
