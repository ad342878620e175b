-- Writes from clients (POST /api/v1/sync/upload).

-- A client id merged into an existing row by a uniqueness key (one progress row per book, …):
-- later writes naming the client's id reach the existing row.
CREATE TABLE sync_id_map (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    table_name TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    server_id  TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (user_id, table_name, client_id)
);

-- Client operations refused for good, kept instead of silently dropped.
CREATE TABLE sync_upload_rejections (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    table_name TEXT NOT NULL,
    row_id     TEXT NOT NULL,
    op         TEXT NOT NULL,
    code       TEXT NOT NULL,
    message    TEXT NOT NULL,
    payload    TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX sync_upload_rejections_user ON sync_upload_rejections (user_id, created_at DESC, id DESC);
