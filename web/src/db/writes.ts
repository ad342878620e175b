// Every change the app makes to synced tables: local writes, queued by PowerSync and uploaded by
// the connector. Timestamps are the client's (the server's conflict rules compare them).

export interface Executor {
  execute(sql: string, params?: unknown[]): Promise<unknown>;
  getOptional<T>(sql: string, params?: unknown[]): Promise<T | null>;
}

export interface Ctx {
  db: Executor;
  userId: string;
  deviceId: string;
  now?: () => Date;
  newId?: () => string;
}

export const HIGHLIGHT_COLOURS = ['yellow', 'green', 'blue', 'pink', 'purple'] as const;
export type HighlightColour = (typeof HIGHLIGHT_COLOURS)[number];

let lastStamp = 0;
/**
 * The client timestamp of a write, strictly increasing within this page: the server orders
 * last-writer-wins tables by it, and PowerSync uploads only changed columns, so two writes in the
 * same millisecond would send an update without its `updated_at` (which the server refuses).
 */
const iso = (c: Ctx) => {
  if (c.now) return c.now().toISOString();
  lastStamp = Math.max(Date.now(), lastStamp + 1);
  return new Date(lastStamp).toISOString();
};
const uuid = (c: Ctx) => (c.newId ? c.newId() : crypto.randomUUID());

export interface Position {
  progress: number;
  /** EPUB CFI, when the book is an EPUB */
  cfi?: string | null;
  page?: number | null;
  total?: number | null;
}

/** Upserts the one reading_progress row of (user, book). */
export async function saveProgress(c: Ctx, bookId: string, pos: Position): Promise<void> {
  const now = iso(c);
  const progress = Math.min(1, Math.max(0, pos.progress));
  const location = pos.page != null ? JSON.stringify({ current: pos.page, total: pos.total ?? null }) : null;
  const existing = await c.db.getOptional<{ id: string }>('SELECT id FROM reading_progress WHERE book_id = ? ORDER BY updated_at DESC LIMIT 1', [bookId]);
  if (existing) {
    await c.db.execute('UPDATE reading_progress SET progress = ?, last_position = ?, last_location = ?, device_id = ?, updated_at = ? WHERE id = ?', [
      progress,
      pos.cfi ?? null,
      location,
      c.deviceId,
      now,
      existing.id,
    ]);
  } else {
    await c.db.execute(
      'INSERT INTO reading_progress (id, user_id, book_id, device_id, progress, last_position, last_location, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      [uuid(c), c.userId, bookId, c.deviceId, progress, pos.cfi ?? null, location, now],
    );
  }
}

export async function markFinished(c: Ctx, bookId: string, finished: boolean): Promise<void> {
  const existing = await c.db.getOptional<{ id: string }>('SELECT id FROM reading_progress WHERE book_id = ? LIMIT 1', [bookId]);
  if (!existing) await saveProgress(c, bookId, { progress: finished ? 1 : 0 });
  const row = existing ?? (await c.db.getOptional<{ id: string }>('SELECT id FROM reading_progress WHERE book_id = ? LIMIT 1', [bookId]));
  if (!row) return;
  // Stamped after any insert above: an update older than the row it changes would be ignored.
  const now = iso(c);
  await c.db.execute('UPDATE reading_progress SET finished_at = ?, progress = CASE WHEN ? THEN 1 ELSE progress END, updated_at = ? WHERE id = ?', [
    finished ? now : null,
    finished ? 1 : 0,
    now,
    row.id,
  ]);
}

export interface Anchor {
  cfiStart?: string | null;
  cfiEnd?: string | null;
  page?: number | null;
}

export async function addHighlight(c: Ctx, bookId: string, text: string, colour: HighlightColour, at: Anchor): Promise<string> {
  const id = uuid(c);
  const now = iso(c);
  await c.db.execute(
    `INSERT INTO highlights (id, user_id, book_id, device_id, text, page_number, position_start_cfi, position_end_cfi, color, is_deleted, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`,
    [id, c.userId, bookId, c.deviceId, text, at.page ?? null, at.cfiStart ?? null, at.cfiEnd ?? null, colour, now, now],
  );
  return id;
}

