import { describe, expect, it } from 'vitest';
import { DEFAULT_READING, addHighlight, markFinished, effectiveReading, parseGoals, saveProgress, saveReading, softDelete, type Ctx, type Executor } from './writes';
import { computeStats, dayKey } from './stats';

/** A tiny in-memory stand-in for the handful of statements these helpers run. */
function recorder(existing: Record<string, { id: string } | null> = {}) {
  const calls: Array<{ sql: string; params: unknown[] }> = [];
  const db: Executor = {
    async execute(sql, params = []) {
      calls.push({ sql: sql.replace(/\s+/g, ' ').trim(), params });
      return {};
    },
    async getOptional<T>(sql: string) {
      const table = /FROM (\w+)/.exec(sql)?.[1] ?? '';
      return (existing[table] ?? null) as T | null;
    },
  };
  const ctx: Ctx = { db, userId: 'u1', deviceId: 'web-1', now: () => new Date('2026-03-02T10:00:00Z'), newId: () => 'new-id' };
  return { calls, ctx };
}

describe('saveProgress', () => {
  it('inserts the first row of a book with the client timestamp and a page location', async () => {
    const { calls, ctx } = recorder();
    await saveProgress(ctx, 'b1', { progress: 0.25, cfi: 'epubcfi(/6/4)', page: 3, total: 10 });
    expect(calls).toHaveLength(1);
    expect(calls[0]?.sql).toMatch(/^INSERT INTO reading_progress/);
    expect(calls[0]?.params).toEqual(['new-id', 'u1', 'b1', 'web-1', 0.25, 'epubcfi(/6/4)', '{"current":3,"total":10}', '2026-03-02T10:00:00.000Z']);
  });

  it('updates the existing row (one per user and book) and clamps progress to 0..1', async () => {
    const { calls, ctx } = recorder({ reading_progress: { id: 'p1' } });
    await saveProgress(ctx, 'b1', { progress: 1.7 });
    expect(calls[0]?.sql).toMatch(/^UPDATE reading_progress SET/);
    expect(calls[0]?.params).toEqual([1, null, null, 'web-1', '2026-03-02T10:00:00.000Z', 'p1']);
  });
});

describe('annotations', () => {
  it('a highlight carries its colour, anchor, device and timestamps', async () => {
    const { calls, ctx } = recorder();
    await addHighlight(ctx, 'b1', 'some text', 'green', { cfiStart: 'epubcfi(/6/2!/4,/1:0,/1:9)', cfiEnd: 'epubcfi(/6/2!/4,/1:0,/1:9)' });
    expect(calls[0]?.params).toEqual(['new-id', 'u1', 'b1', 'web-1', 'some text', null, 'epubcfi(/6/2!/4,/1:0,/1:9)', 'epubcfi(/6/2!/4,/1:0,/1:9)', 'green', '2026-03-02T10:00:00.000Z', '2026-03-02T10:00:00.000Z']);
  });

  it('deleting is soft: is_deleted and deleted_at', async () => {
    const { calls, ctx } = recorder();
    await softDelete(ctx, 'bookmarks', 'x');
    expect(calls[0]?.sql).toBe('UPDATE bookmarks SET is_deleted = 1, deleted_at = ?, updated_at = ? WHERE id = ?');
  });
});

describe('reading settings', () => {
  it('takes each value from the book row, else the global row, else the defaults', () => {
    expect(effectiveReading(null, null)).toEqual(DEFAULT_READING);
    expect(effectiveReading({ font_size: 24 }, { font_size: 20, theme_id: 'sepia' })).toEqual({ ...DEFAULT_READING, font_size: 24, theme_id: 'sepia' });
    expect(effectiveReading({ theme_id: null as unknown as string }, { theme_id: 'dark' }).theme_id).toBe('dark');
  });

  it('saves only the changed columns into the existing row', async () => {
    const { calls, ctx } = recorder({ reading_settings: { id: 'rs1' } });
    await saveReading(ctx, 'b1', { font_size: 22 });
    expect(calls[0]?.sql).toBe('UPDATE reading_settings SET font_size = ?, device_id = ?, updated_at = ? WHERE id = ?');
    expect(calls[0]?.params).toEqual([22, 'web-1', '2026-03-02T10:00:00.000Z', 'rs1']);
  });

  it('creates the global row with book_id NULL', async () => {
    const { calls, ctx } = recorder();
    await saveReading(ctx, null, { theme_id: 'dark' });
    expect(calls[0]?.sql).toMatch(/^INSERT INTO reading_settings \(id, user_id, book_id, device_id, theme_id, is_deleted, created_at, updated_at\)/);
    expect(calls[0]?.params.slice(0, 5)).toEqual(['new-id', 'u1', null, 'web-1', 'dark']);
  });
});

