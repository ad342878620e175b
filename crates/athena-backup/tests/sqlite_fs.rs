//! Backup sets on the embedded backends (SQLite + local folder), through the library: round trip,
//! incremental object copies, refusals of damaged sets, retention, a full disk, writes during a
//! backup, and the RPO of the worker's snapshots under a moved clock.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use athena_backup::{schedule::Scheduler, BackupError, Database, SetKind};
use athena_blob::{BlobStore, ObjectKey};
use athena_config::Config;
use athena_domain::{Email, Role, UserId};
use athena_store::{NewUser, Store};
use athena_store_sqlite::SqliteStore;
use chrono::{DateTime, Duration, TimeZone, Utc};

struct Env {
    _dir: tempfile::TempDir,
    config: Config,
    store: SqliteStore,
    blobs: Arc<dyn BlobStore>,
}

async fn env_with(extra: &[(&str, &str)]) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("ATHENA_DATA_DIR".into(), dir.path().join("data").display().to_string());
    env.insert("ATHENA_BACKUP_DIR".into(), dir.path().join("backups").display().to_string());
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    let config = Config::from_sources(None, "test", |k| env.get(k).cloned()).unwrap();
    std::fs::create_dir_all(&config.hot_dir).unwrap();
    let store = SqliteStore::connect(&config.hot_dir.join("athena.db")).await.unwrap();
    store.migrate().await.unwrap();
    let blobs: Arc<dyn BlobStore> = Arc::new(athena_backup::objects::plain_folder(&config.cold_dir.join("objects")).unwrap());
    Env { _dir: dir, config, store, blobs }
}

async fn add_user(store: &SqliteStore, n: usize, at: DateTime<Utc>) {
    let email: Email = format!("user{n}@example.com").parse().unwrap();
    store.create_user(NewUser { id: UserId::new(), email, display_name: format!("User {n}"), role: Role::User, now: at }).await.unwrap();
}

async fn put(blobs: &dyn BlobStore, key: &str, body: &[u8]) {
    blobs.put_bytes(&key.parse::<ObjectKey>().unwrap(), bytes::Bytes::copy_from_slice(body)).await.unwrap();
}

async fn object_hashes(blobs: &dyn BlobStore) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (key, _) in athena_backup::objects::live_objects(blobs).await.unwrap() {
        let tmp = tempfile::NamedTempFile::new().unwrap().into_temp_path();
        let path = tmp.to_path_buf();
        drop(tmp);
        let (_, hash) = blobs.download_to(&key, &path, u64::MAX).await.unwrap();
        let _ = std::fs::remove_file(&path);
        out.insert(key.to_string(), hash.to_string());
    }
    out
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 14, 1, 0, 0).unwrap()
}

#[tokio::test]
async fn round_trip_is_identical_and_objects_are_copied_once() {
    let e = env_with(&[]).await;
    add_user(&e.store, 1, t0()).await;
    add_user(&e.store, 2, t0()).await;
    put(&*e.blobs, "users/a/books/one.epub", b"first book").await;
    put(&*e.blobs, "users/b/books/same.epub", b"first book").await;
    put(&*e.blobs, "covers/x.webp", b"cover").await;
    put(&*e.blobs, "text/empty.jsonl", b"").await;

    let first = athena_backup::create(&e.config, &*e.blobs, SetKind::Full, t0()).await.unwrap();
    assert_eq!(first.name, "athena_20250114_010000");
    assert_eq!((first.objects, first.objects_copied, first.objects_skipped), (4, 3, 1), "same content is stored once");
    let second = athena_backup::create(&e.config, &*e.blobs, SetKind::Full, t0() + Duration::hours(1)).await.unwrap();
    assert_eq!((second.objects_copied, second.objects_skipped), (0, 4), "an unchanged store copies nothing");

    let before = Database::from_config(&e.config).unwrap().digest().await.unwrap();
    let objects_before = object_hashes(&*e.blobs).await;
    let report = athena_backup::verify(&e.config, &second.name).await.unwrap();
    assert!(report.rows >= 2 && report.objects == 4, "{report:?}");
    let listed = athena_backup::list(&e.config).unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].verified, Some(true));
    assert!(listed.iter().all(|s| s.good && s.backend.as_deref() == Some("sqlite")));

    // Data present: refused without --force, and nothing changes.
    let err = athena_backup::restore(&e.config, &*e.blobs, &second.name, false).await.unwrap_err();
    assert!(matches!(err, BackupError::Refused(_)), "{err}");

    // Lose everything, restore, and compare.
    e.store.close().await;
    std::fs::remove_dir_all(&e.config.data_dir).unwrap();
    let blobs: Arc<dyn BlobStore> = Arc::new(athena_backup::objects::plain_folder(&e.config.cold_dir.join("objects")).unwrap());
    std::fs::create_dir_all(&e.config.hot_dir).unwrap();
    let restored = athena_backup::restore(&e.config, &*blobs, &second.name, false).await.unwrap();
    assert_eq!(restored.objects, 4);
    let after = Database::from_config(&e.config).unwrap().digest().await.unwrap();
    assert_eq!(before, after, "every row of every table is back");
    let blobs: Arc<dyn BlobStore> = Arc::new(athena_backup::objects::plain_folder(&e.config.cold_dir.join("objects")).unwrap());
    assert_eq!(object_hashes(&*blobs).await, objects_before, "every object is back, byte for byte");
}

