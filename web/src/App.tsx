import { useEffect, useState } from 'preact/hooks';
import { loadSession, type Session } from './api';
import { closeDatabase, openDatabase, startSync } from './db/database';
import { useSyncStatus } from './db/hooks';
import { onLangChange, t } from './i18n';
import { match, navigate, usePath } from './router';
import { Login } from './screens/Login';
import { Home } from './screens/Home';
import { Library, SnapshotLibrary } from './screens/Library';
import { readSnapshot } from './snapshot';
import { Reader } from './screens/Reader';
import { BookDetails } from './screens/BookDetails';
import { Notes } from './screens/Notes';
import { Search } from './screens/Search';
import { Settings } from './screens/Settings';

export function App() {
  const [session, setSession] = useState<Session | null>(loadSession());
  const [dbReady, setDbReady] = useState(false);
  const [, setLangTick] = useState(0);
  const path = usePath();
  useEffect(() => onLangChange(() => setLangTick((n) => n + 1)), []);
  useEffect(() => {
    // Another tab signing out (or a dead refresh token) ends this one's session too.
    const onStorage = () => setSession(loadSession());
    window.addEventListener('storage', onStorage);
    window.addEventListener('athena-session', onStorage);
    return () => {
      window.removeEventListener('storage', onStorage);
      window.removeEventListener('athena-session', onStorage);
    };
  }, []);
  useEffect(() => {
    let cancelled = false;
    setDbReady(false);
    if (!session) {
      void closeDatabase();
      return;
    }
    openDatabase(session.user.id)
      .then(() => !cancelled && setDbReady(true))
      .catch((e) => console.error('could not open the local database', e));
    return () => {
      cancelled = true;
    };
  }, [session?.user.id]);

  if (!session) {
    return <Login onSignedIn={(s) => { setSession(s); navigate('/library', true); }} />;
  }
  if (!dbReady) {
    // While the local database opens, the library is drawn from its paint cache (snapshot.ts), if this
    // user has one; the live screen replaces it once the database is ready.
    const snapshot = match('/library', path) ? readSnapshot(session.user.id) : null;
    if (snapshot) {
      return (
        <div class="shell">
          <main id="main"><SnapshotLibrary books={snapshot} /></main>
        </div>
      );
    }
    return <p class="loading" role="status">{t('app.loading')}</p>;
  }
  return <Shell session={session} onSignedOut={() => setSession(null)} />;
}

function Shell({ session, onSignedOut }: { session: Session; onSignedOut: () => void }) {
  const path = usePath();
  // Effects run children first: the screen's queries are queued before sync starts.
  useEffect(() => startSync(), [session.user.id]);
  let screen;
  let m: Record<string, string> | null;
  if ((m = match('/reader/:id', path))) screen = <Reader key={m.id} bookId={m.id ?? ''} cfi={m['?cfi'] ?? null} page={m['?page'] ? Number(m['?page']) : null} />;
  else if ((m = match('/book/:id', path))) screen = <BookDetails key={m.id} bookId={m.id ?? ''} />;
  else if (match('/library', path) || match('/library/deleted', path)) screen = <Library deletedView={path.startsWith('/library/deleted')} />;
  else if (match('/notes', path)) screen = <Notes />;
  else if (match('/search', path)) screen = <Search />;
  else if (match('/settings', path)) screen = <Settings session={session} onSignedOut={onSignedOut} />;
  else screen = <Home />;
  const inReader = path.startsWith('/reader/');
  return (
    <div class={inReader ? 'shell reading' : 'shell'}>
      {!inReader && <Nav path={path} />}
      <main id="main">{screen}</main>
    </div>
  );
}

function Nav({ path }: { path: string }) {
  const status = useSyncStatus();
  const items: Array<[string, Parameters<typeof t>[0]]> = [
    ['/', 'nav.home'],
    ['/library', 'nav.library'],
    ['/notes', 'nav.notes'],
    ['/search', 'nav.search'],
    ['/settings', 'nav.settings'],
  ];
  const active = (p: string) => (p === '/' ? path === '/' || path === '' : path.startsWith(p));
  return (
    <header class="topbar">
      <span class="brand">{t('app.name')}</span>
      <nav aria-label={t('nav.main')}>
        {items.map(([p, k]) => (
          <a href={p} aria-current={active(p) ? 'page' : undefined} onClick={(e) => { e.preventDefault(); navigate(p); }}>
            {t(k)}
          </a>
        ))}
      </nav>
      <span class="sync-state" role="status" data-testid="sync-state" data-connected={String(status.connected)}>
        {status.connected ? (status.dataFlowStatus?.uploading || status.dataFlowStatus?.downloading ? t('app.syncing') : t('app.synced')) : t('app.offline')}
      </span>
    </header>
  );
}
