//! One scenario suite run against every backend, so they behave the same.

#![allow(dead_code)]

use std::sync::Arc;

use athena_blob::{BlobError, BlobStore, ByteStream, ContentHash, ObjectKey};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use sha2::Digest;

pub fn key(s: &str) -> ObjectKey {
    s.parse().unwrap_or_else(|e| panic!("bad key {s}: {e:?}"))
}

/// A prefix no earlier run used, so a shared bucket never sees stale objects.
pub fn fresh_prefix() -> String {
    format!("t-{}/", uuid::Uuid::new_v4())
}

pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

pub fn chunked(data: &[u8], chunk: usize) -> ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> = data.chunks(chunk).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    Box::pin(futures::stream::iter(chunks))
}

pub async fn read_all(store: &dyn BlobStore, k: &ObjectKey, range: Option<(u64, Option<u64>)>) -> Vec<u8> {
    let read = store.get(k, range).await.unwrap();
    let body: Vec<Bytes> = read.body.try_collect().await.unwrap();
    body.concat()
}

pub async fn suite(store: Arc<dyn BlobStore>) {
    let store = store.as_ref();
    let p = fresh_prefix();
    let data = pattern(100_000);

    // Too large: refused mid-stream, nothing left behind.
    let big = key(&format!("{p}big.bin"));
    let err = store.put_stream(&big, chunked(&data, 7_000), 50_000).await.unwrap_err();
    assert!(matches!(err, BlobError::TooLarge { limit: 50_000 }), "{err:?}");
    assert!(store.stat(&big).await.unwrap().is_none());

    // A body that fails half way leaves nothing either.
    let broken = key(&format!("{p}broken.bin"));
    let body: ByteStream = Box::pin(
        futures::stream::iter(vec![Ok(Bytes::from_static(b"hello")), Err(std::io::Error::other("client went away"))])
            .chain(futures::stream::iter(vec![Ok(Bytes::from_static(b"never"))])),
    );
    assert!(store.put_stream(&broken, body, 1_000).await.is_err());
    assert!(store.stat(&broken).await.unwrap().is_none());

    // put_stream: size and hash of what arrived; exactly at the limit is fine.
    let a = key(&format!("{p}books/a.epub"));
    let (size, hash) = store.put_stream(&a, chunked(&data, 7_000), data.len() as u64).await.unwrap();
    assert_eq!(size, data.len() as u64);
    assert_eq!(hash, ContentHash::of_bytes(&data));

    // Reads: whole, ranges, clamped end, invalid ranges, missing objects.
    let read = store.get(&a, None).await.unwrap();
    assert_eq!((read.total_size, read.start, read.end, read.len()), (100_000, 0, 99_999, 100_000));
    drop(read);
    assert_eq!(read_all(store, &a, None).await, data);
    assert_eq!(read_all(store, &a, Some((10, Some(19)))).await, &data[10..20]);
    assert_eq!(read_all(store, &a, Some((99_995, None))).await, &data[99_995..]);
    let read = store.get(&a, Some((99_990, Some(1 << 40)))).await.unwrap();
    assert_eq!((read.start, read.end, read.len()), (99_990, 99_999, 10));
    assert_eq!(read.body.try_collect::<Vec<_>>().await.unwrap().concat(), &data[99_990..]);
    assert_eq!(read_all(store, &a, Some((0, Some(0)))).await, &data[..1]);
    for bad in [(100_000, None), (200_000, Some(300_000)), (5, Some(4))] {
        let err = store.get(&a, Some(bad)).await.unwrap_err();
        assert!(matches!(err, BlobError::InvalidRange), "{bad:?}: {err:?}");
    }
    let missing = key(&format!("{p}missing.bin"));
    assert!(matches!(store.get(&missing, None).await.unwrap_err(), BlobError::NotFound));
    assert!(store.stat(&missing).await.unwrap().is_none());

    // stat
    let meta = store.stat(&a).await.unwrap().unwrap();
    assert_eq!(meta.size, 100_000);
    let modified = meta.last_modified.expect("last_modified");
    assert!((chrono::Utc::now() - modified).num_minutes().abs() < 10, "{modified}");

    // put_file
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("upload.bin");
    let file_data = pattern(300_000);
    std::fs::write(&src, &file_data).unwrap();
    let b = key(&format!("{p}books/b.pdf"));
    assert_eq!(store.put_file(&b, &src).await.unwrap(), 300_000);
    assert_eq!(read_all(store, &b, None).await, file_data);
    assert!(matches!(store.put_file(&key(&format!("{p}nope")), &dir.path().join("absent")).await.unwrap_err(), BlobError::Internal(_)));

    // put_bytes, including an empty object, and overwrite.
    let c = key(&format!("{p}covers/c.jpg"));
    store.put_bytes(&c, Bytes::from_static(b"first")).await.unwrap();
    store.put_bytes(&c, Bytes::from_static(b"jpeg bytes")).await.unwrap();
    assert_eq!(read_all(store, &c, None).await, b"jpeg bytes");
    let empty = key(&format!("{p}empty"));
    store.put_bytes(&empty, Bytes::new()).await.unwrap();
    let read = store.get(&empty, None).await.unwrap();
    assert_eq!((read.total_size, read.len()), (0, 0));
    assert!(read.body.try_collect::<Vec<_>>().await.unwrap().concat().is_empty());
    assert!(matches!(store.get(&empty, Some((0, None))).await.unwrap_err(), BlobError::InvalidRange));

    // download_to: content and hash; too large leaves no file.
    let out = dir.path().join("down.bin");
    let (size, hash) = store.download_to(&a, &out, 1 << 20).await.unwrap();
    assert_eq!((size, hash), (100_000, ContentHash::of_bytes(&data)));
    assert_eq!(std::fs::read(&out).unwrap(), data);
    let out2 = dir.path().join("down2.bin");
    assert!(matches!(store.download_to(&a, &out2, 99_999).await.unwrap_err(), BlobError::TooLarge { limit: 99_999 }));
    assert!(!out2.exists());
    assert!(matches!(store.download_to(&missing, &out2, 10).await.unwrap_err(), BlobError::NotFound));
    assert!(!out2.exists());

    // hash_ranges over [start, end) pieces.
    let h = store.hash_ranges(&a, &[(0, 10), (50_000, 50_100), (99_990, 100_000), (7, 7)]).await.unwrap();
    let expected = [&data[0..10], &data[50_000..50_100], &data[99_990..]].concat();
    assert_eq!(h, ContentHash::of_bytes(&expected));
    assert_eq!(store.hash_ranges(&a, &[(0, 100_000)]).await.unwrap(), ContentHash::of_bytes(&data));
    assert_eq!(store.hash_ranges(&a, &[]).await.unwrap(), ContentHash::of_bytes(b""));
    for bad in [[(0, 100_001)], [(10, 5)]] {
        assert!(matches!(store.hash_ranges(&a, &bad).await.unwrap_err(), BlobError::InvalidRange), "{bad:?}");
    }
    assert!(matches!(store.hash_ranges(&missing, &[(0, 1)]).await.unwrap_err(), BlobError::NotFound));

    // list: by folder, by partial segment, nothing outside the prefix.
    let names = |v: Vec<(ObjectKey, athena_blob::BlobMeta)>| v.into_iter().map(|(k, _)| k.to_string()).collect::<Vec<_>>();
    let all = store.list(&p).await.unwrap();
    let sizes: Vec<u64> = all.iter().map(|(_, m)| m.size).collect();
    assert_eq!(names(all), [format!("{p}books/a.epub"), format!("{p}books/b.pdf"), format!("{p}covers/c.jpg"), format!("{p}empty")]);
    assert_eq!(sizes, [100_000, 300_000, 10, 0]);
    assert_eq!(names(store.list(&format!("{p}books/")).await.unwrap()), [format!("{p}books/a.epub"), format!("{p}books/b.pdf")]);
    assert_eq!(names(store.list(&format!("{p}books/a")).await.unwrap()), [format!("{p}books/a.epub")]);
    assert_eq!(names(store.list(&format!("{p}cov")).await.unwrap()), [format!("{p}covers/c.jpg")]);
    assert!(store.list(&format!("{p}nothing/")).await.unwrap().is_empty());
    assert!(store.list(&fresh_prefix()).await.unwrap().is_empty());
    let everything = names(store.list("").await.unwrap());
    assert!(everything.contains(&format!("{p}covers/c.jpg")));
    assert!(everything.iter().all(|k| !k.starts_with(".tmp")), "{everything:?}");

    // delete is idempotent.
    store.delete(&a).await.unwrap();
    assert!(store.stat(&a).await.unwrap().is_none());
    store.delete(&a).await.unwrap();
    store.delete(&missing).await.unwrap();
    assert_eq!(names(store.list(&format!("{p}books/")).await.unwrap()), [format!("{p}books/b.pdf")]);

    // probe cleans up after itself.
    let before = store.list(".athena-probe/").await.unwrap().len();
    let description = store.probe().await.unwrap();
    assert!(description.contains("ok"), "{description}");
    assert_eq!(store.list(".athena-probe/").await.unwrap().len(), before);

    for k in [&b, &c, &empty] {
        store.delete(k).await.unwrap();
    }
    assert!(store.list(&p).await.unwrap().is_empty());
}

