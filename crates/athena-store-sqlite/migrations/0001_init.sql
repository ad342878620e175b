-- Athena schema, SQLite flavour. Timestamps are TEXT in one fixed UTC format
-- (YYYY-MM-DDTHH:MM:SS.ffffffZ) so that text order is time order; booleans are 0/1 INTEGERs.

-- ---------- server-only tables ----------

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    email           TEXT NOT NULL UNIQUE,
    display_name    TEXT NOT NULL DEFAULT '',
    language        TEXT NOT NULL DEFAULT 'zh-CN',
    timezone        TEXT NOT NULL DEFAULT 'UTC',
    role            TEXT NOT NULL DEFAULT 'user',
    membership_tier TEXT NOT NULL DEFAULT 'free',
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE TABLE login_codes (
    email      TEXT PRIMARY KEY,
    code_hash  TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    expires_at TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE rate_events (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    scope TEXT NOT NULL,
    key   TEXT NOT NULL,
    at    TEXT NOT NULL
);
CREATE INDEX rate_events_lookup ON rate_events (scope, key, at);
CREATE INDEX rate_events_at ON rate_events (at);

-- Login sessions (refresh tokens); reading sessions are `reading_sessions`.
CREATE TABLE sessions (
    id                 TEXT PRIMARY KEY,
    user_id            TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_agent         TEXT NOT NULL DEFAULT '',
    refresh_hash       TEXT NOT NULL UNIQUE,
    refresh_expires_at TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    last_used_at       TEXT NOT NULL,
    revoked_at         TEXT
);
CREATE INDEX sessions_user ON sessions (user_id, created_at DESC, id DESC);

-- Stored bytes, shared by every book holding the same server-computed hash.
CREATE TABLE book_contents (
    sha256      TEXT PRIMARY KEY,
    storage_key TEXT NOT NULL,
    size        INTEGER NOT NULL,
    format      TEXT NOT NULL,
    ref_count   INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL
);

CREATE INDEX book_contents_key ON book_contents (storage_key);

CREATE TABLE pending_uploads (
    key             TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    filename        TEXT NOT NULL,
    content_type    TEXT,
    declared_size   INTEGER,
    declared_sha256 TEXT,
    expires_at      TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX pending_uploads_expires ON pending_uploads (expires_at);

CREATE TABLE dedup_challenges (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sha256     TEXT NOT NULL,
    ranges     TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX dedup_challenges_lookup ON dedup_challenges (user_id, sha256, created_at);

CREATE TABLE idempotency_keys (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    request    TEXT NOT NULL,
    status     INTEGER NOT NULL,
    body       TEXT NOT NULL,
    created_at TEXT NOT NULL,
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
    size                               INTEGER NOT NULL,
    original_content_sha256            TEXT NOT NULL,
    content_sha256                     TEXT NOT NULL REFERENCES book_contents (sha256),
    minio_key                          TEXT NOT NULL,
    metadata_confirmed                 INTEGER NOT NULL DEFAULT 0,
    is_digitalized                     INTEGER,
    initial_digitalization_confidence  REAL,
    page_count                         INTEGER,
    ocr_status                         TEXT,
    conversion_status                  TEXT,
    converted_epub_key                 TEXT,
    -- server-only
    meta                               TEXT NOT NULL DEFAULT '{}',
    canonical_book_id                  TEXT,
    source_etag                        TEXT,
    ocr_result_key                     TEXT,
    vector_indexed_at                  TEXT,
    version                            INTEGER NOT NULL DEFAULT 1,
    created_at                         TEXT NOT NULL,
    updated_at                         TEXT NOT NULL,
    deleted_at                         TEXT,
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
    progress           REAL NOT NULL DEFAULT 0,
    last_position      TEXT,
    last_location      TEXT,
    finished_at        TEXT,
    updated_at         TEXT NOT NULL,
    tts_chapter_index  INTEGER,
    tts_position_ms    INTEGER,
    tts_last_played_at TEXT,
    UNIQUE (user_id, book_id)
);

CREATE TABLE reading_sessions (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    book_id    TEXT NOT NULL REFERENCES books (id) ON DELETE CASCADE,
    device_id  TEXT,
    is_active  INTEGER NOT NULL DEFAULT 0,
    total_ms   INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX reading_sessions_user_book ON reading_sessions (user_id, book_id);

CREATE TABLE notes (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    book_id      TEXT NOT NULL REFERENCES books (id) ON DELETE CASCADE,
    device_id    TEXT,
    content      TEXT NOT NULL DEFAULT '',
    page_number  INTEGER,
    position_cfi TEXT,
    color        TEXT,
    conflict_of  TEXT,
    is_deleted   INTEGER NOT NULL DEFAULT 0,
    deleted_at   TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX notes_user_book ON notes (user_id, book_id);

CREATE TABLE highlights (
    id                 TEXT PRIMARY KEY,
    user_id            TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    book_id            TEXT NOT NULL REFERENCES books (id) ON DELETE CASCADE,
    device_id          TEXT,
    text               TEXT NOT NULL DEFAULT '',
    page_number        INTEGER,
    position_start_cfi TEXT,
    position_end_cfi   TEXT,
    color              TEXT,
    conflict_of        TEXT,
    is_deleted         INTEGER NOT NULL DEFAULT 0,
    deleted_at         TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);
CREATE INDEX highlights_user_book ON highlights (user_id, book_id);

CREATE TABLE bookmarks (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    book_id      TEXT NOT NULL REFERENCES books (id) ON DELETE CASCADE,
    device_id    TEXT,
    title        TEXT,
    page_number  INTEGER,
    position_cfi TEXT,
    is_deleted   INTEGER NOT NULL DEFAULT 0,
    deleted_at   TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX bookmarks_user_book ON bookmarks (user_id, book_id);

CREATE TABLE shelves (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT,
    cover_url   TEXT,
    sort_order  INTEGER NOT NULL DEFAULT 0,
    is_deleted  INTEGER NOT NULL DEFAULT 0,
    deleted_at  TEXT,
    version     INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX shelves_user ON shelves (user_id, sort_order, created_at, id);

CREATE TABLE shelf_books (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    shelf_id   TEXT NOT NULL REFERENCES shelves (id) ON DELETE CASCADE,
    book_id    TEXT NOT NULL REFERENCES books (id) ON DELETE CASCADE,
    sort_order INTEGER NOT NULL DEFAULT 0,
    added_at   TEXT NOT NULL,
    UNIQUE (shelf_id, book_id)
);
CREATE INDEX shelf_books_book ON shelf_books (book_id);

CREATE TABLE user_settings (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    device_id     TEXT,
    settings_json TEXT NOT NULL DEFAULT '{}',
    updated_at    TEXT NOT NULL
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
    font_size         REAL,
    font_weight       INTEGER,
    line_height       REAL,
    paragraph_spacing REAL,
    margin_horizontal REAL,
    text_align        TEXT,
    hyphenation       INTEGER,
    is_deleted        INTEGER NOT NULL DEFAULT 0,
    deleted_at        TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
-- One row per (user, book); a NULL book is the user's global row.
CREATE UNIQUE INDEX reading_settings_user_book ON reading_settings (user_id, COALESCE(book_id, ''));
