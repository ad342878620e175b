//! Shelves, shelf items, cross-user isolation and idempotency keys.

use athena_domain::{BookId, ShelfId, UserId};
use chrono::{DateTime, Utc};

use super::{assert_not_found, assert_version_conflict, created, fresh_hash, new_book, now, secs, upload_key, user};
use crate::{BookPatch, BookQuery, IdempotentResponse, NewSession, NewShelf, PendingUpload, Shelf, ShelfPatch, Store};

async fn shelf(s: &dyn Store, user: &UserId, name: &str, sort_order: i64, at: DateTime<Utc>) -> Shelf {
    s.create_shelf(NewShelf {
        id: ShelfId::new(),
        user_id: user.clone(),
        name: name.into(),
        description: Some(format!("{name} shelf")),
        sort_order,
        now: at,
    })
    .await
    .expect("create shelf")
}

fn ids(shelves: Vec<Shelf>) -> Vec<ShelfId> {
    shelves.into_iter().map(|s| s.id).collect()
}

pub async fn shelves(s: &dyn Store) {
    let t = now();
    let ann = user(s, "shelf").await;
    let a = shelf(s, &ann.id, "a", 1, t).await;
    let b = shelf(s, &ann.id, "b", 0, t + secs(1)).await;
    let c = shelf(s, &ann.id, "c", 1, t + secs(2)).await;
    assert_eq!((a.name.as_str(), a.description.as_deref(), a.sort_order), ("a", Some("a shelf"), 1));
    assert_eq!((a.version, a.is_deleted, a.deleted_at, a.cover_url.clone()), (1, false, None, None));
    assert_eq!((a.created_at, a.updated_at), (t, t));
    assert_eq!(s.shelf(&ann.id, &a.id).await.expect("shelf"), a);

    assert_eq!(ids(s.list_shelves(&ann.id, None, 10).await.expect("list")), vec![b.id.clone(), a.id.clone(), c.id.clone()]);
    assert_eq!(ids(s.list_shelves(&ann.id, None, 2).await.expect("page 1")), vec![b.id.clone(), a.id.clone()]);
    assert_eq!(ids(s.list_shelves(&ann.id, Some(&a.id), 2).await.expect("page 2")), vec![c.id.clone()]);
    assert!(s.list_shelves(&ann.id, Some(&c.id), 2).await.expect("page 3").is_empty());

    let patch = ShelfPatch { name: Some("A!".into()), description: Some(None), sort_order: None };
    let a2 = s.update_shelf(&ann.id, &a.id, Some(1), patch, t + secs(5)).await.expect("update shelf");
    assert_eq!((a2.name.as_str(), a2.description.clone(), a2.sort_order, a2.version, a2.updated_at), ("A!", None, 1, 2, t + secs(5)));
    assert_version_conflict(s.update_shelf(&ann.id, &a.id, Some(1), ShelfPatch::default(), t).await, "stale shelf");
    let a3 = s
        .update_shelf(&ann.id, &a.id, None, ShelfPatch { sort_order: Some(9), ..Default::default() }, t + secs(6))
        .await
        .expect("move shelf");
    assert_eq!((a3.name.as_str(), a3.sort_order, a3.version), ("A!", 9, 3));
    assert_eq!(ids(s.list_shelves(&ann.id, None, 10).await.expect("list")), vec![b.id.clone(), c.id.clone(), a.id.clone()]);

    s.delete_shelf(&ann.id, &c.id, t + secs(7)).await.expect("delete shelf");
    assert_not_found(s.shelf(&ann.id, &c.id).await, "deleted shelf");
    assert_eq!(ids(s.list_shelves(&ann.id, None, 10).await.expect("list")), vec![b.id.clone(), a.id.clone()]);
    assert_not_found(s.delete_shelf(&ann.id, &c.id, t).await, "deleting twice");
    assert_not_found(s.update_shelf(&ann.id, &c.id, None, ShelfPatch::default(), t).await, "updating a deleted shelf");
    assert_not_found(s.shelf(&ann.id, &ShelfId::new()).await, "missing shelf");
}

