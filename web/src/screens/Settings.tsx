import { useEffect, useState } from 'preact/hooks';
import { authJson, deviceId, logout, type Session } from '../api';
import { clearBookCache } from '../bookcache';
import { ctx } from '../ctx';
import { closeDatabase } from '../db/database';
import { useQuery } from '../db/hooks';
import { parseGoals, saveUserSettings } from '../db/writes';
import { savedLang, setLang, t, type Lang } from '../i18n';
import { navigate } from '../router';

interface LoginSession {
  id: string;
  user_agent: string;
  last_used_at: string;
  current: boolean;
}

export function Settings({ session, onSignedOut }: { session: Session; onSignedOut: () => void }) {
  const settings = useQuery<{ settings_json: string | null }>('SELECT settings_json FROM user_settings LIMIT 1').rows[0];
  const goals = parseGoals(settings?.settings_json);
  const [daily, setDaily] = useState<string | null>(null);
  const [yearly, setYearly] = useState<string | null>(null);
  const [saved, setSaved] = useState(false);
  const [choice, setChoice] = useState<Lang | 'auto'>(savedLang() ?? 'auto');
  const [sessions, setSessions] = useState<LoginSession[] | null>(null);
  const loadSessions = () =>
    authJson<LoginSession[]>('GET', '/api/v1/auth/sessions')
      .then(setSessions)
      .catch(() => setSessions(null));
  useEffect(() => {
    void loadSessions();
  }, []);
  const endSession = async (id: string) => {
    await authJson('POST', '/api/v1/auth/logout', { session_id: id });
    await loadSessions();
  };

  const saveGoals = async (e: Event) => {
    e.preventDefault();
    await saveUserSettings(ctx(), {
      daily_goal_minutes: Number(daily ?? goals.daily_goal_minutes),
      yearly_goal_books: Number(yearly ?? goals.yearly_goal_books),
    });
    setSaved(true);
  };
  const signOut = async () => {
    try {
      await logout();
    } catch (e) {
      console.warn('logout request failed; signing out locally', e);
    }
    await closeDatabase(true);
    await clearBookCache();
    onSignedOut();
    navigate('/', true);
  };

  return (
    <section class="settings">
      <h1>{t('settings.title')}</h1>
      <label>{t('settings.language')}{' '}
        <select
          data-testid="language"
          value={choice}
          onChange={(e) => {
            const v = e.currentTarget.value as Lang | 'auto';
            setChoice(v);
            setLang(v === 'auto' ? null : v);
          }}
        >
          <option value="auto">{t('settings.langAuto')}</option>
          <option value="en">English</option>
          <option value="zh">中文</option>
        </select>
      </label>
      <form onSubmit={saveGoals} class="goals">
        <label>{t('settings.dailyGoal')}{' '}
          <input type="number" min={1} max={1440} value={daily ?? goals.daily_goal_minutes} onInput={(e) => { setDaily(e.currentTarget.value); setSaved(false); }} />
        </label>
        <label>{t('settings.yearlyGoal')}{' '}
          <input type="number" min={1} max={1000} value={yearly ?? goals.yearly_goal_books} onInput={(e) => { setYearly(e.currentTarget.value); setSaved(false); }} />
        </label>
        <button type="submit">{t('settings.save')}</button>
        {saved && <span role="status">{t('settings.saved')}</span>}
      </form>
      <p>{t('settings.account', { email: session.user.email })}</p>
      <p class="muted">{t('settings.device', { device: deviceId() })}</p>
      {sessions && (
        <section aria-labelledby="sessions-h">
          <h2 id="sessions-h">{t('settings.sessions')}</h2>
          <ul class="sessions" data-testid="sessions">
            {sessions.map((x) => (
              <li>
                <span>{x.user_agent || '—'}</span>{' '}
                <span class="muted">{new Date(x.last_used_at).toLocaleString()}</span>{' '}
                {x.current ? <strong>{t('settings.thisSession')}</strong> : <button type="button" class="small" onClick={() => void endSession(x.id)}>{t('settings.endSession')}</button>}
              </li>
            ))}
          </ul>
        </section>
      )}
      <button type="button" onClick={() => void signOut()}>{t('settings.logout')}</button>
    </section>
  );
}
