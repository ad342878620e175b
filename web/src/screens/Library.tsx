import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { loadSession, mediaUrl } from '../api';
import { ctx } from '../ctx';
import { useQuery } from '../db/hooks';
import type { BookRow } from '../db/schema';
import { createShelf, setBookDeleted, setOnShelf } from '../db/writes';
import { t, type MessageKey } from '../i18n';
import { navigate } from '../router';
import { uploadBook, type UploadState } from '../upload';
import { useWindowed } from '../virtual';
import { reasonKey, useProcessingError, type ProcessingError } from '../processing';
import { readSnapshot, writeSnapshot, type SnapshotBook } from '../snapshot';

/** Card geometry shared with styles.css (.books.grid / .books.list). */
const GRID_LAYOUT = { itemWidth: 160, rowHeight: 420, gap: 16 };
const LIST_LAYOUT = { itemWidth: null, rowHeight: 96, gap: 0 };

interface LibraryBook extends BookRow {
  progress: number | null;
  finished_at: string | null;
}

const LIST_SQL = `SELECT b.*, p.progress AS progress, p.finished_at AS finished_at
  FROM books b LEFT JOIN reading_progress p ON p.book_id = b.id
  WHERE b.deleted_at IS NULL ORDER BY b.created_at DESC`;
const SHELF_SQL = `SELECT b.*, p.progress AS progress, p.finished_at AS finished_at
  FROM books b JOIN shelf_books sb ON sb.book_id = b.id LEFT JOIN reading_progress p ON p.book_id = b.id
  WHERE b.deleted_at IS NULL AND sb.shelf_id = ? ORDER BY b.created_at DESC`;
const DELETED_SQL = `SELECT b.*, NULL AS progress, NULL AS finished_at FROM books b WHERE b.deleted_at IS NOT NULL ORDER BY b.deleted_at DESC`;

/** The processing state shown on a card, or null when the book is ready. */
export function statusKey(b: Pick<BookRow, 'conversion_status' | 'ocr_status' | 'is_digitalized' | 'file_type'>): MessageKey | null {
  if (b.conversion_status === 'pending' || b.conversion_status === 'processing') return 'status.converting';
  if (b.conversion_status === 'failed') return 'status.conversionFailed';
  if (b.ocr_status === 'pending' || b.ocr_status === 'processing') return 'status.ocrRunning';
  if (b.ocr_status === 'failed') return 'status.ocrFailed';
  if (b.file_type === 'pdf' && b.is_digitalized === 0 && b.ocr_status !== 'completed') return 'status.ocrSuggested';
  return null;
}

interface UploadItem {
  name: string;
  state: UploadState;
}

interface Shelf {
  id: string;
  name: string;
}