export async function addNote(c: Ctx, bookId: string, content: string, at: Anchor, colour: HighlightColour = 'yellow'): Promise<string> {
  const id = uuid(c);
  const now = iso(c);
  await c.db.execute(
    `INSERT INTO notes (id, user_id, book_id, device_id, content, page_number, position_cfi, color, is_deleted, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`,
    [id, c.userId, bookId, c.deviceId, content, at.page ?? null, at.cfiStart ?? null, colour, now, now],
  );
  return id;
}

export async function editNote(c: Ctx, id: string, content: string): Promise<void> {
  await c.db.execute('UPDATE notes SET content = ?, device_id = ?, updated_at = ? WHERE id = ?', [content, c.deviceId, iso(c), id]);
}

export async function addBookmark(c: Ctx, bookId: string, title: string, at: Anchor): Promise<string> {
  const id = uuid(c);
  const now = iso(c);
  await c.db.execute(
    `INSERT INTO bookmarks (id, user_id, book_id, device_id, title, page_number, position_cfi, is_deleted, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`,
    [id, c.userId, bookId, c.deviceId, title, at.page ?? null, at.cfiStart ?? null, now, now],
  );
  return id;
}

/** Soft-deletes a note, highlight or bookmark (`is_deleted` + `deleted_at`). */
export async function softDelete(c: Ctx, table: 'notes' | 'highlights' | 'bookmarks', id: string): Promise<void> {
  const now = iso(c);
  await c.db.execute(`UPDATE ${table} SET is_deleted = 1, deleted_at = ?, updated_at = ? WHERE id = ?`, [now, now, id]);
}

/** Moves a book to (or out of) "recently deleted": books are soft-deleted by `deleted_at`. */
export async function setBookDeleted(c: Ctx, bookId: string, deleted: boolean): Promise<void> {
  await c.db.execute('UPDATE books SET deleted_at = ? WHERE id = ?', [deleted ? iso(c) : null, bookId]);
}

export interface ReadingSettings {
  theme_id: string;
  font_family: string;
  font_size: number;
  line_height: number;
  /** extra space between paragraphs, in em */
  paragraph_spacing: number;
  /** left and right page margin, in % of the page width */
  margin_horizontal: number;
  text_align: string;
}

export const DEFAULT_READING: ReadingSettings = {
  theme_id: 'white',
  font_family: 'serif',
  font_size: 18,
  line_height: 1.6,
  paragraph_spacing: 0.5,
  margin_horizontal: 5,
  text_align: 'start',
};

const READING_KEYS = Object.keys(DEFAULT_READING) as Array<keyof ReadingSettings>;

/** Book row → global row (book_id NULL) → defaults, column by column. */
export function effectiveReading(book: Partial<ReadingSettings> | null, global: Partial<ReadingSettings> | null): ReadingSettings {
  const out = { ...DEFAULT_READING } as Record<keyof ReadingSettings, unknown>;
  for (const k of READING_KEYS) out[k] = book?.[k] ?? global?.[k] ?? DEFAULT_READING[k];
  return out as unknown as ReadingSettings;
}

/** Saves reading settings for one book (or globally with `bookId` null): one row per (user, book). */
export async function saveReading(c: Ctx, bookId: string | null, patch: Partial<ReadingSettings>): Promise<void> {
  const now = iso(c);
  const existing = await c.db.getOptional<{ id: string }>(
    bookId === null ? 'SELECT id FROM reading_settings WHERE book_id IS NULL LIMIT 1' : 'SELECT id FROM reading_settings WHERE book_id = ? LIMIT 1',
    bookId === null ? [] : [bookId],
  );
  const cols = Object.keys(patch) as Array<keyof ReadingSettings>;
  if (existing) {
    const sets = cols.map((k) => `${k} = ?`).join(', ');
    await c.db.execute(`UPDATE reading_settings SET ${sets}${sets ? ', ' : ''}device_id = ?, updated_at = ? WHERE id = ?`, [
      ...cols.map((k) => patch[k]),
      c.deviceId,
      now,
      existing.id,
    ]);
  } else {
    const names = ['id', 'user_id', 'book_id', 'device_id', ...cols, 'is_deleted', 'created_at', 'updated_at'];
    await c.db.execute(`INSERT INTO reading_settings (${names.join(', ')}) VALUES (${names.map(() => '?').join(', ')})`, [
      uuid(c),
      c.userId,
      bookId,
      c.deviceId,
      ...cols.map((k) => patch[k]),
      0,
      now,
      now,
    ]);
  }
}

