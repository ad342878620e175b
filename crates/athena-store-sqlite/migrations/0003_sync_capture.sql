-- Change capture for sync. Every committed change to a synced table, whoever makes it (the API, the
-- upload flow, the worker, an operator's SQL), is recorded by a trigger in sync_changes with the row's
-- images. One sequencer at a time turns captured changes into bucket operations in sync_oplog with
-- fresh, strictly increasing op ids, and deletes what it processed: a change is sequenced only once
-- its transaction has committed, so op ids follow commit order even when a slow transaction holds a
-- lower capture id.

CREATE TABLE sync_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    table_name TEXT NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('INSERT', 'UPDATE', 'DELETE')),
    old_row TEXT,
    new_row TEXT,
    captured_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE sync_oplog (
    op_id INTEGER PRIMARY KEY,
    bucket TEXT NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('PUT', 'REMOVE', 'MOVE', 'CLEAR')),
    object_type TEXT,
    object_id TEXT,
    data TEXT,
    checksum INTEGER NOT NULL,
    captured_at TEXT
);
CREATE INDEX sync_oplog_bucket_op ON sync_oplog (bucket, op_id);
CREATE INDEX sync_oplog_bucket_object ON sync_oplog (bucket, object_type, object_id);

CREATE TABLE sync_buckets (
    bucket TEXT PRIMARY KEY,
    checksum INTEGER NOT NULL,
    op_count INTEGER NOT NULL,
    last_op_id INTEGER NOT NULL
);

CREATE TABLE sync_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_op_id INTEGER NOT NULL,
    rules_version TEXT
);
INSERT INTO sync_state (id, last_op_id, rules_version) VALUES (1, 0, NULL);

CREATE TABLE sync_write_checkpoints (
    user_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    checkpoint INTEGER NOT NULL,
    op_watermark INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (user_id, client_id, checkpoint)
);

CREATE TRIGGER sync_capture_books_insert AFTER INSERT ON books BEGIN
    INSERT INTO sync_changes (table_name, op, new_row) VALUES ('books', 'INSERT', json_object('id', NEW.id, 'user_id', NEW.user_id, 'title', NEW.title, 'author', NEW.author, 'language', NEW.language, 'cover_image_key', NEW.cover_image_key, 'original_format', NEW.original_format, 'size', NEW.size, 'original_content_sha256', NEW.original_content_sha256, 'content_sha256', NEW.content_sha256, 'minio_key', NEW.minio_key, 'metadata_confirmed', NEW.metadata_confirmed, 'is_digitalized', NEW.is_digitalized, 'initial_digitalization_confidence', NEW.initial_digitalization_confidence, 'page_count', NEW.page_count, 'ocr_status', NEW.ocr_status, 'conversion_status', NEW.conversion_status, 'converted_epub_key', NEW.converted_epub_key, 'meta', NEW.meta, 'canonical_book_id', NEW.canonical_book_id, 'source_etag', NEW.source_etag, 'ocr_result_key', NEW.ocr_result_key, 'vector_indexed_at', NEW.vector_indexed_at, 'version', NEW.version, 'created_at', NEW.created_at, 'updated_at', NEW.updated_at, 'deleted_at', NEW.deleted_at));
