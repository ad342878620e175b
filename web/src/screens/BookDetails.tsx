import { useState } from 'preact/hooks';
import { ApiError, authJson, mediaUrl } from '../api';
import { ctx } from '../ctx';
import { useQuery } from '../db/hooks';
import type { BookRow } from '../db/schema';
import { t, type MessageKey } from '../i18n';
import { navigate } from '../router';
import { FailureReason, statusKey } from './Library';

type OcrAnswer =
  | { status: 'queued'; queue_position: number; estimated_minutes: number; units: number; units_left: number }
  | { status: 'instant_completed'; units: number; units_left: number };

/** The message for an OCR request's answer or refusal (CONTRACTS.md codes). */
export function ocrMessage(answer: OcrAnswer | { error: string }): { key: MessageKey; params: Record<string, number | string> } {
  if ('error' in answer) {
    const known: Record<string, MessageKey> = {
      ocr_quota_exceeded: 'ocr.quota',
      ocr_max_pages_exceeded: 'ocr.tooLong',
      already_digitalized: 'ocr.already',
      ocr_in_progress: 'ocr.inProgress',
    };
    return known[answer.error] ? { key: known[answer.error] as MessageKey, params: {} } : { key: 'ocr.failed', params: { message: answer.error } };
  }
  if (answer.status === 'queued') {
    return { key: 'ocr.queued', params: { position: answer.queue_position, minutes: answer.estimated_minutes, units: answer.units, left: answer.units_left } };
  }
  return { key: 'ocr.instant', params: { units: answer.units, left: answer.units_left } };
}

export function BookDetails({ bookId }: { bookId: string }) {
  const book = useQuery<BookRow>('SELECT * FROM books WHERE id = ?', [bookId]).rows[0];
  const [title, setTitle] = useState<string | null>(null);
  const [author, setAuthor] = useState<string | null>(null);
  const [saved, setSaved] = useState(false);
  const [ocr, setOcr] = useState<string | null>(null);
  const [confirming, setConfirming] = useState(false);
  const [confirmError, setConfirmError] = useState<string | null>(null);
  if (!book) return <p>{t('app.loading')}</p>;
  const status = statusKey(book);

  const save = async (e: Event) => {
    e.preventDefault();
    // Title and author are client-writable columns of the synced books table: a local write.
    const c = ctx();
    // (Only title, author and deleted_at are: the server stamps updated_at itself.)
    await c.db.execute('UPDATE books SET title = ?, author = ? WHERE id = ?', [
      (title ?? book.title ?? '').trim(),
      (author ?? book.author ?? '').trim() || null,
      book.id,
    ]);
    setSaved(true);
  };
  // metadata_confirmed is not client-writable through sync (DATA-MODEL.md): it goes through the REST
  // PATCH of the book, with the book's version as If-Match; sync then brings the change back here.
  const confirm = async () => {
    setConfirming(true);
    setConfirmError(null);
    try {
      await confirmMetadata(book.id);
    } catch (err) {
      setConfirmError(t('details.confirmFailed', { message: err instanceof ApiError ? err.code : String(err) }));
    } finally {
      setConfirming(false);
    }
  };
  const requestOcr = async () => {
    try {
      const m = ocrMessage(await authJson<OcrAnswer>('POST', `/api/v1/books/${book.id}/ocr`));
      setOcr(t(m.key, m.params));
    } catch (err) {
      const m = ocrMessage({ error: err instanceof ApiError ? err.code : String(err) });
      setOcr(t(m.key, m.params));
    }
  };

  return (
    <section class="details">
      <a href="/library" onClick={(e) => { e.preventDefault(); navigate('/library'); }}>{t('library.back')}</a>
      <h1>{book.title}</h1>
      <div class="details-grid">
        {book.cover_url ? <img class="cover" alt={t('library.coverOf', { title: book.title ?? '' })} src={mediaUrl(`/api/v1/books/${book.id}/cover`)} /> : <div class="cover placeholder" aria-hidden="true" />}
        <div>
          <form onSubmit={save} class="meta-form">
            <label for="book-title">{t('details.title')}</label>
            <input id="book-title" value={title ?? book.title ?? ''} onInput={(e) => { setTitle(e.currentTarget.value); setSaved(false); }} required />
            <label for="book-author">{t('details.author')}</label>
            <input id="book-author" value={author ?? book.author ?? ''} onInput={(e) => { setAuthor(e.currentTarget.value); setSaved(false); }} />
            <button type="submit">{t('details.save')}</button>
            {saved && <span role="status">{t('settings.saved')}</span>}
          </form>
          <dl>
            <dt>{t('details.format')}</dt>
            <dd>{(book.file_type ?? '').toUpperCase()}{book.converted_epub_key ? ` → EPUB` : ''}</dd>
            <dt>{t('details.size')}</dt>
            <dd>{((book.file_size ?? 0) / 1024 / 1024).toFixed(1)} MB</dd>
            {book.page_count ? (<><dt>{t('details.pages')}</dt><dd>{book.page_count}</dd></>) : null}
            <dt>{t('details.status')}</dt>
            <dd data-testid="details-status">{status ? t(status) : t('details.ready')} <FailureReason book={book} /></dd>
            <dt>{t('details.metadata')}</dt>
            <dd class="meta-confirm" data-testid="metadata-confirmed" data-confirmed={String(Boolean(book.metadata_confirmed))}>
              {book.metadata_confirmed ? t('details.confirmed') : t('details.unconfirmed')}
              {!book.metadata_confirmed && (
                <button type="button" class="small" disabled={confirming} onClick={() => void confirm()}>{t('details.confirm')}</button>
              )}
            </dd>
          </dl>
          {confirmError && <p role="alert" class="error">{confirmError}</p>}
          <p>
            <button type="button" onClick={() => navigate(`/reader/${book.id}`)}>{t('details.read')}</button>{' '}
            {book.file_type === 'pdf' && book.is_digitalized === 0 && <button type="button" onClick={() => void requestOcr()}>{t('details.ocr')}</button>}
          </p>
          {ocr && <p role="status" data-testid="ocr-message">{ocr}</p>}
        </div>
      </div>
    </section>
  );
}

/** PATCH /books/{id}/metadata {confirmed: true} with If-Match: the version read just before (once more on a conflict). */
export async function confirmMetadata(id: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const current = await authJson<{ version: number }>('GET', `/api/v1/books/${id}`);
    try {
      await authJson('PATCH', `/api/v1/books/${id}/metadata`, { confirmed: true }, { 'if-match': `W/"${current.version}"` });
      return;
    } catch (err) {
      if (attempt === 0 && err instanceof ApiError && err.code === 'version_conflict') continue;
      throw err;
    }
  }
}
