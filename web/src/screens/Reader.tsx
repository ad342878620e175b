import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { bookFile } from '../bookcache';
import { ctx } from '../ctx';
import { database } from '../db/database';
import { useQuery } from '../db/hooks';
import type { BookRow, BookmarkRow, HighlightRow, NoteRow } from '../db/schema';
import {
  HIGHLIGHT_COLOURS,
  addBookmark,
  addHighlight,
  addNote,
  effectiveReading,
  markFinished,
  saveProgress,
  saveReading,
  softDelete,
  startSession,
  touchSession,
  type HighlightColour,
  type ReadingSettings,
} from '../db/writes';
import { t, type MessageKey } from '../i18n';
import { navigate } from '../router';
import { openEngine, type Engine, type Flow, type Location, type Look, type Selection, type Target } from '../reader/engine';

export const THEMES: Record<string, { background: string; color: string }> = {
  white: { background: '#ffffff', color: '#1f1f1f' },
  sepia: { background: '#f4ecd8', color: '#5b4636' },
  toffee: { background: '#e6d3b3', color: '#3e2c1c' },
  gray: { background: '#d9d9d9', color: '#222222' },
  dark: { background: '#2b2b2b', color: '#dddddd' },
  black: { background: '#000000', color: '#cccccc' },
};

export const FONTS: Record<string, { css: string; label: MessageKey }> = {
  serif: { css: 'Georgia, "Times New Roman", serif', label: 'font.serif' },
  sans: { css: 'system-ui, "Helvetica Neue", Arial, sans-serif', label: 'font.sans' },
  'zh-serif': { css: '"Noto Serif CJK SC", "Source Han Serif SC", "Songti SC", SimSun, serif', label: 'font.zhSerif' },
  'zh-sans': { css: '"Noto Sans CJK SC", "WenQuanYi Micro Hei", "PingFang SC", "Microsoft YaHei", sans-serif', label: 'font.zhSans' },
};

function lookOf(s: ReadingSettings): Look {
  const theme = THEMES[s.theme_id] ?? THEMES.white ?? { background: '#fff', color: '#000' };
  return {
    ...theme,
    fontFamily: FONTS[s.font_family]?.css ?? s.font_family,
    fontSize: s.font_size,
    lineHeight: s.line_height,
    paragraphSpacing: s.paragraph_spacing,
    marginPercent: s.margin_horizontal,
    textAlign: s.text_align,
  };
}

type Panel = 'toc' | 'marks' | 'bookmarks' | 'settings' | null;

const SAVE_DELAY_MS = 1_000;
const HEARTBEAT_MS = 15_000;

