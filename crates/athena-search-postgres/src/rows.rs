//! Documents → rows: checked, cleaned and analysed on the caller's thread, then gathered into
//! column arrays so one statement writes a whole batch.

use athena_search::{validate_doc, Doc, Result, SearchError};

use crate::lexemes;

/// A document's columns and chunks, analysed on the caller's thread.
pub(crate) struct DocRow {
    id: String,
    kind: &'static str,
    scope: String,
    shared: bool,
    content_key: Option<String>,
    book_id: Option<String>,
    location: Option<String>,
    title: Option<String>,
    body: String,
    chunks: Vec<lexemes::Chunk>,
}

/// PostgreSQL text cannot hold NUL: text fields lose it (as a space); identifiers with one are refused.
pub(crate) fn clean(s: &str) -> String {
    s.replace('\0', " ")
}

pub(crate) fn prepare(doc: Doc) -> Result<DocRow> {
    validate_doc(&doc)?;
    for value in [Some(&doc.id), doc.owner.as_ref(), doc.content_key.as_ref(), doc.book_id.as_ref()].into_iter().flatten() {
        if value.contains('\0') {
            return Err(SearchError::InvalidDoc { id: doc.id.replace('\0', "\\0"), reason: "identifiers cannot contain NUL".into() });
        }
    }
    let scope = match (&doc.owner, &doc.content_key) {
        (Some(owner), _) => format!("u:{owner}"),
        (None, Some(key)) => format!("c:{key}"),
        // `validate_doc` refuses this.
        (None, None) => return Err(SearchError::InvalidDoc { id: doc.id, reason: "no owner and no content key".into() }),
    };
    let body = clean(&doc.text);
    Ok(DocRow {
        chunks: lexemes::chunks(&body),
        kind: doc.kind.as_str(),
        shared: doc.owner.is_none(),
        scope,
        content_key: doc.content_key,
        book_id: doc.book_id,
        location: doc.location.as_deref().map(clean),
        title: doc.title.as_deref().map(clean),
        body,
        id: doc.id,
    })
}

/// Columns of a batch, as arrays for `UNNEST`.
#[derive(Default)]
pub(crate) struct Batch {
    pub(crate) ids: Vec<String>,
    pub(crate) kinds: Vec<&'static str>,
    pub(crate) scopes: Vec<String>,
    pub(crate) shared: Vec<bool>,
    pub(crate) content_keys: Vec<Option<String>>,
    pub(crate) book_ids: Vec<Option<String>>,
    pub(crate) locations: Vec<Option<String>>,
    pub(crate) titles: Vec<Option<String>>,
    pub(crate) bodies: Vec<String>,
    pub(crate) chunk_docs: Vec<String>,
    pub(crate) chunk_seqs: Vec<i32>,
    pub(crate) chunk_grams: Vec<String>,
    pub(crate) chunk_words: Vec<String>,
}

impl Batch {
    pub(crate) fn new(rows: Vec<DocRow>) -> Batch {
        let mut b = Batch::default();
        // The last document with an id wins, as upserting twice would.
        let mut seen = std::collections::HashSet::new();
        for row in rows.into_iter().rev() {
            if !seen.insert(row.id.clone()) {
                continue;
            }
            for (seq, chunk) in row.chunks.into_iter().enumerate() {
                b.chunk_docs.push(row.id.clone());
                b.chunk_seqs.push(i32::try_from(seq).unwrap_or(i32::MAX));
                b.chunk_grams.push(chunk.grams);
                b.chunk_words.push(chunk.words);
            }
            b.ids.push(row.id);
            b.kinds.push(row.kind);
            b.scopes.push(row.scope);
            b.shared.push(row.shared);
            b.content_keys.push(row.content_key);
            b.book_ids.push(row.book_id);
            b.locations.push(row.location);
            b.titles.push(row.title);
            b.bodies.push(row.body);
        }
        b
    }
}