/// Peak resident memory of this process, in bytes, after resetting the peak where Linux allows.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn current_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// 50 MB streamed through put_stream and get without the process growing by anything near that.
pub async fn large_stream_stays_bounded(store: Arc<dyn BlobStore>) {
    const CHUNK: usize = 1 << 20;
    const CHUNKS: usize = 50;
    let chunk_at = |i: usize| Bytes::from(vec![(i % 256) as u8; CHUNK]);
    let mut expected = sha2_hasher();
    for i in 0..CHUNKS {
        expected.update(chunk_at(i));
    }
    let expected = ContentHash::from_digest(expected.finalize().into());

    let k = key(&format!("{}large.bin", fresh_prefix()));
    let can_reset = reset_peak_rss();
    let baseline = if can_reset { current_rss() } else { peak_rss() };
    // Generated lazily: the source never holds more than one chunk.
    let body: ByteStream = Box::pin(futures::stream::iter(0..CHUNKS).map(move |i| Ok(chunk_at(i))));
    let (size, hash) = store.put_stream(&k, body, (CHUNKS * CHUNK) as u64 + 1).await.unwrap();
    assert_eq!(size, (CHUNKS * CHUNK) as u64);
    assert_eq!(hash, expected);

    let read = store.get(&k, None).await.unwrap();
    assert_eq!(read.total_size, size);
    let mut got = sha2_hasher();
    let mut n = 0u64;
    let mut body = read.body;
    while let Some(chunk) = body.try_next().await.unwrap() {
        n += chunk.len() as u64;
        got.update(&chunk);
    }
    assert_eq!(n, size);
    assert_eq!(ContentHash::from_digest(got.finalize().into()), expected);

    let growth = peak_rss().saturating_sub(baseline);
    eprintln!("{}: peak RSS grew by {} KiB for a {} MiB object", store.backend(), growth / 1024, CHUNKS);
    assert!(growth < 40 << 20, "peak RSS grew by {growth} bytes while streaming 50 MiB");
    store.delete(&k).await.unwrap();

    // Refused only after several MiB (S3 multipart parts already sent): still no object.
    let k = key(&format!("{}too-large.bin", fresh_prefix()));
    let body: ByteStream = Box::pin(futures::stream::iter(0..CHUNKS).map(move |i| Ok(chunk_at(i))));
    let err = store.put_stream(&k, body, 20 << 20).await.unwrap_err();
    assert!(matches!(err, BlobError::TooLarge { limit } if limit == 20 << 20), "{err:?}");
    assert!(store.stat(&k).await.unwrap().is_none());
}

fn sha2_hasher() -> sha2::Sha256 {
    sha2::Sha256::new()
}
