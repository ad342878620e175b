//! Embedding vectors: replace-all per content and model, stale models kept apart, per-user annotations.

use crate::conformance::{fresh_hash, now, secs, user};
use crate::vectors::{AnnotationVector, ChunkVector};
use crate::Store;

fn chunk(n: i64, byte: u8) -> ChunkVector {
    ChunkVector {
        chunk_no: n,
        location: Some(format!("page:{}", n + 1)),
        title: (n == 0).then(|| "第一章".to_string()),
        preview: format!("chunk {n} 的开头"),
        vector: vec![byte; 8],
    }
}

pub async fn content_vectors(s: &dyn Store) {
    let t = now();
    let (a, b) = (fresh_hash(), fresh_hash());
    assert!(s.content_vector_sets(&[a.clone(), b.clone()], "m1").await.expect("none yet").is_empty());
    s.put_content_vectors(&a, "m1", vec![chunk(1, 2), chunk(0, 1), chunk(2, 3)], t).await.expect("put");
    s.put_content_vectors(&a, "m2", vec![chunk(0, 9)], t).await.expect("other model");
    let sets = s.content_vector_sets(&[a.clone(), b.clone()], "m1").await.expect("sets");
    assert_eq!(sets.len(), 1, "{sets:?}");
    assert_eq!((sets[0].content_sha256.clone(), sets[0].chunks, sets[0].model.as_str()), (a.clone(), 3, "m1"));
    let got = s.content_vectors(&a, "m1").await.expect("get");
    assert_eq!(got, vec![chunk(0, 1), chunk(1, 2), chunk(2, 3)], "in chunk order, bytes intact");
    // Replacing drops chunks the new set does not have.
    s.put_content_vectors(&a, "m1", vec![chunk(0, 7)], t + secs(5)).await.expect("replace");
    assert_eq!(s.content_vectors(&a, "m1").await.expect("get"), vec![chunk(0, 7)]);
    let sets = s.content_vector_sets(std::slice::from_ref(&a), "m1").await.expect("sets");
    assert_eq!((sets[0].chunks, sets[0].embedded_at), (1, t + secs(5)));
    assert_eq!(s.content_vectors(&a, "m2").await.expect("m2"), vec![chunk(0, 9)], "models are kept apart");
    s.delete_content_vectors(&a).await.expect("delete");
    assert!(s.content_vectors(&a, "m2").await.expect("gone").is_empty());
    assert!(s.content_vector_sets(&[a], "m1").await.expect("gone").is_empty());
}

pub async fn annotation_vectors(s: &dyn Store) {
    let (alice, bob) = (user(s, "vec-alice").await, user(s, "vec-bob").await);
    let v = |who: &crate::User, doc: &str, byte: u8| AnnotationVector {
        user_id: who.id.clone(),
        doc_id: doc.to_string(),
        book_id: Some("b1".into()),
        kind: "note".into(),
        location: Some("epubcfi(/6/2!/4/2)".into()),
        preview: "a note".into(),
        model: "m1".into(),
        vector: vec![byte; 4],
        updated_at: now(),
    };
    s.put_annotation_vector(v(&alice, "note:1", 1)).await.expect("put");
    s.put_annotation_vector(v(&alice, "note:1", 2)).await.expect("replace");
    s.put_annotation_vector(v(&bob, "note:1", 3)).await.expect("same doc id, other user");
    let mine = s.annotation_vectors(&alice.id, "m1").await.expect("mine");
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].vector, vec![2; 4]);
    assert!(s.annotation_vectors(&alice.id, "m2").await.expect("other model").is_empty());
    s.delete_annotation_vector(&alice.id, "note:1").await.expect("delete");
    assert!(s.annotation_vectors(&alice.id, "m1").await.expect("gone").is_empty());
    assert_eq!(s.annotation_vectors(&bob.id, "m1").await.expect("bob's stays")[0].vector, vec![3; 4]);
}