pub async fn shelf_items(s: &dyn Store) {
    let t = now();
    let ann = user(s, "items").await;
    let sh = shelf(s, &ann.id, "reading", 0, t).await;
    let (b1, _) = created(s, new_book(&ann.id, &fresh_hash(), t)).await;
    let (b2, _) = created(s, new_book(&ann.id, &fresh_hash(), t)).await;

    let i1 = s.add_shelf_item(&ann.id, &sh.id, &b1.id, t + secs(1)).await.expect("add");
    assert_eq!((i1.shelf_id.clone(), i1.book_id.clone(), i1.added_at), (sh.id.clone(), b1.id.clone(), t + secs(1)));
    let again = s.add_shelf_item(&ann.id, &sh.id, &b1.id, t + secs(2)).await.expect("add again");
    assert_eq!(again, i1, "adding twice returns the existing item");
    let i2 = s.add_shelf_item(&ann.id, &sh.id, &b2.id, t + secs(3)).await.expect("add second");
    assert!(i2.sort_order > i1.sort_order, "new items go last");
    assert_eq!(s.list_shelf_items(&ann.id, &sh.id).await.expect("items"), vec![i1.clone(), i2.clone()]);

    s.remove_shelf_item(&ann.id, &sh.id, &b1.id).await.expect("remove");
    assert_eq!(s.list_shelf_items(&ann.id, &sh.id).await.expect("items"), vec![i2.clone()]);
    assert_not_found(s.remove_shelf_item(&ann.id, &sh.id, &b1.id).await, "removing twice");

    // Only live books can be added.
    s.set_book_deleted(&ann.id, &b1.id, Some(t), t).await.expect("soft delete");
    assert_not_found(s.add_shelf_item(&ann.id, &sh.id, &b1.id, t).await, "deleted book");
    assert_not_found(s.add_shelf_item(&ann.id, &sh.id, &BookId::new(), t).await, "missing book");

    // Deleting the shelf is a soft delete that removes its items.
    s.delete_shelf(&ann.id, &sh.id, t + secs(9)).await.expect("delete shelf");
    assert_not_found(s.list_shelf_items(&ann.id, &sh.id).await, "items of a deleted shelf");
    assert_not_found(s.add_shelf_item(&ann.id, &sh.id, &b2.id, t).await, "adding to a deleted shelf");
    let shelf_again = s
        .create_shelf(NewShelf { id: ShelfId::new(), user_id: ann.id.clone(), name: "x".into(), description: None, sort_order: 0, now: t })
        .await
        .expect("shelf");
    let item = s.add_shelf_item(&ann.id, &shelf_again.id, &b2.id, t).await.expect("book still addable elsewhere");
    assert_eq!(item.book_id, b2.id);
}

