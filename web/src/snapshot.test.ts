import { describe, expect, it } from 'vitest';
import { SNAPSHOT_KEY, clearSnapshot, clearSnapshotUnlessFor, parseSnapshot, readSnapshot, toSnapshot, writeSnapshot } from './snapshot';
import { errorOf, reasonKey } from './processing';
import { en } from './i18n/en';

function memoryStorage() {
  const m = new Map<string, string>();
  return {
    getItem: (k: string) => m.get(k) ?? null,
    setItem: (k: string, v: string) => void m.set(k, v),
    removeItem: (k: string) => void m.delete(k),
    map: m,
  };
}

const row = (i: number) => ({ id: `b${i}`, title: `Book ${i}`, author: i % 2 ? 'A' : null, file_type: 'epub', cover_url: i % 3 ? `/api/v1/books/b${i}/cover` : null, progress: i / 100 });

describe('library snapshot (paint cache)', () => {
  it('keeps the first books with what a card draws', () => {
    const s = toSnapshot('u1', [row(1), row(2), row(3)], 2);
    expect(s.userId).toBe('u1');
    expect(s.books).toEqual([
      { id: 'b1', title: 'Book 1', author: 'A', file_type: 'epub', has_cover: true, progress: 0.01 },
      { id: 'b2', title: 'Book 2', author: null, file_type: 'epub', has_cover: true, progress: 0.02 },
    ]);
    expect(toSnapshot('u1', Array.from({ length: 100 }, (_, i) => row(i))).books).toHaveLength(48);
  });

  it('is read back only for its own user', () => {
    const st = memoryStorage();
    expect(writeSnapshot('u1', [row(1)], () => 'u1', st)).toBe(true);
    expect(readSnapshot('u1', st)?.map((b) => b.id)).toEqual(['b1']);
    expect(readSnapshot('u2', st)).toBeNull();
    expect(parseSnapshot('not json', 'u1')).toBeNull();
    expect(parseSnapshot(JSON.stringify({ v: 99, userId: 'u1', books: [{ id: 'x' }] }), 'u1')).toBeNull();
    expect(parseSnapshot(JSON.stringify(toSnapshot('u1', [])), 'u1')).toBeNull();
  });

  it('is not written for a user who is no longer signed in', () => {
    const st = memoryStorage();
    expect(writeSnapshot('u1', [row(1)], () => null, st)).toBe(false);
    expect(writeSnapshot('u1', [row(1)], () => 'u2', st)).toBe(false);
    expect(st.map.has(SNAPSHOT_KEY)).toBe(false);
    // The same content twice: one write.
    expect(writeSnapshot('u1', [row(1)], () => 'u1', st)).toBe(true);
    expect(writeSnapshot('u1', [row(1)], () => 'u1', st)).toBe(false);
  });

  it('is removed at sign-out and for another user', () => {
    const st = memoryStorage();
    writeSnapshot('u1', [row(1)], () => 'u1', st);
    clearSnapshotUnlessFor('u1', st);
    expect(st.map.has(SNAPSHOT_KEY)).toBe(true);
    clearSnapshotUnlessFor('u2', st);
    expect(st.map.has(SNAPSHOT_KEY)).toBe(false);
    writeSnapshot('u1', [row(1)], () => 'u1', st);
    clearSnapshotUnlessFor(null, st);
    expect(st.map.has(SNAPSHOT_KEY)).toBe(false);
    writeSnapshot('u1', [row(1)], () => 'u1', st);
    clearSnapshot(st);
    expect(st.map.has(SNAPSHOT_KEY)).toBe(false);
  });
});

describe('processing failure reasons', () => {
  it('reads the failed step out of the processing status', () => {
    const status = { errors: { conversion_error: { code: 'libreoffice_missing', message: 'LibreOffice is not installed', at: 'x' }, ocr_error: { code: 'ocr_timeout' } } };
    expect(errorOf(status, 'conversion')).toEqual({ code: 'libreoffice_missing', message: 'LibreOffice is not installed' });
    expect(errorOf(status, 'ocr')).toEqual({ code: 'ocr_timeout', message: null });
    expect(errorOf({ errors: {} }, 'conversion')).toBeNull();
    expect(errorOf({ errors: { conversion_error: null } }, 'conversion')).toBeNull();
    expect(errorOf(null, 'ocr')).toBeNull();
  });

  it('maps stable codes to messages, unknown ones to none (the code is shown)', () => {
    for (const code of ['calibre_missing', 'libreoffice_missing', 'convert_timeout', 'convert_failed', 'ocr_timeout', 'pdf_unreadable']) {
      const key = reasonKey(code);
      expect(key && en[key]).toBeTruthy();
    }
    expect(reasonKey('something_new')).toBeNull();
  });
});