export function Library({ deletedView }: { deletedView: boolean }) {
  const [shelf, setShelf] = useState<string>('');
  const { rows, loading } = useQuery<LibraryBook>(
    deletedView ? DELETED_SQL : shelf ? SHELF_SQL : LIST_SQL,
    !deletedView && shelf ? [shelf] : [],
  );
  const shelves = useQuery<Shelf>('SELECT id, name FROM shelves WHERE is_deleted IS NULL OR is_deleted = 0 ORDER BY sort_order, name').rows;
  const [newShelf, setNewShelf] = useState<string | null>(null);
  const [view, setView] = useState<'grid' | 'list'>((localStorage.getItem('athena.libraryView') as 'grid' | 'list') || 'grid');
  const [sort, setSort] = useState<'recent' | 'title' | 'author'>('recent');
  const [filter, setFilter] = useState('');
  const [uploads, setUploads] = useState<UploadItem[]>([]);
  const [dragging, setDragging] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  const listRef = useRef<HTMLUListElement>(null);

  useEffect(() => {
    if (!loading && rows.length > 0 && performance.getEntriesByName('athena:library-shown').length === 0) performance.mark('athena:library-shown');
  }, [loading, rows.length]);

  // The paint cache of the next start (snapshot.ts): the whole library's first books, as just read from
  // the local database. Written for the signed-in user only, and never read back into any data.
  useEffect(() => {
    const userId = loadSession()?.user.id;
    if (loading || deletedView || shelf || !userId) return;
    writeSnapshot(userId, rows, () => loadSession()?.user.id ?? null);
  }, [rows, loading, deletedView, shelf]);

  const books = useMemo(() => {
    const f = filter.trim().toLowerCase();
    const list = rows.filter((b) => !f || (b.title ?? '').toLowerCase().includes(f) || (b.author ?? '').toLowerCase().includes(f));
    if (sort === 'title') list.sort((a, b) => (a.title ?? '').localeCompare(b.title ?? ''));
    if (sort === 'author') list.sort((a, b) => (a.author ?? '').localeCompare(b.author ?? ''));
    return list;
  }, [rows, sort, filter]);

  // Only the rows near the viewport are in the DOM (fixed card sizes, see styles.css).
  const range = useWindowed(listRef, books.length, view === 'grid' ? GRID_LAYOUT : LIST_LAYOUT);

  const loadingSnapshot = loading && !deletedView && !shelf ? readSnapshot(loadSession()?.user.id ?? '') : null;

  const addFiles = (files: FileList | File[]) => {
    const list = [...files];
    const start = uploads.length;
    setUploads((u) => [...u, ...list.map((f) => ({ name: f.name, state: { phase: 'hashing' } as UploadState }))]);
    list.forEach((file, i) => {
      void uploadBook(file, (state) => setUploads((u) => u.map((item, j) => (j === start + i ? { ...item, state } : item))));
    });
  };

  const chooseView = (v: 'grid' | 'list') => {
    setView(v);
    localStorage.setItem('athena.libraryView', v);
  };

  return (
    <section
      class={dragging ? 'library dragging' : 'library'}
      onDragOver={(e) => { e.preventDefault(); setDragging(true); }}
      onDragLeave={() => setDragging(false)}
      onDrop={(e) => { e.preventDefault(); setDragging(false); if (e.dataTransfer?.files.length) addFiles(e.dataTransfer.files); }}
    >
      <div class="toolbar">
        <h1>{deletedView ? t('library.deleted') : t('library.title')}</h1>
        {deletedView ? (
          <a href="/library" onClick={(e) => { e.preventDefault(); navigate('/library'); }}>{t('library.back')}</a>
        ) : (
          <>
            <button type="button" onClick={() => input.current?.click()}>{t('library.upload')}</button>
            <input ref={input} type="file" multiple hidden data-testid="file-input" accept=".epub,.pdf,.mobi,.azw3,.fb2,.txt,.rtf,.docx,.djvu,application/epub+zip,application/pdf"
              onChange={(e) => { const f = e.currentTarget.files; if (f?.length) addFiles(f); e.currentTarget.value = ''; }} />
            <label class="inline">{t('library.sort')}{' '}
              <select value={sort} onChange={(e) => setSort(e.currentTarget.value as typeof sort)}>
                <option value="recent">{t('library.sortRecent')}</option>
                <option value="title">{t('library.sortTitle')}</option>
                <option value="author">{t('library.sortAuthor')}</option>
              </select>
            </label>
            <input type="search" aria-label={t('library.filter')} placeholder={t('library.filter')} value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
            <div role="group" aria-label={t('library.view')}>
              <button type="button" aria-pressed={view === 'grid'} onClick={() => chooseView('grid')}>{t('library.grid')}</button>
              <button type="button" aria-pressed={view === 'list'} onClick={() => chooseView('list')}>{t('library.list')}</button>
            </div>
            <label class="inline">{t('shelf.shelf')}{' '}
              <select value={shelf} onChange={(e) => setShelf(e.currentTarget.value)} data-testid="shelf-filter">
                <option value="">{t('shelf.all')}</option>
                {shelves.map((s) => <option value={s.id}>{s.name}</option>)}
              </select>
            </label>
            {newShelf === null ? (
              <button type="button" onClick={() => setNewShelf('')}>{t('shelf.new')}</button>
            ) : (
              <form class="inline" onSubmit={(e) => { e.preventDefault(); if (newShelf.trim()) void createShelf(ctx(), newShelf.trim()).then((id) => setShelf(id)); setNewShelf(null); }}>
                <input aria-label={t('shelf.name')} placeholder={t('shelf.name')} value={newShelf} onInput={(e) => setNewShelf(e.currentTarget.value)} />
                <button type="submit">{t('shelf.create')}</button>
              </form>
            )}
            <a href="/library/deleted" onClick={(e) => { e.preventDefault(); navigate('/library/deleted'); }}>{t('library.deleted')}</a>
          </>
        )}
      </div>
      {!deletedView && <p class="drop-hint">{t('library.dropHint')}</p>}
      {uploads.length > 0 && (
        <section aria-label={t('upload.list')} class="uploads">
          <ul>{uploads.map((u) => <UploadRow item={u} />)}</ul>
        </section>
      )}
      {!loading && books.length === 0 && <p class="empty">{deletedView ? t('library.noDeleted') : t('library.empty')}</p>}
      {loadingSnapshot ? (
        // The first query's few milliseconds: keep the snapshot's cards up rather than flash an empty list.
        <SnapshotCards books={loadingSnapshot} />
      ) : (
      <ul
        ref={listRef}
        class={view === 'grid' ? 'books grid' : 'books list'}
        data-testid="books"
        data-source="live"
        data-count={books.length}
        style={{ paddingTop: `${range.padTop}px`, paddingBottom: `${range.padBottom}px` }}
      >
        {books.slice(range.start, range.end).map((b) => (deletedView ? <DeletedCard key={b.id} book={b} /> : <BookCard key={b.id} book={b} shelves={shelves} />))}
      </ul>
      )}
    </section>
  );
}

