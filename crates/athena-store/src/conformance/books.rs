//! Book contents (own dedup, shared content, reference counts) and books.

use athena_domain::{BookFormat, BookId, ObjectKey};

use super::{assert_not_found, assert_version_conflict, created, fresh_hash, join_all, new_book, now, secs, user, BoxFuture};
use crate::{BookInsert, BookPatch, BookQuery, Store, Usage};

pub async fn own_dedup(s: &dyn Store) {
    let t = now();
    let ann = user(s, "own").await;
    let sha = fresh_hash();
    let mut first = new_book(&ann.id, &sha, t);
    first.conversion_status = Some("pending".into());
    let key = first.storage_key.clone();
    let (book, is_new) = created(s, first.clone()).await;
    assert!(is_new, "first upload stores the content");
    assert_eq!(book.id, first.id);
    assert_eq!(book.user_id, ann.id);
    assert_eq!((book.title.as_str(), book.author.as_deref(), book.language.as_deref()), ("Walden", Some("Thoreau"), Some("en")));
    assert_eq!((book.original_format, book.size), (BookFormat::Epub, 1234));
    assert_eq!((&book.content_sha256, &book.original_content_sha256), (&sha, &sha));
    assert_eq!(book.minio_key, key);
    assert_eq!((book.page_count, book.is_digitalized, book.initial_digitalization_confidence), (Some(321), Some(true), Some(0.75)));
    assert_eq!(book.conversion_status.as_deref(), Some("pending"));
    assert_eq!((book.ocr_status.clone(), book.converted_epub_key.clone(), book.cover_image_key.clone()), (None, None, None));
    assert_eq!(book.meta, first.meta);
    assert!(!book.metadata_confirmed);
    assert_eq!((book.version, book.created_at, book.updated_at, book.deleted_at), (1, t, t, None));
    assert_eq!(book.canonical_book_id, None);
    assert_eq!(s.book(&ann.id, &book.id, false).await.expect("book"), book);
    assert_eq!(s.book_by_content(&ann.id, &sha).await.expect("by content"), Some(book.clone()));

    let content = s.content(&sha).await.expect("content").expect("content row");
    assert_eq!((content.storage_key.clone(), content.ref_count, content.size, content.format), (key.clone(), 1, 1234, BookFormat::Epub));
    assert!(s.content_key_in_use(&key).await.expect("key in use"));

    // Same user, same content: the existing book comes back and nothing is counted twice.
    let again = new_book(&ann.id, &sha, t + secs(5));
    match s.insert_book(again.clone()).await.expect("insert again") {
        BookInsert::Existing(b) => assert_eq!(b, book),
        other => panic!("expected Existing, got {other:?}"),
    }
    assert_not_found(s.book(&ann.id, &again.id, true).await, "no second book row");
    assert_eq!(s.content(&sha).await.expect("content").expect("row").ref_count, 1);

    // A soft-deleted book is restored by uploading it again.
    let deleted = s.set_book_deleted(&ann.id, &book.id, Some(t + secs(10)), t + secs(10)).await.expect("soft delete");
    assert_eq!((deleted.deleted_at, deleted.version), (Some(t + secs(10)), 2));
    match s.insert_book(new_book(&ann.id, &sha, t + secs(20))).await.expect("re-upload") {
        BookInsert::Existing(b) => {
            assert_eq!((b.id.clone(), b.deleted_at), (book.id.clone(), None));
            assert!(b.version > deleted.version, "restore bumps the version");
        }
        other => panic!("expected Existing, got {other:?}"),
    }
    assert_eq!(s.content(&sha).await.expect("content").expect("row").ref_count, 1);
    assert_eq!(s.usage(&ann.id).await.expect("usage"), Usage { books: 1, bytes: 1234 });
}