export function Reader({ bookId, cfi, page }: { bookId: string; cfi: string | null; page: number | null }) {
  const book = useQuery<BookRow>('SELECT * FROM books WHERE id = ?', [bookId]).rows[0];
  const highlights = useQuery<HighlightRow>('SELECT * FROM highlights WHERE book_id = ? AND (is_deleted IS NULL OR is_deleted = 0) ORDER BY created_at', [bookId]).rows;
  const notes = useQuery<NoteRow>('SELECT * FROM notes WHERE book_id = ? AND (is_deleted IS NULL OR is_deleted = 0) ORDER BY created_at', [bookId]).rows;
  const bookmarks = useQuery<BookmarkRow>('SELECT * FROM bookmarks WHERE book_id = ? AND (is_deleted IS NULL OR is_deleted = 0) ORDER BY created_at', [bookId]).rows;
  const { rows: settingsRows, loading: settingsLoading } = useQuery<ReadingSettings & { book_id: string | null }>(
    'SELECT * FROM reading_settings WHERE (book_id = ? OR book_id IS NULL) AND (is_deleted IS NULL OR is_deleted = 0)',
    [bookId],
  );
  const finished = useQuery<{ finished_at: string | null }>('SELECT finished_at FROM reading_progress WHERE book_id = ? LIMIT 1', [bookId]).rows[0]?.finished_at;
  const settings = useMemo(
    () => effectiveReading(settingsRows.find((r) => r.book_id === bookId) ?? null, settingsRows.find((r) => r.book_id == null) ?? null),
    [settingsRows, bookId],
  );

  const host = useRef<HTMLDivElement>(null);
  const engine = useRef<Engine | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loc, setLoc] = useState<Location | null>(null);
  const [selection, setSelection] = useState<Selection | null>(null);
  const [noteDraft, setNoteDraft] = useState<string | null>(null);
  const [panel, setPanel] = useState<Panel>(null);
  const [ready, setReady] = useState(false);
  // Paginated or scrolled: a choice of this device (reading_settings has no column for it).
  const [flow, setFlowState] = useState<Flow>(localStorage.getItem('athena.flow') === 'scrolled' ? 'scrolled' : 'paginated');
  const setFlow = (f: Flow) => {
    localStorage.setItem('athena.flow', f);
    setFlowState(f);
  };
  const saveTimer = useRef<number | undefined>(undefined);
  const pending = useRef<Location | null>(null);
  const lastLoc = useRef<Location | null>(null);

  const kind: 'epub' | 'pdf' | null = book ? (book.file_type === 'pdf' ? 'pdf' : book.file_type === 'epub' || book.converted_epub_key ? 'epub' : null) : null;

  const flush = () => {
    window.clearTimeout(saveTimer.current);
    const l = pending.current;
    pending.current = null;
    if (l) void saveProgress(ctx(), bookId, { progress: l.progress, cfi: l.cfi, page: l.page, total: l.total });
  };

  // Open the book once its row and file are here, at the saved position (or the one asked for).
  useEffect(() => {
    // The book opens with its reading settings already applied: a layout change after opening would
    // move the page away from the saved position.
    if (!book || !host.current || settingsLoading) return;
    if (!kind) {
      setError(t('reader.unsupported'));
      return;
    }
    let cancelled = false;
    let opened: Engine | null = null;
    // Performance marks (the e2e suite's open-time figures): the open starts; each location shown (with its CFI/page).
    performance.mark('athena:reader-open');
    (async () => {
      const data = await bookFile(bookId);
      if (cancelled) return;
      if (!data) {
        setError(t('reader.noFile'));
        return;
      }
      const saved = await database().getOptional<{ last_position: string | null; last_location: string | null }>(
        'SELECT last_position, last_location FROM reading_progress WHERE book_id = ? LIMIT 1',
        [bookId],
      );
      let savedPage: number | null = null;
      try {
        savedPage = saved?.last_location ? ((JSON.parse(saved.last_location) as { current?: number }).current ?? null) : null;
      } catch {
        savedPage = null;
      }
      // Reopened for a layout change: where the reader was; first open: the link's target, else the saved position.
      const here = lastLoc.current;
      const start: Target = here ? { cfi: here.cfi, page: here.page } : cfi || page ? { cfi, page } : { cfi: saved?.last_position ?? null, page: savedPage };
      const e = await openEngine(kind, host.current as HTMLElement, data, start, lookOf(settings), flow, {
        onLocation: (l) => {
          performance.mark('athena:reader-location', { detail: { cfi: l.cfi, page: l.page } });
          // epub.js renders each section in an iframe: give it a name for assistive technology.
          for (const f of host.current?.querySelectorAll('iframe') ?? []) f.title = t('reader.content', { title: book.title ?? '' });
          setLoc(l);
          lastLoc.current = l;
          pending.current = l;
          window.clearTimeout(saveTimer.current);
          saveTimer.current = window.setTimeout(flush, SAVE_DELAY_MS);
        },
        onSelection: (s) => setSelection(s),
        onKey: (k) => onKey(k),
      });
      if (cancelled) {
        e.destroy();
        return;
      }
      opened = e;
      engine.current = e;
      setReady(true);
    })().catch((err) => !cancelled && setError(t('reader.loadFailed', { message: err instanceof Error ? err.message : String(err) })));
    return () => {
      cancelled = true;
      flush();
      opened?.destroy();
      engine.current = null;
      setReady(false);
    };
  }, [book?.id, kind, flow, settingsLoading]);

  // Reading-session heartbeat while the reader is open and visible.
  useEffect(() => {
    let id: string | null = null;
    let total = 0;
    let last = Date.now();
    const tick = (active: boolean) => {
      const now = Date.now();
      if (document.visibilityState === 'visible') total += now - last;
      last = now;
      if (id) void touchSession(ctx(), id, total, active);
    };
    void startSession(ctx(), bookId).then((s) => (id = s));
    const timer = window.setInterval(() => tick(true), HEARTBEAT_MS);
    return () => {
      window.clearInterval(timer);
      tick(false);
    };
  }, [bookId]);

  useEffect(() => engine.current?.setLook(lookOf(settings)), [settings, ready]);

  useEffect(() => {
    engine.current?.setMarks(highlights.map((h) => ({ id: h.id, cfiStart: h.position_start_cfi, cfiEnd: h.position_end_cfi, page: h.page_number, text: h.text, color: h.color ?? 'yellow' })));
  }, [highlights, ready]);

  const onKey = (k: string) => {
    if (k === 'ArrowRight' || k === 'PageDown') void engine.current?.next();
    if (k === 'ArrowLeft' || k === 'PageUp') void engine.current?.prev();
    if (k === 'Escape') setPanel(null);
  };
  useEffect(() => {
    const h = (e: KeyboardEvent) => {
      const target = e.target as HTMLElement | null;
      if (target && ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName)) return;
      onKey(e.key);
    };
    window.addEventListener('keydown', h);
    return () => window.removeEventListener('keydown', h);
  }, []);

  const highlight = async (colour: HighlightColour) => {
    if (!selection) return;
    await addHighlight(ctx(), bookId, selection.text, colour, { cfiStart: selection.cfiStart, cfiEnd: selection.cfiEnd, page: selection.page });
    engine.current?.clearSelection();
    setSelection(null);
  };
  const saveNote = async () => {
    if (!selection || !noteDraft?.trim()) return;
    await addNote(ctx(), bookId, noteDraft.trim(), { cfiStart: selection.cfiStart, page: selection.page });
    await addHighlight(ctx(), bookId, selection.text, 'yellow', { cfiStart: selection.cfiStart, cfiEnd: selection.cfiEnd, page: selection.page });
    setNoteDraft(null);
    setSelection(null);
    engine.current?.clearSelection();
  };
  const bookmark = async () => {
    if (!loc) return;
    const title = kind === 'pdf' ? t('reader.page', { page: loc.page ?? 0, total: loc.total ?? 0 }) : `${book?.title ?? ''} · ${Math.round(loc.progress * 100)}%`;
    await addBookmark(ctx(), bookId, title, { cfiStart: loc.cfi, page: loc.page });
  };
  const goTo = (target: Target) => {
    void engine.current?.goTo(target);
    setPanel(null);
  };
  const toggle = (p: Panel) => setPanel((cur) => (cur === p ? null : p));
  // Settings go to this book's row, or to the global row (book_id NULL) when "all books" is chosen.
  const [scopeAll, setScopeAll] = useState(false);
  const setting = (patch: Partial<ReadingSettings>) => void saveReading(ctx(), scopeAll ? null : bookId, patch);

  return (
    <div class="reader" style={{ background: lookOf(settings).background, color: lookOf(settings).color }}>
      <header class="reader-bar">
        <button type="button" onClick={() => { flush(); navigate('/library'); }}>{t('reader.back')}</button>
        <h1 class="reader-title">{book?.title ?? ''}</h1>
        <button type="button" aria-expanded={panel === 'toc'} onClick={() => toggle('toc')}>{t('reader.toc')}</button>
        <button type="button" aria-expanded={panel === 'marks'} onClick={() => toggle('marks')}>{t('reader.highlights')}</button>
        <button type="button" aria-expanded={panel === 'bookmarks'} onClick={() => toggle('bookmarks')}>{t('reader.bookmarks')}</button>
        <button type="button" onClick={() => void bookmark()} data-testid="add-bookmark">{t('reader.bookmark')}</button>
        <button type="button" aria-expanded={panel === 'settings'} onClick={() => toggle('settings')}>{t('reader.settings')}</button>
        <button type="button" aria-pressed={Boolean(finished)} onClick={() => void markFinished(ctx(), bookId, !finished)}>
          {finished ? t('reader.finished') : t('reader.markFinished')}
        </button>
      </header>
      <div class="reader-body">
        <button type="button" class="turn prev" onClick={() => void engine.current?.prev()} aria-label={t('reader.prev')}>‹</button>
        <div class="page-host" ref={host} data-testid="page-host" data-kind={kind ?? ''} />
        <button type="button" class="turn next" onClick={() => void engine.current?.next()} aria-label={t('reader.next')}>›</button>
        {panel && (
          <aside class="panel" aria-label={t('reader.panel')}>
            {panel === 'toc' && (
              <ul class="toc">
                {(engine.current?.toc() ?? []).map((i) => (
                  <li style={{ paddingLeft: `${i.depth}em` }}>
                    <button type="button" class="link" onClick={() => goTo(kind === 'pdf' ? { page: Number(i.target) } : { href: i.target })}>{i.label}</button>
                  </li>
                ))}
              </ul>
            )}
            {panel === 'marks' && (
              <ul class="marks" data-testid="marks">
                {highlights.length + notes.length === 0 && <li>{t('reader.none')}</li>}
                {notes.map((n) => (
                  <li data-testid="note-item">
                    <span class="note-text">{n.content}</span>
                    <button type="button" class="link" onClick={() => goTo({ cfi: n.position_cfi, page: n.page_number })}>{t('reader.goTo')}</button>
                    <button type="button" class="link" onClick={() => void softDelete(ctx(), 'notes', n.id)}>{t('reader.delete')}</button>
                  </li>
                ))}
                {highlights.map((h) => (
                  <li data-testid="highlight-item" data-color={h.color ?? ''}>
                    <span class={`swatch ${h.color ?? 'yellow'}`} aria-hidden="true" />
                    <span>{h.text}</span>
                    <button type="button" class="link" onClick={() => goTo({ cfi: h.position_start_cfi, page: h.page_number })}>{t('reader.goTo')}</button>
                    <button type="button" class="link" onClick={() => void softDelete(ctx(), 'highlights', h.id)}>{t('reader.delete')}</button>
                  </li>
                ))}
              </ul>
            )}
            {panel === 'bookmarks' && (
              <ul data-testid="bookmarks">
                {bookmarks.length === 0 && <li>{t('reader.none')}</li>}
                {bookmarks.map((b) => (
                  <li data-testid="bookmark-item">
                    <button type="button" class="link" onClick={() => goTo({ cfi: b.position_cfi, page: b.page_number })}>{b.title}</button>
                    <button type="button" class="link" onClick={() => void softDelete(ctx(), 'bookmarks', b.id)}>{t('reader.delete')}</button>
                  </li>
                ))}
              </ul>
            )}
            {panel === 'settings' && (
              <div class="settings-panel">
                <fieldset>
                  <legend>{t('reader.theme')}</legend>
                  {Object.keys(THEMES).map((id) => (
                    <button type="button" aria-pressed={settings.theme_id === id} onClick={() => setting({ theme_id: id })}>{t(`theme.${id}` as MessageKey)}</button>
                  ))}
                </fieldset>
                <label>{t('reader.font')}{' '}
                  <select value={settings.font_family} onChange={(e) => setting({ font_family: e.currentTarget.value })}>
                    {Object.entries(FONTS).map(([id, f]) => <option value={id}>{t(f.label)}</option>)}
                  </select>
                </label>
                <label>{t('reader.fontSize')} ({settings.font_size})
                  <input type="range" min={12} max={32} step={1} value={settings.font_size} onChange={(e) => setting({ font_size: Number(e.currentTarget.value) })} />
                </label>
                <label>{t('reader.lineHeight')} ({settings.line_height})
                  <input type="range" min={1} max={2.4} step={0.1} value={settings.line_height} onChange={(e) => setting({ line_height: Number(e.currentTarget.value) })} />
                </label>
                <label>{t('reader.paragraphSpacing')} ({settings.paragraph_spacing})
                  <input type="range" min={0} max={2} step={0.1} value={settings.paragraph_spacing} onChange={(e) => setting({ paragraph_spacing: Number(e.currentTarget.value) })} />
                </label>
                <label>{t('reader.margins')} ({settings.margin_horizontal}%)
                  <input type="range" min={0} max={20} step={1} value={settings.margin_horizontal} onChange={(e) => setting({ margin_horizontal: Number(e.currentTarget.value) })} />
                </label>
                <label>{t('reader.align')}{' '}
                  <select value={settings.text_align} onChange={(e) => setting({ text_align: e.currentTarget.value })}>
                    <option value="start">{t('reader.alignStart')}</option>
                    <option value="justify">{t('reader.alignJustify')}</option>
                  </select>
                </label>
                <fieldset>
                  <legend>{t('reader.layout')}</legend>
                  <button type="button" aria-pressed={flow === 'paginated'} onClick={() => setFlow('paginated')}>{t('reader.paginated')}</button>
                  <button type="button" aria-pressed={flow === 'scrolled'} onClick={() => setFlow('scrolled')}>{t('reader.scrolled')}</button>
                </fieldset>
                <label class="inline">
                  <input type="checkbox" checked={scopeAll} onChange={(e) => setScopeAll(e.currentTarget.checked)} />
                  {t('reader.applyAll')}
                </label>
              </div>
            )}
          </aside>
        )}
      </div>
      <footer class="reader-foot">
        {error ? <p role="alert" class="error">{error}</p> : <span data-testid="location" data-cfi={loc?.cfi ?? ''} data-page={loc?.page ?? ''} data-progress={loc?.progress ?? ''}>{loc ? (kind === 'pdf' ? t('reader.page', { page: loc.page ?? 0, total: loc.total ?? 0 }) : t('reader.progress', { percent: Math.round(loc.progress * 100) })) : t('app.loading')}</span>}
        {!selection && ready && <span class="hint">{t('reader.selectionHint')}</span>}
        {selection && (
          <div class="selection-bar" role="toolbar" aria-label={t('reader.highlight')}>
            {HIGHLIGHT_COLOURS.map((c) => (
              <button type="button" class={`swatch ${c}`} data-colour={c} aria-label={t('reader.colour', { colour: t(`colour.${c}` as MessageKey) })} onClick={() => void highlight(c)} />
            ))}
            {noteDraft === null ? (
              <button type="button" onClick={() => setNoteDraft('')}>{t('reader.addNote')}</button>
            ) : (
              <>
                <textarea aria-label={t('reader.notePlaceholder')} placeholder={t('reader.notePlaceholder')} value={noteDraft} onInput={(e) => setNoteDraft(e.currentTarget.value)} />
                <button type="button" onClick={() => void saveNote()}>{t('reader.saveNote')}</button>
              </>
            )}
            <button type="button" class="link" onClick={() => { setSelection(null); setNoteDraft(null); engine.current?.clearSelection(); }}>{t('reader.cancel')}</button>
          </div>
        )}
      </footer>
    </div>
  );
}
