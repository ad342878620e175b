// The client schema of the ten synced tables: the client columns of DATA-MODEL.md ("Synced
// tables") and deploy/sync_rules.yaml, typed as the server stores them.
import { Schema, Table, column } from '@powersync/common';

const { text, integer, real } = column;

export const tables = {
  books: new Table({
    user_id: text,
    title: text,
    author: text,
    cover_url: text,
    file_type: text,
    file_size: integer,
    original_content_sha256: text,
    content_sha256: text,
    storage_key: text,
    metadata_confirmed: integer,
    is_digitalized: integer,
    initial_digitalization_confidence: real,
    page_count: integer,
    ocr_status: text,
    conversion_status: text,
    converted_epub_key: text,
    created_at: text,
    updated_at: text,
    deleted_at: text,
  }),
  reading_progress: new Table({
    user_id: text,
    book_id: text,
    device_id: text,
    progress: real,
    last_position: text,
    last_location: text,
    finished_at: text,
    updated_at: text,
    tts_chapter_index: integer,
    tts_position_ms: integer,
    tts_last_played_at: text,
  }),
  reading_sessions: new Table({
    user_id: text,
    book_id: text,
    device_id: text,
    is_active: integer,
    total_ms: integer,
    created_at: text,
    updated_at: text,
  }),
  notes: new Table({
    user_id: text,
    book_id: text,
    device_id: text,
    content: text,
    page_number: integer,
    position_cfi: text,
    color: text,
    conflict_of: text,
    is_deleted: integer,
    deleted_at: text,
    created_at: text,
    updated_at: text,
  }),
  highlights: new Table({
    user_id: text,
    book_id: text,
    device_id: text,
    text: text,
    page_number: integer,
    position_start_cfi: text,
    position_end_cfi: text,
    color: text,
    conflict_of: text,
    is_deleted: integer,
    deleted_at: text,
    created_at: text,
    updated_at: text,
  }),
  bookmarks: new Table({
    user_id: text,
    book_id: text,
    device_id: text,
    title: text,
    page_number: integer,
    position_cfi: text,
    is_deleted: integer,
    deleted_at: text,
    created_at: text,
    updated_at: text,
  }),
  shelves: new Table({
    user_id: text,
    name: text,
    description: text,
    cover_url: text,
    sort_order: integer,
    is_deleted: integer,
    deleted_at: text,
    created_at: text,
    updated_at: text,
  }),
  shelf_books: new Table({
    user_id: text,
    shelf_id: text,
    book_id: text,
    sort_order: integer,
    added_at: text,
  }),
  user_settings: new Table({
    user_id: text,
    device_id: text,
    settings_json: text,
    updated_at: text,
  }),
  reading_settings: new Table({
    user_id: text,
    book_id: text,
    device_id: text,
    theme_id: text,
    background_color: text,
    text_color: text,
    font_family: text,
    font_size: real,
    font_weight: integer,
    line_height: real,
    paragraph_spacing: real,
    margin_horizontal: real,
    text_align: text,
    hyphenation: integer,
    is_deleted: integer,
    deleted_at: text,
    created_at: text,
    updated_at: text,
  }),
};

export const AppSchema = new Schema(tables);

export interface BookRow {
  id: string;
  title: string | null;
  author: string | null;
  cover_url: string | null;
  file_type: string | null;
  file_size: number | null;
  page_count: number | null;
  is_digitalized: number | null;
  ocr_status: string | null;
  conversion_status: string | null;
  converted_epub_key: string | null;
  metadata_confirmed: number | null;
  created_at: string | null;
  updated_at: string | null;
  deleted_at: string | null;
}

export interface ProgressRow {
  id: string;
  book_id: string;
  progress: number | null;
  last_position: string | null;
  last_location: string | null;
  finished_at: string | null;
  updated_at: string | null;
}

export interface SessionRow {
  id: string;
  book_id: string;
  total_ms: number | null;
  created_at: string | null;
  updated_at: string | null;
}

export interface HighlightRow {
  id: string;
  book_id: string;
  text: string | null;
  page_number: number | null;
  position_start_cfi: string | null;
  position_end_cfi: string | null;
  color: string | null;
  conflict_of: string | null;
  created_at: string | null;
  updated_at: string | null;
}

export interface NoteRow {
  id: string;
  book_id: string;
  content: string | null;
  page_number: number | null;
  position_cfi: string | null;
  color: string | null;
  conflict_of: string | null;
  created_at: string | null;
  updated_at: string | null;
}

export interface BookmarkRow {
  id: string;
  book_id: string;
  title: string | null;
  page_number: number | null;
  position_cfi: string | null;
  created_at: string | null;
}