END;
CREATE TRIGGER sync_capture_books_update AFTER UPDATE ON books BEGIN
    INSERT INTO sync_changes (table_name, op, old_row, new_row) VALUES ('books', 'UPDATE', json_object('id', OLD.id, 'user_id', OLD.user_id, 'title', OLD.title, 'author', OLD.author, 'language', OLD.language, 'cover_image_key', OLD.cover_image_key, 'original_format', OLD.original_format, 'size', OLD.size, 'original_content_sha256', OLD.original_content_sha256, 'content_sha256', OLD.content_sha256, 'minio_key', OLD.minio_key, 'metadata_confirmed', OLD.metadata_confirmed, 'is_digitalized', OLD.is_digitalized, 'initial_digitalization_confidence', OLD.initial_digitalization_confidence, 'page_count', OLD.page_count, 'ocr_status', OLD.ocr_status, 'conversion_status', OLD.conversion_status, 'converted_epub_key', OLD.converted_epub_key, 'meta', OLD.meta, 'canonical_book_id', OLD.canonical_book_id, 'source_etag', OLD.source_etag, 'ocr_result_key', OLD.ocr_result_key, 'vector_indexed_at', OLD.vector_indexed_at, 'version', OLD.version, 'created_at', OLD.created_at, 'updated_at', OLD.updated_at, 'deleted_at', OLD.deleted_at), json_object('id', NEW.id, 'user_id', NEW.user_id, 'title', NEW.title, 'author', NEW.author, 'language', NEW.language, 'cover_image_key', NEW.cover_image_key, 'original_format', NEW.original_format, 'size', NEW.size, 'original_content_sha256', NEW.original_content_sha256, 'content_sha256', NEW.content_sha256, 'minio_key', NEW.minio_key, 'metadata_confirmed', NEW.metadata_confirmed, 'is_digitalized', NEW.is_digitalized, 'initial_digitalization_confidence', NEW.initial_digitalization_confidence, 'page_count', NEW.page_count, 'ocr_status', NEW.ocr_status, 'conversion_status', NEW.conversion_status, 'converted_epub_key', NEW.converted_epub_key, 'meta', NEW.meta, 'canonical_book_id', NEW.canonical_book_id, 'source_etag', NEW.source_etag, 'ocr_result_key', NEW.ocr_result_key, 'vector_indexed_at', NEW.vector_indexed_at, 'version', NEW.version, 'created_at', NEW.created_at, 'updated_at', NEW.updated_at, 'deleted_at', NEW.deleted_at));
END;
CREATE TRIGGER sync_capture_books_delete AFTER DELETE ON books BEGIN
    INSERT INTO sync_changes (table_name, op, old_row) VALUES ('books', 'DELETE', json_object('id', OLD.id, 'user_id', OLD.user_id, 'title', OLD.title, 'author', OLD.author, 'language', OLD.language, 'cover_image_key', OLD.cover_image_key, 'original_format', OLD.original_format, 'size', OLD.size, 'original_content_sha256', OLD.original_content_sha256, 'content_sha256', OLD.content_sha256, 'minio_key', OLD.minio_key, 'metadata_confirmed', OLD.metadata_confirmed, 'is_digitalized', OLD.is_digitalized, 'initial_digitalization_confidence', OLD.initial_digitalization_confidence, 'page_count', OLD.page_count, 'ocr_status', OLD.ocr_status, 'conversion_status', OLD.conversion_status, 'converted_epub_key', OLD.converted_epub_key, 'meta', OLD.meta, 'canonical_book_id', OLD.canonical_book_id, 'source_etag', OLD.source_etag, 'ocr_result_key', OLD.ocr_result_key, 'vector_indexed_at', OLD.vector_indexed_at, 'version', OLD.version, 'created_at', OLD.created_at, 'updated_at', OLD.updated_at, 'deleted_at', OLD.deleted_at));
END;

CREATE TRIGGER sync_capture_reading_progress_insert AFTER INSERT ON reading_progress BEGIN
    INSERT INTO sync_changes (table_name, op, new_row) VALUES ('reading_progress', 'INSERT', json_object('id', NEW.id, 'user_id', NEW.user_id, 'book_id', NEW.book_id, 'device_id', NEW.device_id, 'progress', NEW.progress, 'last_position', NEW.last_position, 'last_location', NEW.last_location, 'finished_at', NEW.finished_at, 'updated_at', NEW.updated_at, 'tts_chapter_index', NEW.tts_chapter_index, 'tts_position_ms', NEW.tts_position_ms, 'tts_last_played_at', NEW.tts_last_played_at));