export interface Goals {
  daily_goal_minutes: number;
  yearly_goal_books: number;
}

export const DEFAULT_GOALS: Goals = { daily_goal_minutes: 30, yearly_goal_books: 10 };

export function parseGoals(settingsJson: string | null | undefined): Goals {
  try {
    const v = JSON.parse(settingsJson ?? '{}') as Partial<Goals>;
    return {
      daily_goal_minutes: Number(v.daily_goal_minutes) > 0 ? Number(v.daily_goal_minutes) : DEFAULT_GOALS.daily_goal_minutes,
      yearly_goal_books: Number(v.yearly_goal_books) > 0 ? Number(v.yearly_goal_books) : DEFAULT_GOALS.yearly_goal_books,
    };
  } catch {
    return { ...DEFAULT_GOALS };
  }
}

/** Merges `patch` into the user's one user_settings row. */
export async function saveUserSettings(c: Ctx, patch: Record<string, unknown>): Promise<void> {
  const now = iso(c);
  const existing = await c.db.getOptional<{ id: string; settings_json: string | null }>('SELECT id, settings_json FROM user_settings LIMIT 1');
  if (existing) {
    let merged: Record<string, unknown> = {};
    try {
      merged = JSON.parse(existing.settings_json ?? '{}') as Record<string, unknown>;
    } catch {
      merged = {};
    }
    Object.assign(merged, patch);
    await c.db.execute('UPDATE user_settings SET settings_json = ?, device_id = ?, updated_at = ? WHERE id = ?', [JSON.stringify(merged), c.deviceId, now, existing.id]);
  } else {
    await c.db.execute('INSERT INTO user_settings (id, user_id, device_id, settings_json, updated_at) VALUES (?, ?, ?, ?, ?)', [
      uuid(c),
      c.userId,
      c.deviceId,
      JSON.stringify(patch),
      now,
    ]);
  }
}

/** Starts a reading session; returns its id. */
export async function startSession(c: Ctx, bookId: string): Promise<string> {
  const id = uuid(c);
  const now = iso(c);
  await c.db.execute('INSERT INTO reading_sessions (id, user_id, book_id, device_id, is_active, total_ms, created_at, updated_at) VALUES (?, ?, ?, ?, 1, 0, ?, ?)', [
    id,
    c.userId,
    bookId,
    c.deviceId,
    now,
    now,
  ]);
  return id;
}

/** The session heartbeat: its total so far, and whether it is still going. */
export async function touchSession(c: Ctx, id: string, totalMs: number, active: boolean): Promise<void> {
  await c.db.execute('UPDATE reading_sessions SET total_ms = ?, is_active = ?, updated_at = ? WHERE id = ?', [Math.round(totalMs), active ? 1 : 0, iso(c), id]);
}

/** Creates a shelf; returns its id. */
export async function createShelf(c: Ctx, name: string): Promise<string> {
  const id = uuid(c);
  const now = iso(c);
  await c.db.execute('INSERT INTO shelves (id, user_id, name, sort_order, is_deleted, created_at, updated_at) VALUES (?, ?, ?, 0, 0, ?, ?)', [id, c.userId, name, now, now]);
  return id;
}

/** Puts a book on a shelf (one row per shelf and book) or takes it off. */
export async function setOnShelf(c: Ctx, shelfId: string, bookId: string, on: boolean): Promise<void> {
  const existing = await c.db.getOptional<{ id: string }>('SELECT id FROM shelf_books WHERE shelf_id = ? AND book_id = ? LIMIT 1', [shelfId, bookId]);
  if (on && !existing) {
    await c.db.execute('INSERT INTO shelf_books (id, user_id, shelf_id, book_id, sort_order, added_at) VALUES (?, ?, ?, ?, 0, ?)', [uuid(c), c.userId, shelfId, bookId, iso(c)]);
  } else if (!on && existing) {
    await c.db.execute('DELETE FROM shelf_books WHERE id = ?', [existing.id]);
  }
}
