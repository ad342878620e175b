//! Content purge, two-step uploads and dedup challenges: the housekeeping around books.

use athena_domain::{BookId, ObjectKey, UserId};

use super::{assert_not_found, created, fresh_hash, new_book, now, secs, upload_key, user};
use crate::{DedupChallenge, PendingUpload, Store};

pub async fn purge_listing(s: &dyn Store) {
    let t = now();
    let ann = user(s, "purge").await;
    let (old, _) = created(s, new_book(&ann.id, &fresh_hash(), t)).await;
    let (recent, _) = created(s, new_book(&ann.id, &fresh_hash(), t)).await;
    let (live, _) = created(s, new_book(&ann.id, &fresh_hash(), t)).await;
    s.set_book_deleted(&ann.id, &old.id, Some(t - secs(40 * 86400)), t).await.expect("delete old");
    s.set_book_deleted(&ann.id, &recent.id, Some(t - secs(86400)), t).await.expect("delete recent");
    let due: Vec<BookId> = s.books_deleted_before(t - secs(30 * 86400), 1000).await.expect("due").into_iter().map(|b| b.id).collect();
    assert!(due.contains(&old.id));
    assert!(!due.contains(&recent.id) && !due.contains(&live.id));
    assert!(s.books_deleted_before(t, 1).await.expect("limited").len() <= 1);
}

fn pending(user: &UserId, expires_at: chrono::DateTime<chrono::Utc>, created_at: chrono::DateTime<chrono::Utc>) -> PendingUpload {
    PendingUpload {
        key: upload_key(user, "book.pdf"),
        user_id: user.clone(),
        filename: "book.pdf".into(),
        content_type: Some("application/pdf".into()),
        declared_size: Some(42),
        declared_sha256: Some(super::fresh_hash()),
        expires_at,
        created_at,
    }
}

pub async fn pending_uploads(s: &dyn Store) {
    let t = now();
    let ann = user(s, "pend").await;
    let bob = user(s, "pend-other").await;
    let old = pending(&ann.id, t - secs(3600), t - secs(25 * 3600));
    let fresh = pending(&ann.id, t + secs(3600), t);
    let mut bare = pending(&ann.id, t + secs(3600), t);
    (bare.content_type, bare.declared_size, bare.declared_sha256) = (None, None, None);
    for u in [&old, &fresh, &bare] {
        s.create_pending_upload(u.clone()).await.expect("create pending");
    }
    assert_eq!(s.pending_upload(&ann.id, &fresh.key).await.expect("pending"), fresh);
    assert_eq!(s.pending_upload(&ann.id, &bare.key).await.expect("pending"), bare);
    assert_not_found(s.pending_upload(&bob.id, &fresh.key).await, "another user's upload");

    let expired: Vec<ObjectKey> = s.pending_uploads_expired(t, 1000).await.expect("expired").into_iter().map(|p| p.key).collect();
    assert!(expired.contains(&old.key));
    assert!(!expired.contains(&fresh.key));
    s.delete_pending_upload(&old.key).await.expect("delete");
    assert_not_found(s.pending_upload(&ann.id, &old.key).await, "deleted upload");
    let expired: Vec<ObjectKey> = s.pending_uploads_expired(t, 1000).await.expect("expired").into_iter().map(|p| p.key).collect();
    assert!(!expired.contains(&old.key));
}

pub async fn dedup_challenges(s: &dyn Store) {
    let t = now();
    let ann = user(s, "chal").await;
    let bob = user(s, "chal-other").await;
    let sha = fresh_hash();
    let challenge = |created: i64, expires: i64, ranges: Vec<(u64, u64)>| DedupChallenge {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: ann.id.clone(),
        sha256: sha.clone(),
        ranges,
        expires_at: t + secs(expires),
        created_at: t + secs(created),
    };
    let older = challenge(-10, 300, vec![(0, 16)]);
    let newer = challenge(-5, 300, vec![(100, 164), (4096, 4160)]);
    let expired = challenge(-1, -1, vec![(1, 2)]);
    for c in [&older, &newer, &expired] {
        s.create_dedup_challenge(c.clone()).await.expect("create challenge");
    }
    assert_eq!(s.take_dedup_challenge(&bob.id, &sha, t).await.expect("take"), None, "another user's challenge");
    assert_eq!(s.take_dedup_challenge(&ann.id, &fresh_hash(), t).await.expect("take"), None, "another hash");
    assert_eq!(s.take_dedup_challenge(&ann.id, &sha, t).await.expect("take"), Some(newer), "newest unexpired first");
    assert_eq!(s.take_dedup_challenge(&ann.id, &sha, t).await.expect("take"), Some(older), "single use");
    assert_eq!(s.take_dedup_challenge(&ann.id, &sha, t).await.expect("take"), None, "expired ones are never taken");
}