END;
CREATE TRIGGER sync_capture_reading_progress_update AFTER UPDATE ON reading_progress BEGIN
    INSERT INTO sync_changes (table_name, op, old_row, new_row) VALUES ('reading_progress', 'UPDATE', json_object('id', OLD.id, 'user_id', OLD.user_id, 'book_id', OLD.book_id, 'device_id', OLD.device_id, 'progress', OLD.progress, 'last_position', OLD.last_position, 'last_location', OLD.last_location, 'finished_at', OLD.finished_at, 'updated_at', OLD.updated_at, 'tts_chapter_index', OLD.tts_chapter_index, 'tts_position_ms', OLD.tts_position_ms, 'tts_last_played_at', OLD.tts_last_played_at), json_object('id', NEW.id, 'user_id', NEW.user_id, 'book_id', NEW.book_id, 'device_id', NEW.device_id, 'progress', NEW.progress, 'last_position', NEW.last_position, 'last_location', NEW.last_location, 'finished_at', NEW.finished_at, 'updated_at', NEW.updated_at, 'tts_chapter_index', NEW.tts_chapter_index, 'tts_position_ms', NEW.tts_position_ms, 'tts_last_played_at', NEW.tts_last_played_at));
END;
CREATE TRIGGER sync_capture_reading_progress_delete AFTER DELETE ON reading_progress BEGIN
    INSERT INTO sync_changes (table_name, op, old_row) VALUES ('reading_progress', 'DELETE', json_object('id', OLD.id, 'user_id', OLD.user_id, 'book_id', OLD.book_id, 'device_id', OLD.device_id, 'progress', OLD.progress, 'last_position', OLD.last_position, 'last_location', OLD.last_location, 'finished_at', OLD.finished_at, 'updated_at', OLD.updated_at, 'tts_chapter_index', OLD.tts_chapter_index, 'tts_position_ms', OLD.tts_position_ms, 'tts_last_played_at', OLD.tts_last_played_at));
END;

CREATE TRIGGER sync_capture_reading_sessions_insert AFTER INSERT ON reading_sessions BEGIN
    INSERT INTO sync_changes (table_name, op, new_row) VALUES ('reading_sessions', 'INSERT', json_object('id', NEW.id, 'user_id', NEW.user_id, 'book_id', NEW.book_id, 'device_id', NEW.device_id, 'is_active', NEW.is_active, 'total_ms', NEW.total_ms, 'created_at', NEW.created_at, 'updated_at', NEW.updated_at));
END;
CREATE TRIGGER sync_capture_reading_sessions_update AFTER UPDATE ON reading_sessions BEGIN
    INSERT INTO sync_changes (table_name, op, old_row, new_row) VALUES ('reading_sessions', 'UPDATE', json_object('id', OLD.id, 'user_id', OLD.user_id, 'book_id', OLD.book_id, 'device_id', OLD.device_id, 'is_active', OLD.is_active, 'total_ms', OLD.total_ms, 'created_at', OLD.created_at, 'updated_at', OLD.updated_at), json_object('id', NEW.id, 'user_id', NEW.user_id, 'book_id', NEW.book_id, 'device_id', NEW.device_id, 'is_active', NEW.is_active, 'total_ms', NEW.total_ms, 'created_at', NEW.created_at, 'updated_at', NEW.updated_at));
END;
CREATE TRIGGER sync_capture_reading_sessions_delete AFTER DELETE ON reading_sessions BEGIN
    INSERT INTO sync_changes (table_name, op, old_row) VALUES ('reading_sessions', 'DELETE', json_object('id', OLD.id, 'user_id', OLD.user_id, 'book_id', OLD.book_id, 'device_id', OLD.device_id, 'is_active', OLD.is_active, 'total_ms', OLD.total_ms, 'created_at', OLD.created_at, 'updated_at', OLD.updated_at));
END;

CREATE TRIGGER sync_capture_notes_insert AFTER INSERT ON notes BEGIN
    INSERT INTO sync_changes (table_name, op, new_row) VALUES ('notes', 'INSERT', json_object('id', NEW.id, 'user_id', NEW.user_id, 'book_id', NEW.book_id, 'device_id', NEW.device_id, 'content', NEW.content, 'page_number', NEW.page_number, 'position_cfi', NEW.position_cfi, 'color', NEW.color, 'conflict_of', NEW.conflict_of, 'is_deleted', NEW.is_deleted, 'deleted_at', NEW.deleted_at, 'created_at', NEW.created_at, 'updated_at', NEW.updated_at));