#[tokio::test]
async fn damaged_sets_are_refused_and_current_data_is_untouched() {
    let e = env_with(&[]).await;
    add_user(&e.store, 1, t0()).await;
    put(&*e.blobs, "users/a/books/one.epub", b"a book").await;
    let set = athena_backup::create(&e.config, &*e.blobs, SetKind::Full, t0()).await.unwrap();
    add_user(&e.store, 2, t0()).await; // the current data moved on
    let current = Database::from_config(&e.config).unwrap().digest().await.unwrap();
    let dump = set.dir.join("athena.db.gz");
    let original = std::fs::read(&dump).unwrap();

    let expect_refused = |e: BackupError, what: &str| {
        assert!(e.is_corrupt(), "{what}: {e}");
        e.to_string()
    };
    // Truncated.
    std::fs::write(&dump, &original[..original.len() / 2]).unwrap();
    let msg = expect_refused(athena_backup::restore(&e.config, &*e.blobs, &set.name, true).await.unwrap_err(), "truncated");
    assert!(msg.contains("truncated"), "{msg}");
    assert!(athena_backup::verify(&e.config, &set.name).await.is_err());
    assert_eq!(athena_backup::list(&e.config).unwrap()[0].verified, Some(false));
    // Same size, one byte flipped.
    let mut flipped = original.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    std::fs::write(&dump, &flipped).unwrap();
    let msg = expect_refused(athena_backup::restore(&e.config, &*e.blobs, &set.name, true).await.unwrap_err(), "corrupt");
    assert!(msg.contains("checksum"), "{msg}");
    // A format this version does not know.
    std::fs::write(&dump, &original).unwrap();
    let manifest_path = set.dir.join("manifest.json");
    let manifest = std::fs::read_to_string(&manifest_path).unwrap();
    std::fs::write(&manifest_path, manifest.replacen("\"format\": 1", "\"format\": 99", 1)).unwrap();
    let msg = expect_refused(athena_backup::restore(&e.config, &*e.blobs, &set.name, true).await.unwrap_err(), "wrong version");
    assert!(msg.contains("format 99"), "{msg}");
    // A lost object content.
    std::fs::write(&manifest_path, &manifest).unwrap();
    let objects = e.config.backup_dir.join("objects/objects");
    std::fs::remove_dir_all(&objects).unwrap();
    let msg = expect_refused(athena_backup::restore(&e.config, &*e.blobs, &set.name, true).await.unwrap_err(), "missing object");
    assert!(msg.contains("missing"), "{msg}");

    assert_eq!(Database::from_config(&e.config).unwrap().digest().await.unwrap(), current, "current data untouched");
    assert_eq!(e.blobs.list("users/").await.unwrap().len(), 1);
    let err = athena_backup::restore(&e.config, &*e.blobs, "athena_19700101_000000", true).await.unwrap_err();
    assert!(matches!(err, BackupError::NotFound(_)), "{err}");
}

#[tokio::test]
async fn prune_keeps_recent_sets_and_referenced_objects() {
    let offsite = tempfile::tempdir().unwrap();
    let e = env_with(&[("ATHENA_BACKUP_OFFSITE_DIR", offsite.path().to_str().unwrap())]).await;
    add_user(&e.store, 1, t0()).await;
    put(&*e.blobs, "users/a/books/old.epub", b"old book").await;
    let old = athena_backup::create(&e.config, &*e.blobs, SetKind::Full, t0()).await.unwrap();
    assert!(offsite.path().join(&old.name).join("manifest.json").exists(), "copied offsite");
    e.blobs.delete(&"users/a/books/old.epub".parse().unwrap()).await.unwrap();
    put(&*e.blobs, "users/a/books/new.epub", b"new book").await;
    let new = athena_backup::create(&e.config, &*e.blobs, SetKind::Full, t0() + Duration::days(8)).await.unwrap();

    // Day 8: the old set leaves the backup dir but stays offsite, so its objects stay too.
    let p = athena_backup::prune(&e.config, t0() + Duration::days(8)).await.unwrap();
    assert_eq!(p.removed_sets, vec![old.name.clone()]);
    assert!(p.removed_offsite.is_empty());
    assert_eq!(p.removed_objects, 0);
    // Day 31: gone offsite too; its only object is collected; the newest set is always kept.
    let p = athena_backup::prune(&e.config, t0() + Duration::days(45)).await.unwrap();
    assert_eq!(p.removed_offsite, vec![old.name.clone()]);
    assert_eq!(p.removed_objects, 1);
    let names: Vec<String> = athena_backup::list(&e.config).unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(names, vec![new.name.clone()]);
    athena_backup::verify(&e.config, &new.name).await.unwrap();
}

