// Book files kept in Cache Storage for offline reading: fetched once online, then read locally.
import { authFetch } from './api';

const CACHE = 'athena-books-v1';

const keyFor = (bookId: string) => `/offline/books/${bookId}`;

/** The book's bytes: from the cache, else downloaded (and cached). `null` when offline and not cached. */
export async function bookFile(bookId: string): Promise<ArrayBuffer | null> {
  const cache = 'caches' in globalThis ? await caches.open(CACHE) : null;
  const hit = await cache?.match(keyFor(bookId));
  if (hit) return hit.arrayBuffer();
  let res: Response;
  try {
    res = await authFetch(`/api/v1/books/${bookId}/content`);
  } catch {
    return null;
  }
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  const bytes = await res.arrayBuffer();
  await cache?.put(keyFor(bookId), new Response(bytes, { headers: { 'content-type': res.headers.get('content-type') ?? 'application/octet-stream' } }));
  return bytes;
}

export async function isCached(bookId: string): Promise<boolean> {
  if (!('caches' in globalThis)) return false;
  const cache = await caches.open(CACHE);
  return Boolean(await cache.match(keyFor(bookId)));
}

export async function clearBookCache(): Promise<void> {
  if ('caches' in globalThis) await caches.delete(CACHE);
}