END;
CREATE TRIGGER sync_capture_notes_update AFTER UPDATE ON notes BEGIN
    INSERT INTO sync_changes (table_name, op, old_row, new_row) VALUES ('notes', 'UPDATE', json_object('id', OLD.id, 'user_id', OLD.user_id, 'book_id', OLD.book_id, 'device_id', OLD.device_id, 'content', OLD.content, 'page_number', OLD.page_number, 'position_cfi', OLD.position_cfi, 'color', OLD.color, 'conflict_of', OLD.conflict_of, 'is_deleted', OLD.is_deleted, 'deleted_at', OLD.deleted_at, 'created_at', OLD.created_at, 'updated_at', OLD.updated_at), json_object('id', NEW.id, 'user_id', NEW.user_id, 'book_id', NEW.book_id, 'device_id', NEW.device_id, 'content', NEW.content, 'page_number', NEW.page_number, 'position_cfi', NEW.position_cfi, 'color', NEW.color, 'conflict_of', NEW.conflict_of, 'is_deleted', NEW.is_deleted, 'deleted_at', NEW.deleted_at, 'created_at', NEW.created_at, 'updated_at', NEW.updated_at));
END;
CREATE TRIGGER sync_capture_notes_delete AFTER DELETE ON notes BEGIN
    INSERT INTO sync_changes (table_name, op, old_row) VALUES ('notes', 'DELETE', json_object('id', OLD.id, 'user_id', OLD.user_id, 'book_id', OLD.book_id, 'device_id', OLD.device_id, 'content', OLD.content, 'page_number', OLD.page_number, 'position_cfi', OLD.position_cfi, 'color', OLD.color, 'conflict_of', OLD.conflict_of, 'is_deleted', OLD.is_deleted, 'deleted_at', OLD.deleted_at, 'created_at', OLD.created_at, 'updated_at', OLD.updated_at));
END;

CREATE TRIGGER sync_capture_highlights_insert AFTER INSERT ON highlights BEGIN
    INSERT INTO sync_changes (table_name, op, new_row) VALUES ('highlights', 'INSERT', json_object('id', NEW.id, 'user_id', NEW.user_id, 'book_id', NEW.book_id, 'device_id', NEW.device_id, 'text', NEW.text, 'page_number', NEW.page_number, 'position_start_cfi', NEW.position_start_cfi, 'position_end_cfi', NEW.position_end_cfi, 'color', NEW.color, 'conflict_of', NEW.conflict_of, 'is_deleted', NEW.is_deleted, 'deleted_at', NEW.deleted_at, 'created_at', NEW.created_at, 'updated_at', NEW.updated_at));
END;
CREATE TRIGGER sync_capture_highlights_update AFTER UPDATE ON highlights BEGIN
    INSERT INTO sync_changes (table_name, op, old_row, new_row) VALUES ('highlights', 'UPDATE', json_object('id', OLD.id, 'user_id', OLD.user_id, 'book_id', OLD.book_id, 'device_id', OLD.device_id, 'text', OLD.text, 'page_number', OLD.page_number, 'position_start_cfi', OLD.position_start_cfi, 'position_end_cfi', OLD.position_end_cfi, 'color', OLD.color, 'conflict_of', OLD.conflict_of, 'is_deleted', OLD.is_deleted, 'deleted_at', OLD.deleted_at, 'created_at', OLD.created_at, 'updated_at', OLD.updated_at), json_object('id', NEW.id, 'user_id', NEW.user_id, 'book_id', NEW.book_id, 'device_id', NEW.device_id, 'text', NEW.text, 'page_number', NEW.page_number, 'position_start_cfi', NEW.position_start_cfi, 'position_end_cfi', NEW.position_end_cfi, 'color', NEW.color, 'conflict_of', NEW.conflict_of, 'is_deleted', NEW.is_deleted, 'deleted_at', NEW.deleted_at, 'created_at', NEW.created_at, 'updated_at', NEW.updated_at));