/// Another user sees NotFound for everything of the owner, and nothing of the owner changes.
pub async fn isolation(s: &dyn Store) {
    let t = now();
    let ann = user(s, "owner").await;
    let eve = user(s, "intruder").await;
    let (book, _) = created(s, new_book(&ann.id, &fresh_hash(), t)).await;
    let (eve_book, _) = created(s, new_book(&eve.id, &fresh_hash(), t)).await;
    let sh = shelf(s, &ann.id, "mine", 0, t).await;
    let eve_shelf = shelf(s, &eve.id, "hers", 0, t).await;
    let item = s.add_shelf_item(&ann.id, &sh.id, &book.id, t).await.expect("add");
    let upload = PendingUpload {
        key: upload_key(&ann.id, "x.epub"),
        user_id: ann.id.clone(),
        filename: "x.epub".into(),
        content_type: None,
        declared_size: None,
        declared_sha256: None,
        expires_at: t + secs(3600),
        created_at: t,
    };
    s.create_pending_upload(upload.clone()).await.expect("pending");
    let sess = s
        .create_session(NewSession {
            id: athena_domain::SessionId::new(),
            user_id: ann.id.clone(),
            user_agent: "ua".into(),
            refresh_hash: format!("iso-{}", uuid::Uuid::new_v4()),
            refresh_expires_at: t + secs(3600),
            now: t,
        })
        .await
        .expect("session");

    let e = &eve.id;
    assert_not_found(s.book(e, &book.id, true).await, "book");
    assert_eq!(s.book_by_content(e, &book.content_sha256).await.expect("by content"), None);
    assert_not_found(
        s.update_book(e, &book.id, None, BookPatch { title: Some("pwned".into()), ..Default::default() }, t).await,
        "update book",
    );
    assert_not_found(s.set_book_deleted(e, &book.id, Some(t), t).await, "soft delete");
    assert_not_found(s.delete_book_permanently(e, &book.id).await, "permanent delete");
    assert!(s.list_books(e, &BookQuery { deleted: false, after: None, limit: 100 }).await.expect("list").iter().all(|b| b.user_id == *e));
    assert_not_found(s.shelf(e, &sh.id).await, "shelf");
    assert_not_found(
        s.update_shelf(e, &sh.id, None, ShelfPatch { name: Some("pwned".into()), ..Default::default() }, t).await,
        "update shelf",
    );
    assert_not_found(s.delete_shelf(e, &sh.id, t).await, "delete shelf");
    assert_not_found(s.list_shelf_items(e, &sh.id).await, "list items");
    assert_not_found(s.add_shelf_item(e, &sh.id, &eve_book.id, t).await, "add own book to foreign shelf");
    assert_not_found(s.add_shelf_item(e, &eve_shelf.id, &book.id, t).await, "add foreign book to own shelf");
    assert_not_found(s.remove_shelf_item(e, &sh.id, &book.id).await, "remove item");
    assert!(s.list_shelves(e, None, 100).await.expect("shelves").iter().all(|x| x.user_id == *e));
    assert_not_found(s.pending_upload(e, &upload.key).await, "pending upload");
    assert_not_found(s.revoke_session(e, &sess.id, t).await, "revoke session");
    assert_eq!(s.idempotent_response(e, "k", t - secs(10)).await.expect("idem"), None);

    // The owner's rows are untouched.
    assert_eq!(s.book(&ann.id, &book.id, false).await.expect("book"), book);
    assert_eq!(s.shelf(&ann.id, &sh.id).await.expect("shelf"), sh);
    assert_eq!(s.list_shelf_items(&ann.id, &sh.id).await.expect("items"), vec![item]);
    assert!(s.list_shelf_items(e, &eve_shelf.id).await.expect("own items").is_empty());
    assert_eq!(s.session(&sess.id).await.expect("session").revoked_at, None);
    assert_eq!(s.pending_upload(&ann.id, &upload.key).await.expect("pending"), upload);
}

pub async fn idempotency_keys(s: &dyn Store) {
    let t = now();
    let ann = user(s, "idem").await;
    let bob = user(s, "idem-other").await;
    let first = IdempotentResponse {
        user_id: ann.id.clone(),
        key: "key-1".into(),
        request: "POST /api/v1/shelves".into(),
        status: 201,
        body: r#"{"status":"success"}"#.into(),
        created_at: t,
    };
    assert_eq!(s.idempotent_response(&ann.id, "key-1", t - secs(86400)).await.expect("get"), None);
    s.put_idempotent_response(first.clone()).await.expect("put");
    let second = IdempotentResponse { status: 500, body: "other".into(), created_at: t + secs(1), ..first.clone() };
    s.put_idempotent_response(second).await.expect("second put is not an error");
    assert_eq!(s.idempotent_response(&ann.id, "key-1", t - secs(86400)).await.expect("get"), Some(first.clone()), "first wins");
    assert_eq!(s.idempotent_response(&ann.id, "key-1", t + secs(1)).await.expect("get"), None, "older than the window");
    assert_eq!(s.idempotent_response(&bob.id, "key-1", t - secs(86400)).await.expect("get"), None, "keys are per user");
    let bobs = IdempotentResponse { user_id: bob.id.clone(), ..first.clone() };
    s.put_idempotent_response(bobs.clone()).await.expect("same key, other user");
    assert_eq!(s.idempotent_response(&bob.id, "key-1", t - secs(86400)).await.expect("get"), Some(bobs));
}
