//! RTO for about 1 GB of books on the embedded backends (not in CI: `cargo test -p athena-backup
//! --release --test rto_1gb -- --ignored --nocapture`). The corpus's EPUBs and PDFs are stored again
//! and again with a distinct trailer each time, so every object is distinct content.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use athena_backup::SetKind;
use athena_blob::{BlobStore, ObjectKey};
use athena_config::Config;
use athena_store::Store;

fn corpus_books() -> Vec<PathBuf> {
    let root = std::env::var("ATHENA_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"));
    let mut out = Vec::new();
    for sub in ["epub", "zh", "pdf"] {
        for e in std::fs::read_dir(root.join(sub)).expect("the shared corpus (ATHENA_CORPUS)") {
            out.push(e.unwrap().path());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes ~2 GB; run by hand to measure RTO"]
async fn rto_for_a_gigabyte_of_books() {
    let dir = tempfile::tempdir_in(std::env::var("ATHENA_RTO_DIR").unwrap_or_else(|_| "/tmp".into())).unwrap();
    let env = [
        ("ATHENA_DATA_DIR", dir.path().join("data").display().to_string()),
        ("ATHENA_BACKUP_DIR", dir.path().join("backups").display().to_string()),
    ];
    let config = Config::from_sources(None, "rto", |k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).unwrap();
    std::fs::create_dir_all(&config.hot_dir).unwrap();
    let store = athena_store_sqlite::SqliteStore::connect(&config.hot_dir.join("athena.db")).await.unwrap();
    store.migrate().await.unwrap();
    let blobs: Arc<dyn BlobStore> = Arc::new(athena_backup::objects::plain_folder(&config.cold_dir.join("objects")).unwrap());
    let books = corpus_books();
    let (mut total, mut n) = (0u64, 0u64);
    while total < 1_000_000_000 {
        for b in &books {
            let mut bytes = std::fs::read(b).unwrap();
            bytes.extend_from_slice(format!("copy {n}").as_bytes());
            total += bytes.len() as u64;
            let key: ObjectKey = format!("users/u/books/{n}.bin").parse().unwrap();
            blobs.put_bytes(&key, bytes.into()).await.unwrap();
            n += 1;
        }
    }
    store.close().await;
    let t = Instant::now();
    let set = athena_backup::create(&config, &*blobs, SetKind::Full, chrono::Utc::now()).await.unwrap();
    let backup_s = t.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&config.data_dir).unwrap();
    std::fs::create_dir_all(&config.hot_dir).unwrap();
    let t = Instant::now();
    let r = athena_backup::restore(&config, &*blobs, &set.name, false).await.unwrap();
    let rto = t.elapsed().as_secs_f64();
    println!("{n} objects, {:.2} GB: backup {backup_s:.1} s, restore (RTO) {rto:.1} s", total as f64 / 1e9);
    assert_eq!(r.objects, n);
}