#[tokio::test]
async fn a_full_disk_fails_cleanly_and_lists_nothing() {
    // A 256 KiB tmpfs as the backup dir (the tests run as root, as CI does).
    let mnt = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"]).arg(mnt.path()).status().unwrap();
    assert!(status.success(), "mounting a small tmpfs needs root");
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _guard = Unmount(mnt.path());
    let e = env_with(&[("ATHENA_BACKUP_DIR", mnt.path().to_str().unwrap())]).await;
    add_user(&e.store, 1, t0()).await;
    // Incompressible objects larger than the disk.
    let mut noise = vec![0u8; 600 * 1024];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    put(&*e.blobs, "users/a/books/big.pdf", &noise).await;
    let err = athena_backup::create(&e.config, &*e.blobs, SetKind::Full, t0()).await.unwrap_err();
    let msg = err.to_string().to_lowercase();
    assert!(msg.contains("full") || msg.contains("space"), "the error says the disk is full: {err}");
    assert!(athena_backup::list(&e.config).unwrap().is_empty(), "no partial set is listed");
    assert!(
        std::fs::read_dir(mnt.path()).unwrap().filter_map(|d| d.ok()).all(|d| !d.file_name().to_string_lossy().starts_with("athena_")),
        "the partial set folder was removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_during_heavy_writes_is_a_consistent_prefix() {
    let e = env_with(&[]).await;
    for n in 0..200 {
        add_user(&e.store, n, t0()).await;
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (store, stop) = (e.store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 200;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                add_user(&store, n, t0()).await;
                n += 1;
            }
            n
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let set = athena_backup::create(&e.config, &*e.blobs, SetKind::Full, t0()).await.unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.await.unwrap();
    athena_backup::verify(&e.config, &set.name).await.unwrap();

    // The snapshot holds users 0..k with no gap: one point in time of the writer's sequence.
    let copy = tempfile::tempdir().unwrap();
    let path = copy.path().join("snap.db");
    athena_backup::manifest::gunzip_to_file(&set.dir.join("athena.db.gz"), &path).unwrap();
    let snap = SqliteStore::connect(&path).await.unwrap();
    let names: Vec<String> = sqlx::query_scalar("SELECT email FROM users").fetch_all(snap.pool()).await.unwrap();
    let mut ns: Vec<usize> = names.iter().map(|e| e.trim_start_matches("user").trim_end_matches("@example.com").parse().unwrap()).collect();
    ns.sort_unstable();
    assert!(ns.len() >= 200 && ns.len() < written, "snapshot has {} of {written}", ns.len());
    assert!(ns.iter().enumerate().all(|(i, n)| i == *n), "no gaps");
}

/// RPO: the worker's snapshots every 10 simulated minutes; data is written every minute for 47
/// minutes; then the data dir is lost. Everything committed more than 15 minutes before the loss
/// must come back from the newest set.
#[tokio::test]
async fn sqlite_snapshots_bound_data_loss_to_the_interval() {
    let e = env_with(&[("ATHENA_BACKUP_SQLITE_INTERVAL_MINUTES", "10"), ("ATHENA_BACKUP_AT", "off")]).await;
    let config = Arc::new(e.config.clone());
    let mut scheduler = Scheduler::new(config.clone(), e.blobs.clone());
    let start = t0();
    let mut written = Vec::new();
    for minute in 0..=47 {
        let now = start + Duration::minutes(minute);
        add_user(&e.store, minute as usize, now).await;
        put(&*e.blobs, &format!("users/u/books/{minute}.epub"), format!("book {minute}").as_bytes()).await;
        written.push((minute, now));
        scheduler.tick(now).await.unwrap();
    }
    let loss = start + Duration::minutes(47) + Duration::seconds(30);
    let sets = athena_backup::list(&config).unwrap();
    assert!(sets.len() >= 4, "a snapshot every 10 minutes: {}", sets.len());

    e.store.close().await;
    std::fs::remove_dir_all(&config.data_dir).unwrap();
    std::fs::create_dir_all(&config.hot_dir).unwrap();
    let blobs: Arc<dyn BlobStore> = Arc::new(athena_backup::objects::plain_folder(&config.cold_dir.join("objects")).unwrap());
    let newest = sets.last().unwrap().name.clone();
    athena_backup::restore(&config, &*blobs, &newest, false).await.unwrap();

    let store = SqliteStore::connect(&config.hot_dir.join("athena.db")).await.unwrap();
    for (minute, at) in written {
        let email: Email = format!("user{minute}@example.com").parse().unwrap();
        let present = store.user_by_email(&email).await.unwrap().is_some();
        let object = blobs.stat(&format!("users/u/books/{minute}.epub").parse().unwrap()).await.unwrap().is_some();
        if loss - at > Duration::minutes(15) {
            assert!(present && object, "minute {minute}, committed {} min before the loss, is lost", (loss - at).num_minutes());
        }
    }
}