pub async fn shared_content(s: &dyn Store) {
    let t = now();
    let ann = user(s, "share-a").await;
    let bob = user(s, "share-b").await;
    let sha = fresh_hash();
    let mut a_new = new_book(&ann.id, &sha, t);
    let cover = ObjectKey::for_cover(&a_new.id, "webp");
    a_new.cover_key = Some(cover.clone());
    let a_key = a_new.storage_key.clone();
    let (a_book, _) = created(s, a_new).await;
    assert_eq!(a_book.cover_image_key, Some(cover.clone()));

    let b_new = new_book(&bob.id, &sha, t + secs(1));
    let b_key = b_new.storage_key.clone();
    let (b_book, b_is_new) = created(s, b_new).await;
    assert!(!b_is_new, "second user's bytes duplicate stored content");
    assert_eq!(b_book.minio_key, a_key, "the stored content's key wins");
    assert_eq!(b_book.canonical_book_id, Some(a_book.id.clone()));
    assert_eq!(s.content(&sha).await.expect("content").expect("row").ref_count, 2);
    assert!(s.content_key_in_use(&a_key).await.expect("in use"));
    assert!(!s.content_key_in_use(&b_key).await.expect("in use"), "the duplicate upload's key is not stored");
    assert_eq!(s.canonical_book_for(&sha).await.expect("canonical").map(|b| b.id), Some(a_book.id.clone()));
    assert_eq!(s.canonical_book_for(&fresh_hash()).await.expect("canonical"), None);

    // Rows hanging off a book go with it.
    let shelf = s
        .create_shelf(crate::NewShelf {
            id: athena_domain::ShelfId::new(),
            user_id: ann.id.clone(),
            name: "Fav".into(),
            description: None,
            sort_order: 0,
            now: t,
        })
        .await
        .expect("shelf");
    s.add_shelf_item(&ann.id, &shelf.id, &a_book.id, t).await.expect("add item");

    // Another user cannot delete it, and nothing changes when they try.
    assert_not_found(s.delete_book_permanently(&bob.id, &a_book.id).await, "foreign permanent delete");
    assert_eq!(s.content(&sha).await.expect("content").expect("row").ref_count, 2);
    assert_eq!(s.list_shelf_items(&ann.id, &shelf.id).await.expect("items").len(), 1);

    // Deleting one holder keeps the content; deleting the last frees content and cover.
    let freed = s.delete_book_permanently(&bob.id, &b_book.id).await.expect("delete b");
    assert!(freed.is_empty(), "content still referenced: {freed:?}");
    assert_eq!(s.content(&sha).await.expect("content").expect("row").ref_count, 1);
    assert_not_found(s.book(&bob.id, &b_book.id, true).await, "deleted book");

    let mut freed = s.delete_book_permanently(&ann.id, &a_book.id).await.expect("delete a");
    freed.sort();
    let mut expected = vec![a_key.clone(), cover];
    expected.sort();
    assert_eq!(freed, expected);
    assert_eq!(s.content(&sha).await.expect("content"), None);
    assert!(!s.content_key_in_use(&a_key).await.expect("in use"));
    assert_not_found(s.book(&ann.id, &a_book.id, true).await, "deleted book");
    assert!(s.list_shelf_items(&ann.id, &shelf.id).await.expect("items").is_empty(), "shelf item removed");
    assert_eq!(s.usage(&ann.id).await.expect("usage"), Usage::default());
    assert_not_found(s.delete_book_permanently(&ann.id, &a_book.id).await, "deleting twice");
}

/// Many users storing the same new content at once: one content row, one reference each.
pub async fn concurrent_shared_inserts(s: &dyn Store) {
    let t = now();
    let sha = fresh_hash();
    let mut users = Vec::new();
    for i in 0..6 {
        users.push(user(s, &format!("conc{i}")).await);
    }
    let futures: Vec<BoxFuture<'_, _>> = users.iter().map(|u| s.insert_book(new_book(&u.id, &sha, t))).collect();
    let results = join_all(futures).await;
    let mut new_contents = 0;
    for r in results {
        match r.expect("concurrent insert") {
            BookInsert::Created { content_is_new, .. } => new_contents += usize::from(content_is_new),
            BookInsert::Existing(b) => panic!("unexpected existing {:?}", b.id),
        }
    }
    assert_eq!(new_contents, 1, "exactly one upload stored the content");
    assert_eq!(s.content(&sha).await.expect("content").expect("row").ref_count, 6);
}

