// Reading statistics for Home, computed from synced reading_sessions and reading_progress rows.

export interface SessionLike {
  total_ms: number | null;
  created_at: string | null;
}

export interface ProgressLike {
  finished_at: string | null;
}

export interface Stats {
  todayMinutes: number;
  /** minutes per day, Monday first, of the week containing `now` */
  week: number[];
  currentStreak: number;
  longestStreak: number;
  finishedThisYear: number;
}

/** The local calendar day of a timestamp, as YYYY-MM-DD. */
export function dayKey(d: Date): string {
  const m = String(d.getMonth() + 1).padStart(2, '0');
  const day = String(d.getDate()).padStart(2, '0');
  return `${d.getFullYear()}-${m}-${day}`;
}

function addDays(d: Date, n: number): Date {
  const r = new Date(d);
  r.setDate(r.getDate() + n);
  return r;
}

/** Minutes read per local day (sessions count on the day they started). */
export function minutesByDay(sessions: readonly SessionLike[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of sessions) {
    if (!s.created_at || !s.total_ms) continue;
    const d = new Date(s.created_at);
    if (Number.isNaN(d.getTime())) continue;
    const k = dayKey(d);
    out.set(k, (out.get(k) ?? 0) + s.total_ms / 60_000);
  }
  return out;
}

export function computeStats(sessions: readonly SessionLike[], progress: readonly ProgressLike[], now: Date, minMinutesForStreak = 1): Stats {
  const byDay = minutesByDay(sessions);
  const read = (d: Date) => Math.round(byDay.get(dayKey(d)) ?? 0) >= minMinutesForStreak;
  const todayMinutes = Math.round(byDay.get(dayKey(now)) ?? 0);

  const monday = addDays(now, -((now.getDay() + 6) % 7));
  const week = Array.from({ length: 7 }, (_, i) => Math.round(byDay.get(dayKey(addDays(monday, i))) ?? 0));

  // The current streak may end today or yesterday (today's reading may not have started yet).
  let currentStreak = 0;
  let cursor = read(now) ? now : addDays(now, -1);
  while (read(cursor)) {
    currentStreak++;
    cursor = addDays(cursor, -1);
  }

  const days = [...byDay.entries()]
    .filter(([, m]) => Math.round(m) >= minMinutesForStreak)
    .map(([k]) => k)
    .sort();
  let longestStreak = 0;
  let run = 0;
  let prev: string | null = null;
  for (const k of days) {
    const [y, m, d] = k.split('-').map(Number) as [number, number, number];
    const expected = prev ? (() => { const [py, pm, pd] = prev.split('-').map(Number) as [number, number, number]; return dayKey(addDays(new Date(py, pm - 1, pd), 1)); })() : null;
    run = expected === dayKey(new Date(y, m - 1, d)) ? run + 1 : 1;
    longestStreak = Math.max(longestStreak, run);
    prev = k;
  }

  const year = now.getFullYear();
  const finishedThisYear = progress.filter((p) => p.finished_at && new Date(p.finished_at).getFullYear() === year).length;
  return { todayMinutes, week, currentStreak, longestStreak: Math.max(longestStreak, currentStreak), finishedThisYear };
}
