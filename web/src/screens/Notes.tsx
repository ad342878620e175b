import { useState } from 'preact/hooks';
import { ctx } from '../ctx';
import { useQuery } from '../db/hooks';
import { editNote, softDelete } from '../db/writes';
import { t } from '../i18n';
import { navigate } from '../router';

interface Item {
  kind: 'note' | 'highlight';
  id: string;
  book_id: string;
  title: string | null;
  body: string | null;
  page_number: number | null;
  cfi: string | null;
  color: string | null;
  conflict_of: string | null;
  updated_at: string | null;
}

const SQL = `SELECT * FROM (
  SELECT 'note' AS kind, n.id, n.book_id, b.title, n.content AS body, n.page_number, n.position_cfi AS cfi, n.color, n.conflict_of, n.updated_at
    FROM notes n LEFT JOIN books b ON b.id = n.book_id WHERE n.is_deleted IS NULL OR n.is_deleted = 0
  UNION ALL
  SELECT 'highlight', h.id, h.book_id, b.title, h.text, h.page_number, h.position_start_cfi, h.color, h.conflict_of, h.updated_at
    FROM highlights h LEFT JOIN books b ON b.id = h.book_id WHERE h.is_deleted IS NULL OR h.is_deleted = 0
) ORDER BY title, updated_at DESC`;

export function Notes() {
  const items = useQuery<Item>(SQL).rows;
  const [editing, setEditing] = useState<{ id: string; text: string } | null>(null);
  const saveEdit = async () => {
    if (!editing) return;
    await editNote(ctx(), editing.id, editing.text);
    setEditing(null);
  };
  const byBook = new Map<string, Item[]>();
  for (const i of items) byBook.set(i.book_id, [...(byBook.get(i.book_id) ?? []), i]);
  const open = (i: Item) => {
    const q = i.cfi ? `?cfi=${encodeURIComponent(i.cfi)}` : i.page_number ? `?page=${i.page_number}` : '';
    navigate(`/reader/${i.book_id}${q}`);
  };
  // Keeping a conflict copy: the copy's text replaces the original, then the copy goes.
  const keep = async (i: Item) => {
    const c = ctx();
    const table = i.kind === 'note' ? 'notes' : 'highlights';
    const column = i.kind === 'note' ? 'content' : 'text';
    if (i.conflict_of) {
      await c.db.execute(`UPDATE ${table} SET ${column} = ?, device_id = ?, updated_at = ? WHERE id = ?`, [i.body, c.deviceId, new Date().toISOString(), i.conflict_of]);
      await softDelete(c, table, i.id);
    }
  };
  return (
    <section class="notes">
      <h1>{t('notes.title')}</h1>
      {items.length === 0 && <p>{t('notes.empty')}</p>}
      {[...byBook.entries()].map(([bookId, list]) => (
        <section aria-labelledby={`notes-${bookId}`}>
          <h2 id={`notes-${bookId}`}>{list[0]?.title ?? ''}</h2>
          <ul>
            {list.map((i) => (
              <li class={i.conflict_of ? 'conflict' : ''} data-testid={`notes-${i.kind}`} data-conflict={i.conflict_of ? 'true' : 'false'}>
                <span class={`swatch ${i.color ?? 'yellow'}`} aria-hidden="true" />
                <strong>{i.kind === 'note' ? t('notes.note') : t('notes.highlight')}</strong>{' '}
                {editing?.id === i.id ? (
                  <>
                    <textarea aria-label={t('notes.editLabel')} value={editing.text} onInput={(e) => setEditing({ id: i.id, text: e.currentTarget.value })} />
                    <button type="button" onClick={() => void saveEdit()}>{t('reader.saveNote')}</button>
                    <button type="button" class="link" onClick={() => setEditing(null)}>{t('reader.cancel')}</button>
                  </>
                ) : (
                  <span class="body">{i.body}</span>
                )}{' '}
                {i.page_number ? <span class="muted">{t('notes.page', { page: i.page_number })}</span> : null}
                {i.conflict_of && <em class="muted"> — {t('notes.conflict')}</em>}
                <button type="button" class="link" onClick={() => open(i)}>{t('reader.goTo')}</button>
                {i.kind === 'note' && !i.conflict_of && editing?.id !== i.id && (
                  <button type="button" class="link" onClick={() => setEditing({ id: i.id, text: i.body ?? '' })}>{t('notes.edit')}</button>
                )}
                {i.conflict_of && <button type="button" class="link" onClick={() => void keep(i)}>{t('notes.keepThis')}</button>}
                <button type="button" class="link" onClick={() => void softDelete(ctx(), i.kind === 'note' ? 'notes' : 'highlights', i.id)}>
                  {i.conflict_of ? t('notes.discard') : t('reader.delete')}
                </button>
              </li>
            ))}
          </ul>
        </section>
      ))}
    </section>
  );
}
