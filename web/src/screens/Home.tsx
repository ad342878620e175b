import { useMemo } from 'preact/hooks';
import { mediaUrl } from '../api';
import { useQuery } from '../db/hooks';
import type { ProgressRow, SessionRow } from '../db/schema';
import { computeStats } from '../db/stats';
import { parseGoals } from '../db/writes';
import { lang, t } from '../i18n';
import { navigate } from '../router';

interface ContinueRow extends ProgressRow {
  title: string | null;
  author: string | null;
  cover_url: string | null;
}

function Bar({ value, max, label }: { value: number; max: number; label: string }) {
  const pct = max > 0 ? Math.min(100, (value / max) * 100) : 0;
  return (
    <div class="meter" role="img" aria-label={label}>
      <div class="meter-fill" style={{ width: `${pct}%` }} />
    </div>
  );
}

export function Home() {
  const sessions = useQuery<SessionRow>('SELECT id, book_id, total_ms, created_at, updated_at FROM reading_sessions').rows;
  const progress = useQuery<ContinueRow>(
    `SELECT p.*, b.title AS title, b.author AS author, b.cover_url AS cover_url FROM reading_progress p JOIN books b ON b.id = p.book_id
     WHERE b.deleted_at IS NULL ORDER BY p.updated_at DESC`,
  ).rows;
  const settings = useQuery<{ settings_json: string | null }>('SELECT settings_json FROM user_settings LIMIT 1').rows[0];
  const goals = parseGoals(settings?.settings_json);
  const stats = useMemo(() => computeStats(sessions, progress, new Date()), [sessions, progress]);
  const reading = progress.filter((p) => !p.finished_at).slice(0, 6);
  const weekdays = useMemo(() => {
    const fmt = new Intl.DateTimeFormat(lang() === 'zh' ? 'zh-CN' : 'en', { weekday: 'short' });
    const monday = new Date(2024, 0, 1); // a Monday
    return Array.from({ length: 7 }, (_, i) => fmt.format(new Date(monday.getFullYear(), 0, 1 + i)));
  }, [lang()]);
  const weekMax = Math.max(goals.daily_goal_minutes, ...stats.week);

  return (
    <section class="home">
      <h1>{t('home.title')}</h1>
      <h2>{t('home.continue')}</h2>
      {reading.length === 0 ? (
        <p>{t('home.nothing')}</p>
      ) : (
        <ul class="continue">
          {reading.map((r) => (
            <li>
              <a href={`/reader/${r.book_id}`} onClick={(e) => { e.preventDefault(); navigate(`/reader/${r.book_id}`); }}>
                {r.cover_url ? <img class="cover small" alt="" src={mediaUrl(`/api/v1/books/${r.book_id}/cover`)} /> : null}
                <span>{r.title}</span>
                <span class="muted">{t('library.progress', { percent: Math.round((r.progress ?? 0) * 100) })}</span>
              </a>
            </li>
          ))}
        </ul>
      )}
      <div class="stats">
        <div class="stat" data-testid="stat-today">
          <h2>{t('home.today')}</h2>
          <p>{t('home.todayMinutes', { minutes: stats.todayMinutes, goal: goals.daily_goal_minutes })}</p>
          <Bar value={stats.todayMinutes} max={goals.daily_goal_minutes} label={t('home.todayMinutes', { minutes: stats.todayMinutes, goal: goals.daily_goal_minutes })} />
        </div>
        <div class="stat">
          <h2>{t('home.streak')}</h2>
          <p>{t('home.days', { count: stats.currentStreak })}</p>
          <h2>{t('home.longest')}</h2>
          <p>{t('home.days', { count: stats.longestStreak })}</p>
        </div>
        <div class="stat" data-testid="stat-year">
          <h2>{t('home.year')}</h2>
          <p>{t('home.yearBooks', { count: stats.finishedThisYear, goal: goals.yearly_goal_books })}</p>
          <Bar value={stats.finishedThisYear} max={goals.yearly_goal_books} label={t('home.yearBooks', { count: stats.finishedThisYear, goal: goals.yearly_goal_books })} />
        </div>
        <div class="stat wide">
          <h2>{t('home.week')}</h2>
          <svg class="week-chart" viewBox="0 0 280 120" role="img" aria-label={`${t('home.minutesAxis')}: ${stats.week.join(', ')}`}>
            {stats.week.map((m, i) => {
              const h = weekMax > 0 ? (m / weekMax) * 90 : 0;
              return (
                <g>
                  <rect x={10 + i * 38} y={100 - h} width={26} height={h} rx={3} class="bar" />
                  <text x={23 + i * 38} y={115} text-anchor="middle" class="axis">{weekdays[i]}</text>
                  {m > 0 && <text x={23 + i * 38} y={96 - h} text-anchor="middle" class="axis">{m}</text>}
                </g>
              );
            })}
            <line x1={5} x2={275} y1={100 - (goals.daily_goal_minutes / weekMax) * 90} y2={100 - (goals.daily_goal_minutes / weekMax) * 90} class="goal" />
          </svg>
        </div>
      </div>
    </section>
  );
}
