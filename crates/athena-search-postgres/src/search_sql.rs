//! The search statement: visible, filtered chunks grouped into matching documents, ranked.

use std::collections::BTreeSet;

use athena_search::{highlight, Hit, Kind, Result, SearchError, SNIPPET_CHARS};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row};

/// The values a search binds, in parameter order.
pub(crate) struct Params {
    /// `$1`: any required phrase.
    pub(crate) any: String,
    /// `$2`: the scopes the user may see.
    pub(crate) scopes: Vec<String>,
    /// `$3`: kinds, empty for all.
    pub(crate) kinds: Vec<&'static str>,
    /// `$4`: book ids, NULL for all.
    pub(crate) book_ids: Option<Vec<String>>,
    /// `$5`: boost phrases.
    pub(crate) boost: Option<String>,
    /// `$6`: jieba words.
    pub(crate) words: Option<String>,
    /// From `$first`: each required phrase.
    pub(crate) required: Vec<String>,
}

impl Params {
    /// `sql`'s query with `$1`…`$6`, then `extra` (limit, offset), then the required phrases.
    pub(crate) fn bind<'q>(&'q self, sql: &'q str, extra: &[i64]) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
        let mut query =
            sqlx::query(sql).bind(&self.any).bind(&self.scopes).bind(&self.kinds).bind(&self.book_ids).bind(&self.boost).bind(&self.words);
        for v in extra {
            query = query.bind(*v);
        }
        for r in &self.required {
            query = query.bind(r);
        }
        query
    }
}

/// Candidate chunks of visible, filtered documents (see [`Params`]), grouped into the documents
/// that match every required phrase in some chunk, with their score. The required phrases are
/// parameters from `$first`.
///
/// Score of a chunk, the best chunk's for a document: cover density of the required terms, plus
/// 1 when it holds an unquoted CJK run as typed (PostgreSQL ranks have no IDF, so a flat bonus
/// is what lifts the exact phrase above scattered characters), plus half the jieba words' rank;
/// each part scaled into 0..1 by normalisation 32.
pub(crate) fn matched_sql(required: usize, first: usize) -> String {
    let having: Vec<String> = (0..required).map(|i| format!("bool_or(c.grams @@ ${}::tsquery)", i + first)).collect();
    format!(
        "SELECT c.doc_id,
                max(ts_rank_cd(c.grams, $1::tsquery, 2 | 32)
                    + CASE WHEN c.grams @@ $5::tsquery THEN 1 + ts_rank_cd(c.grams, $5::tsquery, 32) ELSE 0 END
                    + 0.5 * coalesce(ts_rank(c.words, $6::tsquery, 1 | 32), 0))::real AS score
           FROM search_chunks c JOIN search_docs d ON d.id = c.doc_id
          WHERE c.grams @@ $1::tsquery
            AND d.scope = ANY($2)
            AND (cardinality($3::text[]) = 0 OR d.kind = ANY($3))
            AND ($4::text[] IS NULL OR d.book_id = ANY($4))
          GROUP BY c.doc_id
         HAVING {}",
        having.join(" AND ")
    )
}

pub(crate) fn hit(row: &PgRow, highlight_terms: &BTreeSet<String>) -> Result<Hit> {
    let get = |e: sqlx::Error| SearchError::Engine(format!("reading a search row: {e}"));
    let kind: String = row.try_get("kind").map_err(get)?;
    let body: String = row.try_get("body").map_err(get)?;
    Ok(Hit {
        id: row.try_get("doc_id").map_err(get)?,
        kind: Kind::parse(&kind).unwrap_or(Kind::BookText),
        book_id: row.try_get("book_id").map_err(get)?,
        content_key: row.try_get("content_key").map_err(get)?,
        location: row.try_get("location").map_err(get)?,
        title: row.try_get("title").map_err(get)?,
        score: row.try_get("score").map_err(get)?,
        snippet: highlight(&body, highlight_terms, SNIPPET_CHARS),
    })
}
