mod common;

use std::sync::Arc;
use std::time::Duration;

use athena_blob::{BlobError, BlobStore, FsBlobStore, LocalSigner};
use bytes::Bytes;
use common::key;

fn signer() -> LocalSigner {
    LocalSigner::new(b"test-secret".to_vec(), "https://books.example.org/")
}

fn store(root: &std::path::Path) -> FsBlobStore {
    FsBlobStore::new(root.join("blobs"), signer()).unwrap()
}

#[tokio::test]
async fn fs_scenario_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    common::suite(Arc::new(store)).await;
    // Failed and finished writes alike leave no temporary files.
    let tmp: Vec<_> = std::fs::read_dir(dir.path().join("blobs/.tmp")).unwrap().collect();
    assert!(tmp.is_empty(), "{tmp:?}");
}

#[tokio::test]
async fn fs_large_stream_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    common::large_stream_stays_bounded(Arc::new(store(dir.path()))).await;
}

#[tokio::test]
async fn fs_local_paths_stay_under_root_and_temp_files_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("blobs");
    std::fs::create_dir_all(root.join(".tmp")).unwrap();
    std::fs::write(root.join(".tmp/leftover"), b"half").unwrap();
    let store = FsBlobStore::new(root.clone(), signer()).unwrap();
    assert!(!root.join(".tmp/leftover").exists());
    assert_eq!(store.backend(), "fs");

    let k = key("users/u1/up1/book.epub");
    store.put_bytes(&k, Bytes::from_static(b"epub")).await.unwrap();
    let path = store.local_path(&k).unwrap();
    assert!(path.starts_with(root.canonicalize().unwrap()));
    assert_eq!(std::fs::read(&path).unwrap(), b"epub");
    // The temporary folder is not addressable as objects.
    assert!(store.local_path(&key(".tmp/x")).is_none());
    assert!(store.put_bytes(&key(".tmp/x"), Bytes::new()).await.is_err());

    // put_file moves a file on the same filesystem.
    let src = dir.path().join("incoming.epub");
    std::fs::write(&src, b"moved").unwrap();
    let k2 = key("users/u1/up2/book.epub");
    assert_eq!(store.put_file(&k2, &src).await.unwrap(), 5);
    assert_eq!(std::fs::read(store.local_path(&k2).unwrap()).unwrap(), b"moved");

    // Deleting the last object of a folder prunes the empty folders, not the root.
    store.delete(&k).await.unwrap();
    store.delete(&k2).await.unwrap();
    assert!(!root.join("users").exists());
    assert!(root.exists());
}

#[tokio::test]
async fn fs_presigned_put_points_at_athena_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let k = key("users/u1/up1/My_Book.epub");
    let before = chrono::Utc::now();
    let put = store.presign_put(&k, Duration::from_secs(600)).await.unwrap();
    assert_eq!(put.method, "PUT");
    assert!(put.headers.is_empty());
    let expires = put.expires_at.timestamp();
    assert!((expires - before.timestamp() - 600).abs() <= 2);

    let url = url::Url::parse(&put.url).unwrap();
    assert_eq!(url.host_str(), Some("books.example.org"));
    assert_eq!(url.path(), "/api/v1/books/upload/users/u1/up1/My_Book.epub");
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query["expires"], expires.to_string());
    let signature = &query["signature"];

    let s = signer();
    let now = chrono::Utc::now();
    s.verify(&k, expires, signature, now).unwrap();
    assert_eq!(&s.sign(&k, expires), signature);
    // Expired, tampered expiry, other key, flipped signature, other secret.
    let later = put.expires_at + chrono::Duration::seconds(1);
    assert!(matches!(s.verify(&k, expires, signature, later), Err(BlobError::Expired)));
    assert!(matches!(s.verify(&k, expires + 3600, signature, now), Err(BlobError::InvalidSignature)));
    assert!(matches!(s.verify(&key("users/u2/up1/My_Book.epub"), expires, signature, now), Err(BlobError::InvalidSignature)));
    let mut flipped = signature.clone().into_bytes();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    assert!(matches!(s.verify(&k, expires, std::str::from_utf8(&flipped).unwrap(), now), Err(BlobError::InvalidSignature)));
    let other = LocalSigner::new(b"other".to_vec(), "https://books.example.org");
    assert!(matches!(other.verify(&k, expires, signature, now), Err(BlobError::InvalidSignature)));
}
