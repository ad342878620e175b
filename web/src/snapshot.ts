// A paint cache of the library list: the first books of the library as last read from the local
// database, kept in localStorage so that a warm start can draw the library at once, before wa-sqlite has
// opened (opening it in its worker is most of a warm start). It is only ever *drawn*: nothing reads data
// from it, nothing writes it back anywhere, and the live query replaces it as soon as the database is
// ready. It belongs to one user: it is written only while that user is signed in, ignored for any other
// user, and removed at sign-out (saveSession(null)) and whenever the signed-in user changes.

export const SNAPSHOT_KEY = 'athena.librarySnapshot';
/** Books kept: enough to fill a large first screen. */
export const SNAPSHOT_LIMIT = 48;
const VERSION = 1;

export interface SnapshotBook {
  id: string;
  title: string | null;
  author: string | null;
  file_type: string | null;
  has_cover: boolean;
  progress: number | null;
}

export interface Snapshot {
  v: number;
  userId: string;
  books: SnapshotBook[];
}

interface ListRow {
  id: string;
  title: string | null;
  author: string | null;
  file_type: string | null;
  cover_url: string | null;
  progress: number | null;
}

/** The snapshot of a library list (rows in display order). */
export function toSnapshot(userId: string, rows: readonly ListRow[], limit = SNAPSHOT_LIMIT): Snapshot {
  return {
    v: VERSION,
    userId,
    books: rows.slice(0, limit).map((r) => ({
      id: r.id,
      title: r.title ?? null,
      author: r.author ?? null,
      file_type: r.file_type ?? null,
      has_cover: Boolean(r.cover_url),
      progress: typeof r.progress === 'number' ? r.progress : null,
    })),
  };
}

/** The books of a stored snapshot when it is well-formed and belongs to `userId`; else null. */
export function parseSnapshot(raw: string | null, userId: string): SnapshotBook[] | null {
  if (!raw || !userId) return null;
  try {
    const s = JSON.parse(raw) as Partial<Snapshot>;
    if (s.v !== VERSION || s.userId !== userId || !Array.isArray(s.books)) return null;
    const books = s.books.filter((b): b is SnapshotBook => Boolean(b) && typeof b.id === 'string');
    return books.length ? books : null;
  } catch {
    return null;
  }
}

export function readSnapshot(userId: string, storage: Pick<Storage, 'getItem'> = localStorage): SnapshotBook[] | null {
  return parseSnapshot(storage.getItem(SNAPSHOT_KEY), userId);
}

/**
 * Stores the snapshot of `rows` for `userId`, but only while `signedInUser()` is that user (a write that
 * lands after sign-out or a user switch is dropped). Returns whether it wrote.
 */
export function writeSnapshot(
  userId: string,
  rows: readonly ListRow[],
  signedInUser: () => string | null,
  storage: Pick<Storage, 'getItem' | 'setItem'> = localStorage,
): boolean {
  if (!userId || signedInUser() !== userId) return false;
  const text = JSON.stringify(toSnapshot(userId, rows));
  if (storage.getItem(SNAPSHOT_KEY) === text) return false;
  try {
    storage.setItem(SNAPSHOT_KEY, text);
    return true;
  } catch {
    return false; // storage full: no snapshot, the next start just waits for the database
  }
}

export function clearSnapshot(storage: Pick<Storage, 'removeItem'> = localStorage): void {
  storage.removeItem(SNAPSHOT_KEY);
}

/** Removes a stored snapshot that is not `userId`'s (or any, for null): run when the signed-in user changes. */
export function clearSnapshotUnlessFor(userId: string | null, storage: Pick<Storage, 'getItem' | 'removeItem'> = localStorage): void {
  const raw = storage.getItem(SNAPSHOT_KEY);
  if (raw !== null && (!userId || parseSnapshot(raw, userId) === null)) storage.removeItem(SNAPSHOT_KEY);
}
