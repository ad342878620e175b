-- Change capture for sync. Every committed change to a synced table, whoever makes it (the API, the
-- upload flow, the worker, an operator's SQL), is recorded by a trigger in sync_changes with the row's
-- images. One sequencer at a time turns captured changes into bucket operations in sync_oplog with
-- fresh, strictly increasing op ids, and deletes what it processed: a change is sequenced only once
-- its transaction has committed, so op ids follow commit order even when a slow transaction holds a
-- lower capture id.

CREATE TABLE sync_changes (
    id BIGSERIAL PRIMARY KEY,
    table_name TEXT NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('INSERT', 'UPDATE', 'DELETE')),
    old_row JSONB,
    new_row JSONB,
    captured_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE sync_oplog (
    op_id BIGINT PRIMARY KEY,
    bucket TEXT NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('PUT', 'REMOVE', 'MOVE', 'CLEAR')),
    object_type TEXT,
    object_id TEXT,
    data TEXT,
    checksum BIGINT NOT NULL,
    captured_at TIMESTAMPTZ
);
CREATE INDEX sync_oplog_bucket_op ON sync_oplog (bucket, op_id);
CREATE INDEX sync_oplog_bucket_object ON sync_oplog (bucket, object_type, object_id);

CREATE TABLE sync_buckets (
    bucket TEXT PRIMARY KEY,
    checksum BIGINT NOT NULL,
    op_count BIGINT NOT NULL,
    last_op_id BIGINT NOT NULL
);

CREATE TABLE sync_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_op_id BIGINT NOT NULL,
    rules_version TEXT
);
INSERT INTO sync_state (id, last_op_id, rules_version) VALUES (1, 0, NULL);

CREATE TABLE sync_write_checkpoints (
    user_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    checkpoint BIGINT NOT NULL,
    op_watermark BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, client_id, checkpoint)
);

-- Notifications are delivered at commit (and collapsed within a transaction), which is exactly when
-- a captured change becomes visible to the sequencer.
CREATE FUNCTION athena_sync_capture() RETURNS trigger AS $$
BEGIN
    INSERT INTO sync_changes (table_name, op, old_row, new_row) VALUES (
        TG_TABLE_NAME,
        TG_OP,
        CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN to_jsonb(OLD) END,
        CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN to_jsonb(NEW) END
    );
    PERFORM pg_notify('athena_sync_changes', '');
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER sync_capture AFTER INSERT OR UPDATE OR DELETE ON books FOR EACH ROW EXECUTE FUNCTION athena_sync_capture();
CREATE TRIGGER sync_capture AFTER INSERT OR UPDATE OR DELETE ON reading_progress FOR EACH ROW EXECUTE FUNCTION athena_sync_capture();
CREATE TRIGGER sync_capture AFTER INSERT OR UPDATE OR DELETE ON reading_sessions FOR EACH ROW EXECUTE FUNCTION athena_sync_capture();
CREATE TRIGGER sync_capture AFTER INSERT OR UPDATE OR DELETE ON notes FOR EACH ROW EXECUTE FUNCTION athena_sync_capture();
CREATE TRIGGER sync_capture AFTER INSERT OR UPDATE OR DELETE ON highlights FOR EACH ROW EXECUTE FUNCTION athena_sync_capture();
CREATE TRIGGER sync_capture AFTER INSERT OR UPDATE OR DELETE ON bookmarks FOR EACH ROW EXECUTE FUNCTION athena_sync_capture();
CREATE TRIGGER sync_capture AFTER INSERT OR UPDATE OR DELETE ON shelves FOR EACH ROW EXECUTE FUNCTION athena_sync_capture();
CREATE TRIGGER sync_capture AFTER INSERT OR UPDATE OR DELETE ON shelf_books FOR EACH ROW EXECUTE FUNCTION athena_sync_capture();
CREATE TRIGGER sync_capture AFTER INSERT OR UPDATE OR DELETE ON user_settings FOR EACH ROW EXECUTE FUNCTION athena_sync_capture();
CREATE TRIGGER sync_capture AFTER INSERT OR UPDATE OR DELETE ON reading_settings FOR EACH ROW EXECUTE FUNCTION athena_sync_capture();