function UploadRow({ item }: { item: UploadItem }) {
  const s = item.state;
  let label: string;
  let value: number | undefined;
  switch (s.phase) {
    case 'hashing': label = t('upload.hashing'); break;
    case 'uploading': label = t('upload.uploading'); value = s.total ? s.loaded / s.total : 0; break;
    case 'processing': label = t('upload.processing'); value = 1; break;
    case 'done': label = s.how === 'own' ? t('upload.own') : s.how === 'instant' ? t('upload.instant') : t('upload.done'); value = 1; break;
    case 'failed': label = t('upload.failed', { message: s.message }); break;
  }
  return (
    <li data-phase={s.phase} data-testid="upload-row">
      <span class="name">{item.name}</span>
      <progress max={1} value={value} aria-label={`${item.name}: ${label}`} />
      <span class="state">{label}</span>
    </li>
  );
}

function Cover({ book }: { book: LibraryBook }) {
  const title = book.title ?? '';
  if (book.cover_url) return <img class="cover" loading="lazy" alt={t('library.coverOf', { title })} src={mediaUrl(`/api/v1/books/${book.id}/cover`)} />;
  // The initials are drawn by CSS (attr()): decoration, not part of the link's text, whose name is "Open <title>".
  return <div class="cover placeholder" aria-hidden="true" data-initials={title.slice(0, 2)} />;
}

function BookCard({ book, shelves }: { book: LibraryBook; shelves: Shelf[] }) {
  const status = statusKey(book);
  const pct = Math.round((book.progress ?? 0) * 100);
  const open = (e: Event) => { e.preventDefault(); navigate(`/reader/${book.id}`); };
  return (
    <li class="book" data-testid="book-card" data-title={book.title ?? ''} data-id={book.id} data-type={book.file_type ?? ''}>
      <a href={`/reader/${book.id}`} onClick={open} aria-label={t('library.open', { title: book.title ?? '' })}>
        <Cover book={book} />
      </a>
      <div class="meta">
        <a href={`/reader/${book.id}`} onClick={open} class="title">{book.title}</a>
        <span class="author">{book.author || t('library.unknownAuthor')}</span>
        {status !== 'status.conversionFailed' && (
          <>
            <span class="progress-text" data-testid="card-progress">{book.progress ? t('library.progress', { percent: pct }) : t('library.unread')}</span>
            <progress max={100} value={pct} aria-label={t('library.progress', { percent: pct })} />
          </>
        )}
        {status && <span class="status" data-status={status}>{t(status)}</span>}
        <FailureReason book={book} />
        <span class="card-actions">
          <a href={`/book/${book.id}`} onClick={(e) => { e.preventDefault(); navigate(`/book/${book.id}`); }}>{t('details.open')}</a>
          <button type="button" class="small" onClick={() => void setBookDeleted(ctx(), book.id, true)}>{t('library.delete')}</button>
        </span>
        {shelves.length > 0 && (
          <select class="small" aria-label={t('shelf.addTo', { title: book.title ?? '' })} value="" onChange={(e) => { const v = e.currentTarget.value; if (v) void setOnShelf(ctx(), v, book.id, true); }}>
            <option value="">{t('shelf.add')}</option>
            {shelves.map((s) => <option value={s.id}>{s.name}</option>)}
          </select>
        )}
      </div>
    </li>
  );
}

