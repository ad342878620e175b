//! The disaster-recovery drill, on both backend sets: a populated library is backed up while the
//! server runs, the data is destroyed (SQLite: the data dir; PostgreSQL + S3: the database is
//! dropped and the bucket wiped), the set is restored, and every row of every table and every
//! object's hash must be identical; the server then starts on the restored data with a green
//! `/health`. Prints the measured RTO.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use athena_backup::{Database, SetKind};
use athena_blob::{BlobStore, S3BlobStore, S3Settings};
use common::{corpus, s3_env, sha256_hex, Backend, TestApp, User};
use serde_json::{json, Value};

on_both_backends!(disaster_recovery_drill);

fn uuid() -> String {
    athena_domain::BookId::new().to_string()
}

async fn upload(t: &TestApp, user: &User, rel: &str) -> String {
    let (status, body) = t.upload(user, &corpus().join(rel)).await;
    assert!(status == 200 || status == 201, "{rel}: {status} {body}");
    body["data"]["id"].as_str().unwrap_or_else(|| panic!("{rel}: {body}")).to_string()
}

async fn sync_ok(t: &TestApp, user: &User, operations: Value) {
    let r = t.post(user, "/api/v1/sync/upload").json(&json!({ "operations": operations })).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["errors"], json!([]), "{body}");
}

async fn object_hashes(blobs: &dyn BlobStore) -> BTreeMap<String, String> {
    let scratch = tempfile::tempdir().unwrap();
    let mut out = BTreeMap::new();
    for (i, (key, _)) in athena_backup::objects::live_objects(blobs).await.unwrap().into_iter().enumerate() {
        let path = scratch.path().join(i.to_string());
        let (_, hash) = blobs.download_to(&key, &path, u64::MAX).await.unwrap();
        let _ = std::fs::remove_file(&path);
        out.insert(key.to_string(), hash.to_string());
    }
    out
}

fn s3_store(bucket: &str) -> S3BlobStore {
    let env = s3_env();
    S3BlobStore::new(S3Settings::new(&env["MINIO_ENDPOINT"], bucket, &env["MINIO_ACCESS_KEY"], &env["MINIO_SECRET_KEY"])).unwrap()
}

