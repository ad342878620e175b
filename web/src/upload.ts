// Uploading book files: client-side SHA-256, the server's dedup answers ("already in your library",
// instant upload by proof of possession), else the signed PUT with progress, then upload_complete.
import { ApiError, authJson } from './api';

export type UploadState =
  | { phase: 'hashing' }
  | { phase: 'uploading'; loaded: number; total: number }
  | { phase: 'processing' }
  | { phase: 'done'; bookId: string; how: 'uploaded' | 'own' | 'instant' }
  | { phase: 'failed'; message: string };

export function hex(buf: ArrayBuffer): string {
  return [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

export async function sha256Hex(data: ArrayBuffer | Uint8Array): Promise<string> {
  const view = data instanceof Uint8Array ? data : new Uint8Array(data);
  return hex(await crypto.subtle.digest('SHA-256', view as Uint8Array<ArrayBuffer>));
}

/** The proof for a dedup challenge: SHA-256 of the named `[start, end)` ranges, concatenated. */
export async function challengeProof(bytes: Uint8Array, ranges: ReadonlyArray<readonly [number, number]>): Promise<string> {
  const parts = ranges.map(([s, e]) => bytes.subarray(Math.max(0, s), Math.min(bytes.length, e)));
  const total = parts.reduce((n, p) => n + p.length, 0);
  const joined = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    joined.set(p, o);
    o += p.length;
  }
  return sha256Hex(joined);
}

interface InitAnswer {
  dedup_hit: 'own' | 'global' | null;
  existing_book_id?: string;
  canonical_book_id?: string;
  challenge?: { id: string; ranges: Array<[number, number]> };
  upload_url?: string;
  method?: string;
  headers?: Record<string, string>;
  key?: string;
}

function put(url: string, method: string, headers: Record<string, string>, body: Blob, onProgress: (loaded: number, total: number) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : body.size);
    xhr.onload = () => (xhr.status >= 200 && xhr.status < 300 ? resolve() : reject(new ApiError(xhr.status, 'upload_failed', `HTTP ${xhr.status}`)));
    xhr.onerror = () => reject(new ApiError(0, 'network', 'network error'));
    xhr.send(body);
  });
}

export async function uploadBook(file: File, onState: (s: UploadState) => void): Promise<void> {
  try {
    onState({ phase: 'hashing' });
    const bytes = new Uint8Array(await file.arrayBuffer());
    const sha = await sha256Hex(bytes);
    const init = await authJson<InitAnswer>('POST', '/api/v1/books/upload_init', {
      filename: file.name,
      content_type: file.type || 'application/octet-stream',
      content_sha256: sha,
      size: file.size,
    });
    if (init.dedup_hit === 'own' && init.existing_book_id) {
      onState({ phase: 'done', bookId: init.existing_book_id, how: 'own' });
      return;
    }
    if (init.dedup_hit === 'global' && init.canonical_book_id && init.challenge) {
      const proof = await challengeProof(bytes, init.challenge.ranges);
      try {
        const book = await authJson<{ id: string }>('POST', '/api/v1/books/dedup_reference', {
          content_sha256: sha,
          canonical_book_id: init.canonical_book_id,
          proof,
        });
        onState({ phase: 'done', bookId: book.id, how: 'instant' });
        return;
      } catch (e) {
        if (!(e instanceof ApiError) || e.status !== 403) throw e;
        // The proof was refused: upload normally.
        return uploadBookWithoutDedup(file, sha, onState);
      }
    }
    await finishUpload(file, sha, init, onState);
  } catch (e) {
    onState({ phase: 'failed', message: e instanceof Error ? e.message : String(e) });
  }
}

async function uploadBookWithoutDedup(file: File, sha: string, onState: (s: UploadState) => void): Promise<void> {
  const init = await authJson<InitAnswer>('POST', '/api/v1/books/upload_init', { filename: file.name, content_type: file.type || 'application/octet-stream', size: file.size });
  if (init.dedup_hit) throw new ApiError(409, 'dedup', 'unexpected dedup answer');
  await finishUpload(file, sha, init, onState);
}

async function finishUpload(file: File, sha: string, init: InitAnswer, onState: (s: UploadState) => void): Promise<void> {
  if (!init.upload_url || !init.key) throw new ApiError(500, 'bad_answer', 'no upload URL');
  const headers = { ...(init.headers ?? {}) };
  onState({ phase: 'uploading', loaded: 0, total: file.size });
  await put(sameOriginIfAthena(init.upload_url), init.method ?? 'PUT', headers, file, (loaded, total) => onState({ phase: 'uploading', loaded, total }));
  onState({ phase: 'processing' });
  const book = await authJson<{ id: string }>('POST', '/api/v1/books/upload_complete', { key: init.key, size: file.size, content_sha256: sha });
  onState({ phase: 'done', bookId: book.id, how: 'uploaded' });
}

/** A signed URL to Athena itself (embedded storage) is used on this page's origin, which serves the
 * app and the API together: the server may know itself under another host name (127.0.0.1 vs localhost). */
export function sameOriginIfAthena(url: string, origin = location.origin): string {
  const u = new URL(url, origin);
  return u.pathname.startsWith('/api/v1/books/upload/') ? `${u.pathname}${u.search}` : u.toString();
}