function DeletedCard({ book }: { book: LibraryBook }) {
  return (
    <li class="book" data-testid="deleted-card">
      <Cover book={book} />
      <div class="meta">
        <span class="title">{book.title}</span>
        <button type="button" onClick={() => void setBookDeleted(ctx(), book.id, false)}>{t('library.restore')}</button>
      </div>
    </li>
  );
}

/** The failed step of a book (conversion or OCR), from its synced status; null when nothing failed. */
export function failedStep(b: Pick<BookRow, 'conversion_status' | 'ocr_status'>): 'conversion' | 'ocr' | null {
  if (b.conversion_status === 'failed') return 'conversion';
  if (b.ocr_status === 'failed') return 'ocr';
  return null;
}

/** A reason in the user's language: the message of its code, else the code itself. */
export function reasonText(e: ProcessingError): string {
  const key = reasonKey(e.code);
  return key ? t(key) : e.code;
}

/** Why the book's conversion or OCR failed (read by REST: the reason is not synced). */
export function FailureReason({ book }: { book: Pick<BookRow, 'id' | 'conversion_status' | 'ocr_status' | 'updated_at'> }) {
  const step = failedStep(book);
  const error = useProcessingError(book.id, step, book.updated_at ?? null);
  if (!step || !error) return null;
  const text = t('status.reason', { reason: reasonText(error) });
  return (
    <span class="status-reason" data-testid="failure-reason" data-code={error.code} title={error.message ? `${text} (${error.message})` : text}>
      {text}
    </span>
  );
}

/**
 * The library drawn from the snapshot (snapshot.ts) while the local database opens: the same cards,
 * read-only, replaced by the live list as soon as the database is ready.
 */
export function SnapshotLibrary({ books }: { books: SnapshotBook[] }) {
  useEffect(() => {
    if (performance.getEntriesByName('athena:snapshot-shown').length === 0) performance.mark('athena:snapshot-shown');
  }, []);
  return (
    <section class="library-snapshot" aria-busy="true">
      <div class="toolbar"><h1>{t('library.title')}</h1></div>
      <p class="drop-hint" role="status">{t('library.snapshot')}</p>
      <SnapshotCards books={books} />
    </section>
  );
}

/** The snapshot's cards (read-only; opening a book is all they do). */
function SnapshotCards({ books }: { books: SnapshotBook[] }) {
  const view = localStorage.getItem('athena.libraryView') === 'list' ? 'list' : 'grid';
  const open = (e: Event, id: string) => { e.preventDefault(); navigate(`/reader/${id}`); };
  return (
    <ul class={view === 'grid' ? 'books grid' : 'books list'} data-testid="books" data-source="snapshot" data-count={books.length}>
      {books.map((b) => {
        const title = b.title ?? '';
        const pct = Math.round((b.progress ?? 0) * 100);
        return (
          <li class="book" key={b.id} data-testid="book-card" data-title={title} data-id={b.id} data-type={b.file_type ?? ''}>
            <a href={`/reader/${b.id}`} onClick={(e) => open(e, b.id)} aria-label={t('library.open', { title })}>
              {b.has_cover ? <img class="cover" alt={t('library.coverOf', { title })} src={mediaUrl(`/api/v1/books/${b.id}/cover`)} /> : <div class="cover placeholder" aria-hidden="true" data-initials={title.slice(0, 2)} />}
            </a>
            <div class="meta">
              <a href={`/reader/${b.id}`} onClick={(e) => open(e, b.id)} class="title">{title}</a>
              <span class="author">{b.author || t('library.unknownAuthor')}</span>
              <span class="progress-text" data-testid="card-progress">{b.progress ? t('library.progress', { percent: pct }) : t('library.unread')}</span>
              <progress max={100} value={pct} aria-label={t('library.progress', { percent: pct })} />
            </div>
          </li>
        );
      })}
    </ul>
  );
}