pub async fn list_pagination(s: &dyn Store) {
    let t = now();
    let ann = user(s, "list").await;
    let bob = user(s, "list-other").await;
    created(s, new_book(&bob.id, &fresh_hash(), t)).await;
    let mut books = Vec::new();
    for i in 0..25 {
        // Three books per second: ties on created_at are broken by id.
        let (b, _) = created(s, new_book(&ann.id, &fresh_hash(), t + secs(i / 3))).await;
        books.push(b);
    }
    books.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    let expected: Vec<BookId> = books.iter().map(|b| b.id.clone()).collect();

    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = Vec::new();
    loop {
        let page = s.list_books(&ann.id, &BookQuery { deleted: false, after: after.clone(), limit: 10 }).await.expect("page");
        pages.push(page.len());
        let Some(last) = page.last() else { break };
        after = Some((last.created_at, last.id.clone()));
        seen.extend(page.into_iter().map(|b| b.id));
    }
    assert_eq!(pages, vec![10, 10, 5, 0]);
    assert_eq!(seen, expected, "every book once, newest first");

    // Soft-deleted books move to the deleted listing.
    for b in &books[3..6] {
        s.set_book_deleted(&ann.id, &b.id, Some(t + secs(60)), t + secs(60)).await.expect("soft delete");
    }
    let live = s.list_books(&ann.id, &BookQuery { deleted: false, after: None, limit: 100 }).await.expect("live");
    assert_eq!(live.len(), 22);
    assert!(live.iter().all(|b| b.deleted_at.is_none()));
    let gone: Vec<BookId> = s
        .list_books(&ann.id, &BookQuery { deleted: true, after: None, limit: 100 })
        .await
        .expect("deleted")
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(gone, expected[3..6].to_vec());
    assert_eq!(s.usage(&ann.id).await.expect("usage"), Usage { books: 25, bytes: 25 * 1234 }, "usage counts deleted books too");
}

pub async fn update_and_soft_delete(s: &dyn Store) {
    let t = now();
    let ann = user(s, "upd").await;
    let (book, _) = created(s, new_book(&ann.id, &fresh_hash(), t)).await;
    let patch =
        BookPatch { title: Some("Walden; or, Life in the Woods".into()), author: Some(Some("H. D. Thoreau".into())), ..Default::default() };
    let v2 = s.update_book(&ann.id, &book.id, Some(1), patch, t + secs(1)).await.expect("update");
    assert_eq!(
        (v2.title.as_str(), v2.author.as_deref(), v2.language.as_deref()),
        ("Walden; or, Life in the Woods", Some("H. D. Thoreau"), Some("en"))
    );
    assert_eq!((v2.version, v2.updated_at, v2.created_at), (2, t + secs(1), t));

    let stale = BookPatch { title: Some("stale".into()), ..Default::default() };
    assert_version_conflict(s.update_book(&ann.id, &book.id, Some(1), stale, t + secs(2)).await, "stale version");
    assert_eq!(s.book(&ann.id, &book.id, false).await.expect("book"), v2, "a stale update changes nothing");

    let cover = ObjectKey::for_cover(&book.id, "webp");
    let patch =
        BookPatch { author: Some(None), metadata_confirmed: Some(true), cover_image_key: Some(Some(cover.clone())), ..Default::default() };
    let v3 = s.update_book(&ann.id, &book.id, None, patch, t + secs(3)).await.expect("unconditional update");
    assert_eq!((v3.author.clone(), v3.metadata_confirmed, v3.cover_image_key.clone(), v3.version), (None, true, Some(cover), 3));
    assert_eq!(v3.title, v2.title, "title untouched");
    let v4 = s
        .update_book(
            &ann.id,
            &book.id,
            Some(3),
            BookPatch { cover_image_key: Some(None), language: Some(None), ..Default::default() },
            t + secs(4),
        )
        .await
        .expect("clear cover");
    assert_eq!((v4.cover_image_key.clone(), v4.language.clone(), v4.version), (None, None, 4));
    assert_not_found(s.update_book(&ann.id, &BookId::new(), None, BookPatch::default(), t).await, "missing book");

    let del = s.set_book_deleted(&ann.id, &book.id, Some(t + secs(5)), t + secs(5)).await.expect("soft delete");
    assert_eq!((del.deleted_at, del.version, del.updated_at), (Some(t + secs(5)), 5, t + secs(5)));
    assert_not_found(s.book(&ann.id, &book.id, false).await, "deleted book hidden");
    assert_eq!(s.book(&ann.id, &book.id, true).await.expect("with deleted").id, book.id);
    assert_not_found(s.update_book(&ann.id, &book.id, None, BookPatch::default(), t).await, "updating a deleted book");
    let restored = s.set_book_deleted(&ann.id, &book.id, None, t + secs(6)).await.expect("restore");
    assert_eq!((restored.deleted_at, restored.version), (None, 6));
    assert_not_found(s.set_book_deleted(&ann.id, &BookId::new(), None, t).await, "missing book");
}