async fn disaster_recovery_drill(backend: Backend) {
    let keep = tempfile::tempdir().unwrap(); // outside the data dir: survives the disaster
    let backups = keep.path().join("backups").display().to_string();
    let tag = uuid().replace('-', "")[..12].to_string();
    let (bucket, backup_target) = (format!("athena-dr-{tag}"), format!("s3://athena-drbk-{tag}/sets"));
    let mut extra: Vec<(&str, &str)> = vec![("ATHENA_BACKUP_DIR", &backups)];
    if let Backend::PostgresS3 = backend {
        extra.push(("MINIO_BUCKET", &bucket));
        extra.push(("ATHENA_BACKUP_OBJECTS", &backup_target));
    }
    let t = TestApp::spawn_with(backend, &extra).await;

    // A library: two users, Chinese EPUBs and a PDF, a shelf, notes, progress.
    let ann = t.login("ann@example.com").await;
    let bob = t.login("bob@example.com").await;
    let lunyu = upload(&t, &ann, "zh/lunyu.epub").await;
    upload(&t, &ann, "zh/tangshi300.epub").await;
    upload(&t, &bob, "pdf/text-layer-zh.pdf").await;
    upload(&t, &bob, "zh/lunyu.epub").await; // same bytes as ann's: stored once
    let (shelf, at) = (uuid(), "2024-05-01T10:00:00.000Z");
    sync_ok(
        &t,
        &ann,
        json!([
            {"table": "shelves", "op": "PUT", "id": shelf, "data": {"name": "经典", "sort_order": 1}},
            {"table": "shelf_books", "op": "PUT", "id": uuid(), "data": {"shelf_id": shelf, "book_id": lunyu, "sort_order": 0}},
            {"table": "notes", "op": "PUT", "id": uuid(), "data": {"book_id": lunyu, "device_id": "phone", "content": "学而时习之", "page_number": 3, "is_deleted": 0, "created_at": at, "updated_at": at}},
            {"table": "reading_progress", "op": "PUT", "id": uuid(), "data": {"book_id": lunyu, "device_id": "phone", "progress": 0.25, "last_location": "{}", "updated_at": at}},
        ]),
    )
    .await;
    // Let the sequencer catch up, so the live database is quiet while it is compared.
    if let Some(sync) = &t.sync {
        sync.sequence_now().await.unwrap();
    }
    let config = (*t.app.config).clone();
    let db = Database::from_config(&config).unwrap();
    let before = db.digest().await.unwrap();
    let objects_before = object_hashes(&*t.app.blobs).await;
    assert!(objects_before.len() >= 3, "{objects_before:?}");

    let set = athena_backup::create(&config, &*t.app.blobs, SetKind::Full, chrono::Utc::now()).await.unwrap();
    athena_backup::verify(&config, &set.name).await.unwrap();
    let listed = athena_backup::list(&config).unwrap();
    assert_eq!((listed.len(), listed[0].verified), (1, Some(true)));
    if let Backend::PostgresS3 = backend {
        assert!(
            set.dir.read_dir().unwrap().any(|f| f.unwrap().file_name().to_string_lossy().ends_with(".sql.gz")),
            "seed's pg_dump naming"
        );
    }
    // Restoring over live data needs --force.
    let refused = athena_backup::restore(&config, &*t.app.blobs, &set.name, false).await.unwrap_err();
    assert!(matches!(refused, athena_backup::BackupError::Refused(_)), "{refused}");

    // The disaster.
    t.stop().await; // SQLite: the data dir is deleted; PostgreSQL: the database is dropped
    let live: Arc<dyn BlobStore> = match backend {
        Backend::Embedded => {
            assert!(!config.data_dir.exists());
            Arc::new(athena_backup::objects::plain_folder(&config.cold_dir.join("objects")).unwrap())
        }
        Backend::PostgresS3 => {
            let store = s3_store(&bucket);
            for (key, _) in store.list("").await.unwrap() {
                store.delete(&key).await.unwrap();
            }
            assert!(athena_backup::objects::live_objects(&store).await.unwrap().is_empty());
            Arc::new(store)
        }
    };

    let started = Instant::now();
    let report = athena_backup::restore(&config, &*live, &set.name, false).await.unwrap();
    let rto = started.elapsed();
    println!("{backend:?}: RTO {:.2} s for {} rows and {} objects", rto.as_secs_f64(), report.rows, report.objects);

    assert_eq!(db.digest().await.unwrap(), before, "every row of every table is identical");
    let live: Arc<dyn BlobStore> = match backend {
        Backend::Embedded => Arc::new(athena_backup::objects::plain_folder(&config.cold_dir.join("objects")).unwrap()),
        Backend::PostgresS3 => live,
    };
    assert_eq!(object_hashes(&*live).await, objects_before, "every object is identical");

    // The server runs on the restored data.
    let data_dir = config.data_dir.display().to_string();
    let mut again: Vec<(&str, &str)> = extra.clone();
    again.push(("ATHENA_DATA_DIR", &data_dir));
    let url = config.database_url.as_ref().map(|u| u.expose().to_string());
    if let Some(url) = &url {
        again.push(("DATABASE_URL", url));
    }
    let t2 = TestApp::spawn_with(backend, &again).await;
    // The search index is not in backups: the server rebuilds it from the restored books (search
    // reports itself degraded meanwhile), here by draining the worker until /health is green.
    let rebuild = Instant::now();
    let health = loop {
        athena_worker::Worker::new(t2.app.clone()).drain().await.unwrap();
        let health: Value = t2.client.get(t2.url("/health")).send().await.unwrap().json().await.unwrap();
        if health["components"].as_object().unwrap().values().all(|c| c["status"] == "ok") {
            break health;
        }
        assert!(rebuild.elapsed() < std::time::Duration::from_secs(30), "the index was not rebuilt: {health}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    println!("{backend:?}: index rebuilt in {:.2} s", rebuild.elapsed().as_secs_f64());
    assert_eq!(health["status"], "ok", "{health}");
    // The restored rate-limit log still counts this hour's login codes; an hour later it does not.
    t2.clock.advance(chrono::Duration::hours(2));
    let ann = t2.login("ann@example.com").await;
    let books: Value = t2.get(&ann, "/api/v1/books").send().await.unwrap().json().await.unwrap();
    assert_eq!(books["data"]["items"].as_array().map(Vec::len).or(books["data"].as_array().map(Vec::len)), Some(2), "{books}");
    let content = t2.get(&ann, &format!("/api/v1/books/{lunyu}/content")).send().await.unwrap();
    assert_eq!(content.status(), 200);
    let bytes = content.bytes().await.unwrap();
    assert_eq!(sha256_hex(&bytes), sha256_hex(&std::fs::read(corpus().join("zh/lunyu.epub")).unwrap()));
    t2.stop().await;

    // Cleanup what the drill made outside the test apps.
    if let Backend::PostgresS3 = backend {
        if let Some(url) = &url {
            let admin = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&common::pg_admin_url()).await.unwrap();
            let db_name = url.rsplit('/').next().unwrap();
            sqlx::query(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")).execute(&admin).await.unwrap();
        }
        for b in [bucket.clone(), format!("athena-drbk-{tag}")] {
            let store = s3_store(&b);
            for (key, _) in store.list("").await.unwrap_or_default() {
                let _ = store.delete(&key).await;
            }
        }
    } else {
        let _ = std::fs::remove_dir_all(config.data_dir.parent().unwrap());
    }
}
