-- The full-text search index of the PostgreSQL engine (crate athena-search-postgres), shared by
-- every API replica. Server-only derived data: no sync capture triggers.
--
-- Text is analysed in Rust (folding, CJK characters and pairs, stemmed words, jieba words) and
-- stored as tsvectors built from those lexemes with their positions; PostgreSQL never parses
-- the text with a language configuration. Long documents are split into overlapping chunks so
-- positions stay below tsvector's limit (16383) and phrases still match inside one chunk.

-- One row per document (chapter, page, note, highlight, book metadata).
CREATE TABLE search_docs (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    -- Visibility: 'u:' || owner for per-user documents, 'c:' || content_key for shared ones.
    scope       TEXT NOT NULL,
    shared      BOOLEAN NOT NULL,
    content_key TEXT,
    book_id     TEXT,
    location    TEXT,
    title       TEXT,
    -- The original text: snippets are cut from it.
    body        TEXT NOT NULL
);
CREATE INDEX search_docs_scope ON search_docs (scope);
CREATE INDEX search_docs_owned_book ON search_docs (book_id) WHERE NOT shared;

-- A document's analysed text, in chunks of overlapping unit ranges (positions restart at 1).
CREATE TABLE search_chunks (
    doc_id  TEXT NOT NULL REFERENCES search_docs (id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    -- Matching stream: CJK characters and same-run pairs, stemmed words.
    grams   TSVECTOR NOT NULL,
    -- Ranking stream: dictionary words of CJK runs.
    words   TSVECTOR NOT NULL,
    PRIMARY KEY (doc_id, seq)
);
CREATE INDEX search_chunks_grams ON search_chunks USING GIN (grams);

-- The index's one state row: why it is being rebuilt, NULL once every book was indexed.
CREATE TABLE search_state (
    id          BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    rebuilding  TEXT
);
INSERT INTO search_state (rebuilding) VALUES ('new index');
