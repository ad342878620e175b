import { useState } from 'preact/hooks';
import { ApiError, authJson } from '../api';
import { t, type MessageKey } from '../i18n';
import { navigate } from '../router';

export interface Hit {
  kind: string;
  book_id: string;
  book_title: string;
  title: string | null;
  /** an EPUB CFI or `page:N` */
  location: string | null;
  snippet: string;
  score: number;
}

/** The reader URL that opens a hit's location. */
export function readerUrlForHit(h: Pick<Hit, 'book_id' | 'location'>): string {
  const loc = h.location ?? '';
  if (loc.startsWith('page:')) return `/reader/${h.book_id}?page=${Number(loc.slice(5)) || 1}`;
  if (loc.startsWith('epubcfi(')) return `/reader/${h.book_id}?cfi=${encodeURIComponent(loc)}`;
  return `/reader/${h.book_id}`;
}

/** The snippet as text runs, `mark: true` for the server's <mark>ed terms (the rest is escaped HTML). */
export function snippetParts(snippet: string): Array<{ text: string; mark: boolean }> {
  const decode = (s: string) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&#x27;/g, "'").replace(/&amp;/g, '&');
  const out: Array<{ text: string; mark: boolean }> = [];
  const re = /<mark>(.*?)<\/mark>/gs;
  let last = 0;
  for (let m = re.exec(snippet); m; m = re.exec(snippet)) {
    if (m.index > last) out.push({ text: decode(snippet.slice(last, m.index)), mark: false });
    out.push({ text: decode(m[1] ?? ''), mark: true });
    last = m.index + m[0].length;
  }
  if (last < snippet.length) out.push({ text: decode(snippet.slice(last)), mark: false });
  return out;
}

/** Keyword, by meaning (the server's embedding model), or both fused. */
export type SearchMode = 'keyword' | 'semantic' | 'hybrid';

export function searchUrl(q: string, mode: SearchMode): string {
  return `/api/v1/search?q=${encodeURIComponent(q.trim())}&limit=50&mode=${mode}`;
}

export function Search() {
  const [q, setQ] = useState(new URLSearchParams(location.search).get('q') ?? '');
  const [mode, setMode] = useState<SearchMode>('hybrid');
  const [hits, setHits] = useState<Hit[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const run = async (e: Event) => {
    e.preventDefault();
    if (!q.trim()) return;
    if (!navigator.onLine) {
      setError(t('search.offline'));
      return;
    }
    setError(null);
    try {
      let data: { items: Hit[] };
      try {
        data = await authJson<{ items: Hit[] }>('GET', searchUrl(q, mode));
      } catch (err) {
        // A server without the embedding model answers 503 to meaning-based modes: fall back to words.
        if (mode === 'keyword' || !(err instanceof ApiError && err.status === 503)) throw err;
        data = await authJson<{ items: Hit[] }>('GET', searchUrl(q, 'keyword'));
      }
      setHits(data.items ?? []);
    } catch (err) {
      setError(t('search.failed', { message: err instanceof Error ? err.message : String(err) }));
    }
  };
  return (
    <section class="search">
      <h1>{t('search.title')}</h1>
      <form onSubmit={run} role="search">
        <input type="search" aria-label={t('search.query')} placeholder={t('search.query')} value={q} onInput={(e) => setQ(e.currentTarget.value)} />
        <select aria-label={t('search.mode')} value={mode} onChange={(e) => setMode(e.currentTarget.value as SearchMode)}>
          <option value="hybrid">{t('search.mode.hybrid')}</option>
          <option value="keyword">{t('search.mode.keyword')}</option>
          <option value="semantic">{t('search.mode.semantic')}</option>
        </select>
        <button type="submit">{t('search.submit')}</button>
      </form>
      {error && <p role="alert" class="error">{error}</p>}
      {hits && hits.length === 0 && <p>{t('search.none')}</p>}
      {hits && (
        <ol class="hits">
          {hits.map((h) => (
            <li data-testid="search-hit">
              <a href={readerUrlForHit(h)} onClick={(e) => { e.preventDefault(); navigate(readerUrlForHit(h)); }}>
                <strong>{h.book_title}</strong>{h.title ? ` · ${h.title}` : ''}
              </a>{' '}
              <span class="muted">{t(`search.kind.${h.kind}` as MessageKey)}</span>
              <p>{snippetParts(h.snippet).map((p) => (p.mark ? <mark>{p.text}</mark> : p.text))}</p>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