END;
CREATE TRIGGER sync_capture_highlights_delete AFTER DELETE ON highlights BEGIN
    INSERT INTO sync_changes (table_name, op, old_row) VALUES ('highlights', 'DELETE', json_object('id', OLD.id, 'user_id', OLD.user_id, 'book_id', OLD.book_id, 'device_id', OLD.device_id, 'text', OLD.text, 'page_number', OLD.page_number, 'position_start_cfi', OLD.position_start_cfi, 'position_end_cfi', OLD.position_end_cfi, 'color', OLD.color, 'conflict_of', OLD.conflict_of, 'is_deleted', OLD.is_deleted, 'deleted_at', OLD.deleted_at, 'created_at', OLD.created_at, 'updated_at', OLD.updated_at));
END;

CREATE TRIGGER sync_capture_bookmarks_insert AFTER INSERT ON bookmarks BEGIN
    INSERT INTO sync_changes (table_name, op, new_row) VALUES ('bookmarks', 'INSERT', json_object('id', NEW.id, 'user_id', NEW.user_id, 'book_id', NEW.book_id, 'device_id', NEW.device_id, 'title', NEW.title, 'page_number', NEW.page_number, 'position_cfi', NEW.position_cfi, 'is_deleted', NEW.is_deleted, 'deleted_at', NEW.deleted_at, 'created_at', NEW.created_at, 'updated_at', NEW.updated_at));
END;
CREATE TRIGGER sync_capture_bookmarks_update AFTER UPDATE ON bookmarks BEGIN
    INSERT INTO sync_changes (table_name, op, old_row, new_row) VALUES ('bookmarks', 'UPDATE', json_object('id', OLD.id, 'user_id', OLD.user_id, 'book_id', OLD.book_id, 'device_id', OLD.device_id, 'title', OLD.title, 'page_number', OLD.page_number, 'position_cfi', OLD.position_cfi, 'is_deleted', OLD.is_deleted, 'deleted_at', OLD.deleted_at, 'created_at', OLD.created_at, 'updated_at', OLD.updated_at), json_object('id', NEW.id, 'user_id', NEW.user_id, 'book_id', NEW.book_id, 'device_id', NEW.device_id, 'title', NEW.title, 'page_number', NEW.page_number, 'position_cfi', NEW.position_cfi, 'is_deleted', NEW.is_deleted, 'deleted_at', NEW.deleted_at, 'created_at', NEW.created_at, 'updated_at', NEW.updated_at));
END;
CREATE TRIGGER sync_capture_bookmarks_delete AFTER DELETE ON bookmarks BEGIN
    INSERT INTO sync_changes (table_name, op, old_row) VALUES ('bookmarks', 'DELETE', json_object('id', OLD.id, 'user_id', OLD.user_id, 'book_id', OLD.book_id, 'device_id', OLD.device_id, 'title', OLD.title, 'page_number', OLD.page_number, 'position_cfi', OLD.position_cfi, 'is_deleted', OLD.is_deleted, 'deleted_at', OLD.deleted_at, 'created_at', OLD.created_at, 'updated_at', OLD.updated_at));
END;

CREATE TRIGGER sync_capture_shelves_insert AFTER INSERT ON shelves BEGIN
    INSERT INTO sync_changes (table_name, op, new_row) VALUES ('shelves', 'INSERT', json_object('id', NEW.id, 'user_id', NEW.user_id, 'name', NEW.name, 'description', NEW.description, 'cover_url', NEW.cover_url, 'sort_order', NEW.sort_order, 'is_deleted', NEW.is_deleted, 'deleted_at', NEW.deleted_at, 'version', NEW.version, 'created_at', NEW.created_at, 'updated_at', NEW.updated_at));
