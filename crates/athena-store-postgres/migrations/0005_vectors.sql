-- Embedding vectors for semantic search. Server-only derived data: no sync capture triggers.

-- A book text's chunks, keyed by content like the text itself, per embedding model.
CREATE TABLE content_vectors (
    content_sha256  TEXT NOT NULL,
    model           TEXT NOT NULL,
    chunk_no        BIGINT NOT NULL,
    location        TEXT,
    title           TEXT,
    preview         TEXT NOT NULL,
    vector          BYTEA NOT NULL,
    PRIMARY KEY (content_sha256, model, chunk_no)
);

-- One row per (content, model) that has been embedded: lets a query tell cached sets from stale.
CREATE TABLE content_vector_sets (
    content_sha256  TEXT NOT NULL,
    model           TEXT NOT NULL,
    chunks          BIGINT NOT NULL,
    embedded_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (content_sha256, model)
);

CREATE TABLE annotation_vectors (
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    doc_id      TEXT NOT NULL,
    book_id     TEXT,
    kind        TEXT NOT NULL,
    location    TEXT,
    preview     TEXT NOT NULL,
    model       TEXT NOT NULL,
    vector      BYTEA NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, doc_id)
);
