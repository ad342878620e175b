-- Athena schema, PostgreSQL flavour: TIMESTAMPTZ timestamps, BOOLEAN flags, BIGINT integers
-- (every integer column decodes as i64 on both backends), JSON kept as TEXT like on SQLite.

-- ---------- server-only tables ----------

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    email           TEXT NOT NULL UNIQUE,
    display_name    TEXT NOT NULL DEFAULT '',
    language        TEXT NOT NULL DEFAULT 'zh-CN',
    timezone        TEXT NOT NULL DEFAULT 'UTC',
    role            TEXT NOT NULL DEFAULT 'user',
    membership_tier TEXT NOT NULL DEFAULT 'free',
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE login_codes (
    email      TEXT PRIMARY KEY,
    code_hash  TEXT NOT NULL,
    attempts   BIGINT NOT NULL DEFAULT 0,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE rate_events (
    id    BIGSERIAL PRIMARY KEY,
    scope TEXT NOT NULL,
    key   TEXT NOT NULL,
    at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX rate_events_lookup ON rate_events (scope, key, at);
CREATE INDEX rate_events_at ON rate_events (at);

-- Login sessions (refresh tokens); reading sessions are `reading_sessions`.
CREATE TABLE sessions (
    id                 TEXT PRIMARY KEY,
    user_id            TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_agent         TEXT NOT NULL DEFAULT '',
    refresh_hash       TEXT NOT NULL UNIQUE,
    refresh_expires_at TIMESTAMPTZ NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    last_used_at       TIMESTAMPTZ NOT NULL,
    revoked_at         TIMESTAMPTZ
);
CREATE INDEX sessions_user ON sessions (user_id, created_at DESC, id DESC);

-- Stored bytes, shared by every book holding the same server-computed hash.
CREATE TABLE book_contents (
    sha256      TEXT PRIMARY KEY,
    storage_key TEXT NOT NULL,
    size        BIGINT NOT NULL,
    format      TEXT NOT NULL,
    ref_count   BIGINT NOT NULL DEFAULT 1,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX book_contents_key ON book_contents (storage_key);

CREATE TABLE pending_uploads (
    key             TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    filename        TEXT NOT NULL,
    content_type    TEXT,
    declared_size   BIGINT,
    declared_sha256 TEXT,
    expires_at      TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX pending_uploads_expires ON pending_uploads (expires_at);

CREATE TABLE dedup_challenges (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sha256     TEXT NOT NULL,
    ranges     TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX dedup_challenges_lookup ON dedup_challenges (user_id, sha256, created_at);

CREATE TABLE idempotency_keys (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    request    TEXT NOT NULL,
    status     BIGINT NOT NULL,
    body       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, key)
);

-- ---------- synced tables (DATA-MODEL.md) ----------

CREATE TABLE books (
    id                                 TEXT PRIMARY KEY,
    user_id                            TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title                              TEXT NOT NULL,
    author                             TEXT,
    language                           TEXT,
    cover_image_key                    TEXT,
    original_format                    TEXT NOT NULL,
    size                               BIGINT NOT NULL,
    original_content_sha256            TEXT NOT NULL,
    content_sha256                     TEXT NOT NULL REFERENCES book_contents (sha256),
    minio_key                          TEXT NOT NULL,
    metadata_confirmed                 BOOLEAN NOT NULL DEFAULT FALSE,
    is_digitalized                     BOOLEAN,
    initial_digitalization_confidence  DOUBLE PRECISION,
    page_count                         BIGINT,
    ocr_status                         TEXT,
    conversion_status                  TEXT,
    converted_epub_key                 TEXT,
    -- server-only
    meta                               TEXT NOT NULL DEFAULT '{}',
    canonical_book_id                  TEXT,
    source_etag                        TEXT,
    ocr_result_key                     TEXT,
    vector_indexed_at                  TIMESTAMPTZ,
    version                            BIGINT NOT NULL DEFAULT 1,
    created_at                         TIMESTAMPTZ NOT NULL,
    updated_at                         TIMESTAMPTZ NOT NULL,
    deleted_at                         TIMESTAMPTZ,
    UNIQUE (user_id, content_sha256)
);
CREATE INDEX books_user_created ON books (user_id, created_at DESC, id DESC);
CREATE INDEX books_content ON books (content_sha256, created_at, id);
CREATE INDEX books_deleted ON books (deleted_at) WHERE deleted_at IS NOT NULL;

CREATE TABLE reading_progress (
    id                 TEXT PRIMARY KEY,
    user_id            TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    book_id            TEXT NOT NULL REFERENCES books (id) ON DELETE CASCADE,
    device_id          TEXT,
    progress           DOUBLE PRECISION NOT NULL DEFAULT 0,
    last_position      TEXT,
    last_location      TEXT,
    finished_at        TIMESTAMPTZ,
    updated_at         TIMESTAMPTZ NOT NULL,
    tts_chapter_index  BIGINT,
    tts_position_ms    BIGINT,
    tts_last_played_at TIMESTAMPTZ,
    UNIQUE (user_id, book_id)
);

CREATE TABLE reading_sessions (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    book_id    TEXT NOT NULL REFERENCES books (id) ON DELETE CASCADE,
    device_id  TEXT,
    is_active  BOOLEAN NOT NULL DEFAULT FALSE,
    total_ms   BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX reading_sessions_user_book ON reading_sessions (user_id, book_id);

CREATE TABLE notes (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    book_id      TEXT NOT NULL REFERENCES books (id) ON DELETE CASCADE,
    device_id    TEXT,
    content      TEXT NOT NULL DEFAULT '',
    page_number  BIGINT,
    position_cfi TEXT,
    color        TEXT,
    conflict_of  TEXT,
    is_deleted   BOOLEAN NOT NULL DEFAULT FALSE,
    deleted_at   TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX notes_user_book ON notes (user_id, book_id);

CREATE TABLE highlights (
    id                 TEXT PRIMARY KEY,
    user_id            TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    book_id            TEXT NOT NULL REFERENCES books (id) ON DELETE CASCADE,
    device_id          TEXT,
    text               TEXT NOT NULL DEFAULT '',
    page_number        BIGINT,
    position_start_cfi TEXT,
    position_end_cfi   TEXT,
    color              TEXT,
    conflict_of        TEXT,
    is_deleted         BOOLEAN NOT NULL DEFAULT FALSE,
    deleted_at         TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX highlights_user_book ON highlights (user_id, book_id);

CREATE TABLE bookmarks (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    book_id      TEXT NOT NULL REFERENCES books (id) ON DELETE CASCADE,
    device_id    TEXT,
    title        TEXT,
    page_number  BIGINT,
    position_cfi TEXT,
    is_deleted   BOOLEAN NOT NULL DEFAULT FALSE,
    deleted_at   TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX bookmarks_user_book ON bookmarks (user_id, book_id);

CREATE TABLE shelves (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT,
    cover_url   TEXT,
    sort_order  BIGINT NOT NULL DEFAULT 0,
    is_deleted  BOOLEAN NOT NULL DEFAULT FALSE,
    deleted_at  TIMESTAMPTZ,
    version     BIGINT NOT NULL DEFAULT 1,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX shelves_user ON shelves (user_id, sort_order, created_at, id);

CREATE TABLE shelf_books (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    shelf_id   TEXT NOT NULL REFERENCES shelves (id) ON DELETE CASCADE,
    book_id    TEXT NOT NULL REFERENCES books (id) ON DELETE CASCADE,
    sort_order BIGINT NOT NULL DEFAULT 0,
    added_at   TIMESTAMPTZ NOT NULL,
    UNIQUE (shelf_id, book_id)
);
CREATE INDEX shelf_books_book ON shelf_books (book_id);

CREATE TABLE user_settings (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    device_id     TEXT,
    settings_json TEXT NOT NULL DEFAULT '{}',
    updated_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE reading_settings (
    id                TEXT PRIMARY KEY,
    user_id           TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    book_id           TEXT REFERENCES books (id) ON DELETE CASCADE,
    device_id         TEXT,
    theme_id          TEXT,
    background_color  TEXT,
    text_color        TEXT,
    font_family       TEXT,
    font_size         DOUBLE PRECISION,
    font_weight       BIGINT,
    line_height       DOUBLE PRECISION,
    paragraph_spacing DOUBLE PRECISION,
    margin_horizontal DOUBLE PRECISION,
    text_align        TEXT,
    hyphenation       BOOLEAN,
    is_deleted        BOOLEAN NOT NULL DEFAULT FALSE,
    deleted_at        TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);
-- One row per (user, book); a NULL book is the user's global row.
CREATE UNIQUE INDEX reading_settings_user_book ON reading_settings (user_id, COALESCE(book_id, ''));