END;
CREATE TRIGGER sync_capture_shelves_update AFTER UPDATE ON shelves BEGIN
    INSERT INTO sync_changes (table_name, op, old_row, new_row) VALUES ('shelves', 'UPDATE', json_object('id', OLD.id, 'user_id', OLD.user_id, 'name', OLD.name, 'description', OLD.description, 'cover_url', OLD.cover_url, 'sort_order', OLD.sort_order, 'is_deleted', OLD.is_deleted, 'deleted_at', OLD.deleted_at, 'version', OLD.version, 'created_at', OLD.created_at, 'updated_at', OLD.updated_at), json_object('id', NEW.id, 'user_id', NEW.user_id, 'name', NEW.name, 'description', NEW.description, 'cover_url', NEW.cover_url, 'sort_order', NEW.sort_order, 'is_deleted', NEW.is_deleted, 'deleted_at', NEW.deleted_at, 'version', NEW.version, 'created_at', NEW.created_at, 'updated_at', NEW.updated_at));
END;
CREATE TRIGGER sync_capture_shelves_delete AFTER DELETE ON shelves BEGIN
    INSERT INTO sync_changes (table_name, op, old_row) VALUES ('shelves', 'DELETE', json_object('id', OLD.id, 'user_id', OLD.user_id, 'name', OLD.name, 'description', OLD.description, 'cover_url', OLD.cover_url, 'sort_order', OLD.sort_order, 'is_deleted', OLD.is_deleted, 'deleted_at', OLD.deleted_at, 'version', OLD.version, 'created_at', OLD.created_at, 'updated_at', OLD.updated_at));
END;

CREATE TRIGGER sync_capture_shelf_books_insert AFTER INSERT ON shelf_books BEGIN
    INSERT INTO sync_changes (table_name, op, new_row) VALUES ('shelf_books', 'INSERT', json_object('id', NEW.id, 'user_id', NEW.user_id, 'shelf_id', NEW.shelf_id, 'book_id', NEW.book_id, 'sort_order', NEW.sort_order, 'added_at', NEW.added_at));
END;
CREATE TRIGGER sync_capture_shelf_books_update AFTER UPDATE ON shelf_books BEGIN
    INSERT INTO sync_changes (table_name, op, old_row, new_row) VALUES ('shelf_books', 'UPDATE', json_object('id', OLD.id, 'user_id', OLD.user_id, 'shelf_id', OLD.shelf_id, 'book_id', OLD.book_id, 'sort_order', OLD.sort_order, 'added_at', OLD.added_at), json_object('id', NEW.id, 'user_id', NEW.user_id, 'shelf_id', NEW.shelf_id, 'book_id', NEW.book_id, 'sort_order', NEW.sort_order, 'added_at', NEW.added_at));
END;
CREATE TRIGGER sync_capture_shelf_books_delete AFTER DELETE ON shelf_books BEGIN
    INSERT INTO sync_changes (table_name, op, old_row) VALUES ('shelf_books', 'DELETE', json_object('id', OLD.id, 'user_id', OLD.user_id, 'shelf_id', OLD.shelf_id, 'book_id', OLD.book_id, 'sort_order', OLD.sort_order, 'added_at', OLD.added_at));
END;

CREATE TRIGGER sync_capture_user_settings_insert AFTER INSERT ON user_settings BEGIN
    INSERT INTO sync_changes (table_name, op, new_row) VALUES ('user_settings', 'INSERT', json_object('id', NEW.id, 'user_id', NEW.user_id, 'device_id', NEW.device_id, 'settings_json', NEW.settings_json, 'updated_at', NEW.updated_at));
END;
CREATE TRIGGER sync_capture_user_settings_update AFTER UPDATE ON user_settings BEGIN
    INSERT INTO sync_changes (table_name, op, old_row, new_row) VALUES ('user_settings', 'UPDATE', json_object('id', OLD.id, 'user_id', OLD.user_id, 'device_id', OLD.device_id, 'settings_json', OLD.settings_json, 'updated_at', OLD.updated_at), json_object('id', NEW.id, 'user_id', NEW.user_id, 'device_id', NEW.device_id, 'settings_json', NEW.settings_json, 'updated_at', NEW.updated_at));