describe('goals', () => {
  it('reads goals from settings_json with defaults for missing or bad values', () => {
    expect(parseGoals(null)).toEqual({ daily_goal_minutes: 30, yearly_goal_books: 10 });
    expect(parseGoals('{"daily_goal_minutes":45}')).toEqual({ daily_goal_minutes: 45, yearly_goal_books: 10 });
    expect(parseGoals('not json')).toEqual({ daily_goal_minutes: 30, yearly_goal_books: 10 });
  });
});

describe('computeStats', () => {
  const at = (y: number, m: number, d: number, h = 12) => new Date(y, m - 1, d, h).toISOString();
  const min = (n: number) => n * 60_000;

  it('sums today, the week (Monday first) and finished books of this year', () => {
    const now = new Date(2026, 2, 4, 18); // Wednesday 4 March 2026
    const sessions = [
      { total_ms: min(10), created_at: at(2026, 3, 4, 9) },
      { total_ms: min(5), created_at: at(2026, 3, 4, 17) },
      { total_ms: min(20), created_at: at(2026, 3, 2) },
      { total_ms: min(7), created_at: at(2026, 3, 1) }, // Sunday of the previous week
    ];
    const progress = [{ finished_at: at(2026, 1, 10) }, { finished_at: at(2025, 12, 31) }, { finished_at: null }];
    const s = computeStats(sessions, progress, now);
    expect(s.todayMinutes).toBe(15);
    expect(s.week).toEqual([20, 0, 15, 0, 0, 0, 0]);
    expect(s.finishedThisYear).toBe(1);
  });

  it('counts the current streak up to today or yesterday, and the longest run', () => {
    const now = new Date(2026, 2, 10, 8);
    const days = [1, 2, 3, 4, 7, 8, 9]; // 4-day run, then a 3-day run ending yesterday
    const sessions = days.map((d) => ({ total_ms: min(3), created_at: at(2026, 3, d) }));
    const s = computeStats(sessions, [], now);
    expect(s.currentStreak).toBe(3);
    expect(s.longestStreak).toBe(4);
    expect(computeStats(sessions, [], new Date(2026, 2, 12)).currentStreak).toBe(0);
  });

  it('dayKey is the local calendar day', () => {
    expect(dayKey(new Date(2026, 0, 5, 23, 59))).toBe('2026-01-05');
  });
});

describe('timestamps', () => {
  it('two writes in the same millisecond still get increasing updated_at values', async () => {
    const calls: unknown[][] = [];
    const db: Executor = { execute: async (_sql, params = []) => { calls.push(params); return {}; }, getOptional: async () => ({ id: 'p1' }) as never };
    const ctx: Ctx = { db, userId: 'u', deviceId: 'd' };
    await Promise.all([saveProgress(ctx, 'b', { progress: 0.1 }), saveProgress(ctx, 'b', { progress: 0.2 }), saveProgress(ctx, 'b', { progress: 0.3 })]);
    const stamps = calls.map((p) => p[4] as string);
    expect(new Set(stamps).size).toBe(3);
    expect([...stamps].sort()).toEqual(stamps);
  });
});

describe('markFinished', () => {
  it('stamps the finishing update after the row it creates', async () => {
    const calls: Array<{ sql: string; params: unknown[] }> = [];
    let row: { id: string } | null = null;
    const db: Executor = {
      execute: async (sql, params = []) => {
        calls.push({ sql, params });
        if (sql.startsWith('INSERT')) row = { id: String(params[0]) };
        return {};
      },
      getOptional: async () => row as never,
    };
    await markFinished({ db, userId: 'u', deviceId: 'd' }, 'b', true);
    expect(calls).toHaveLength(2);
    const inserted = calls[0]?.params[7] as string;
    const updated = calls[1]?.params[2] as string;
    expect(calls[1]?.sql).toMatch(/^UPDATE reading_progress SET finished_at/);
    expect(updated > inserted).toBe(true);
  });
});