END;
CREATE TRIGGER sync_capture_user_settings_delete AFTER DELETE ON user_settings BEGIN
    INSERT INTO sync_changes (table_name, op, old_row) VALUES ('user_settings', 'DELETE', json_object('id', OLD.id, 'user_id', OLD.user_id, 'device_id', OLD.device_id, 'settings_json', OLD.settings_json, 'updated_at', OLD.updated_at));
END;

CREATE TRIGGER sync_capture_reading_settings_insert AFTER INSERT ON reading_settings BEGIN
    INSERT INTO sync_changes (table_name, op, new_row) VALUES ('reading_settings', 'INSERT', json_object('id', NEW.id, 'user_id', NEW.user_id, 'book_id', NEW.book_id, 'device_id', NEW.device_id, 'theme_id', NEW.theme_id, 'background_color', NEW.background_color, 'text_color', NEW.text_color, 'font_family', NEW.font_family, 'font_size', NEW.font_size, 'font_weight', NEW.font_weight, 'line_height', NEW.line_height, 'paragraph_spacing', NEW.paragraph_spacing, 'margin_horizontal', NEW.margin_horizontal, 'text_align', NEW.text_align, 'hyphenation', NEW.hyphenation, 'is_deleted', NEW.is_deleted, 'deleted_at', NEW.deleted_at, 'created_at', NEW.created_at, 'updated_at', NEW.updated_at));
END;
CREATE TRIGGER sync_capture_reading_settings_update AFTER UPDATE ON reading_settings BEGIN
    INSERT INTO sync_changes (table_name, op, old_row, new_row) VALUES ('reading_settings', 'UPDATE', json_object('id', OLD.id, 'user_id', OLD.user_id, 'book_id', OLD.book_id, 'device_id', OLD.device_id, 'theme_id', OLD.theme_id, 'background_color', OLD.background_color, 'text_color', OLD.text_color, 'font_family', OLD.font_family, 'font_size', OLD.font_size, 'font_weight', OLD.font_weight, 'line_height', OLD.line_height, 'paragraph_spacing', OLD.paragraph_spacing, 'margin_horizontal', OLD.margin_horizontal, 'text_align', OLD.text_align, 'hyphenation', OLD.hyphenation, 'is_deleted', OLD.is_deleted, 'deleted_at', OLD.deleted_at, 'created_at', OLD.created_at, 'updated_at', OLD.updated_at), json_object('id', NEW.id, 'user_id', NEW.user_id, 'book_id', NEW.book_id, 'device_id', NEW.device_id, 'theme_id', NEW.theme_id, 'background_color', NEW.background_color, 'text_color', NEW.text_color, 'font_family', NEW.font_family, 'font_size', NEW.font_size, 'font_weight', NEW.font_weight, 'line_height', NEW.line_height, 'paragraph_spacing', NEW.paragraph_spacing, 'margin_horizontal', NEW.margin_horizontal, 'text_align', NEW.text_align, 'hyphenation', NEW.hyphenation, 'is_deleted', NEW.is_deleted, 'deleted_at', NEW.deleted_at, 'created_at', NEW.created_at, 'updated_at', NEW.updated_at));
END;
CREATE TRIGGER sync_capture_reading_settings_delete AFTER DELETE ON reading_settings BEGIN
    INSERT INTO sync_changes (table_name, op, old_row) VALUES ('reading_settings', 'DELETE', json_object('id', OLD.id, 'user_id', OLD.user_id, 'book_id', OLD.book_id, 'device_id', OLD.device_id, 'theme_id', OLD.theme_id, 'background_color', OLD.background_color, 'text_color', OLD.text_color, 'font_family', OLD.font_family, 'font_size', OLD.font_size, 'font_weight', OLD.font_weight, 'line_height', OLD.line_height, 'paragraph_spacing', OLD.paragraph_spacing, 'margin_horizontal', OLD.margin_horizontal, 'text_align', OLD.text_align, 'hyphenation', OLD.hyphenation, 'is_deleted', OLD.is_deleted, 'deleted_at', OLD.deleted_at, 'created_at', OLD.created_at, 'updated_at', OLD.updated_at));
END;
