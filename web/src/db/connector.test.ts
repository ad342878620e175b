import { describe, expect, it } from 'vitest';
import type { AbstractPowerSyncDatabase, CrudBatch, CrudEntry } from '@powersync/common';
import { AthenaConnector, MAX_BATCH, UploadError, classifyUploadStatus, toOperations } from './connector';
import { TokenSource } from '../api';

function entry(i: number, op: 'PUT' | 'PATCH' | 'DELETE' = 'PUT', table = 'notes'): CrudEntry {
  return { clientId: i, id: `id-${i}`, op, table, opData: op === 'DELETE' ? undefined : { content: `n${i}` }, transactionId: 1 } as unknown as CrudEntry;
}

/** A database whose CRUD queue holds `queue`; `completed` counts batches marked done. */
function fakeDb(queue: CrudEntry[]) {
  const state = { completed: 0, limits: [] as number[] };
  const db = {
    async getCrudBatch(limit = 100): Promise<CrudBatch | null> {
      state.limits.push(limit);
      if (queue.length === 0) return null;
      const crud = queue.slice(0, limit);
      return {
        crud,
        haveMore: queue.length > limit,
        complete: async () => {
          queue.splice(0, crud.length);
          state.completed++;
        },
      } as unknown as CrudBatch;
    },
  } as unknown as AbstractPowerSyncDatabase;
  return { db, state };
}

interface Call {
  url: string;
  auth: string | null;
  body: { operations: Array<Record<string, unknown>> };
}

function fakeFetch(answers: Array<{ status: number; body?: unknown } | Error>) {
  const calls: Call[] = [];
  const impl = (async (url: string, init: RequestInit) => {
    calls.push({ url, auth: new Headers(init.headers).get('authorization'), body: JSON.parse(String(init.body)) });
    const a = answers.shift();
    if (!a) throw new Error('unexpected request');
    if (a instanceof Error) throw a;
    return new Response(a.body === undefined ? '' : JSON.stringify(a.body), { status: a.status });
  }) as unknown as typeof fetch;
  return { impl, calls };
}

function tokens(list: string[]) {
  const asked: boolean[] = [];
  return {
    asked,
    provider: {
      async token(force = false) {
        asked.push(force);
        if (force) list.shift();
        return list[0] ?? 'none';
      },
    },
  };
}

describe('classifyUploadStatus', () => {
  it('separates done, retryable, re-auth and permanent answers', () => {
    expect(classifyUploadStatus(200)).toBe('complete');
    expect(classifyUploadStatus(204)).toBe('complete');
    expect(classifyUploadStatus(401)).toBe('reauth');
    for (const s of [0, 408, 429, 500, 502, 503]) expect(classifyUploadStatus(s)).toBe('retry');
    for (const s of [400, 403, 404, 413, 422]) expect(classifyUploadStatus(s)).toBe('drop');
  });
});

describe('toOperations', () => {
  it('maps CRUD entries to the upload body format, without data for DELETE', () => {
    expect(toOperations([entry(1), entry(2, 'PATCH'), entry(3, 'DELETE')])).toEqual([
      { table: 'notes', op: 'PUT', id: 'id-1', data: { content: 'n1' } },
      { table: 'notes', op: 'PATCH', id: 'id-2', data: { content: 'n2' } },
      { table: 'notes', op: 'DELETE', id: 'id-3' },
    ]);
  });
});

describe('AthenaConnector.uploadData', () => {
  it('posts one batch of the queue with the bearer token and completes it on 2xx', async () => {
    const { db, state } = fakeDb([entry(1), entry(2), entry(3)]);
    const f = fakeFetch([{ status: 200, body: { status: 'success', data: { status: 'ok', processed: 3, errors: [] } } }]);
    const c = new AthenaConnector({ tokens: tokens(['tok-a']).provider, fetchImpl: f.impl, apiBase: 'http://x' });
    await c.uploadData(db);
    expect(f.calls).toHaveLength(1);
    expect(f.calls[0]?.url).toBe('http://x/api/v1/sync/upload');
    expect(f.calls[0]?.auth).toBe('Bearer tok-a');
    expect(f.calls[0]?.body.operations.map((o) => o.id)).toEqual(['id-1', 'id-2', 'id-3']);
    expect(state.completed).toBe(1);
    expect(state.limits[0]).toBe(MAX_BATCH);
    expect(c.rejected).toEqual([]);
  });

  it('batches a long queue: at most batchSize operations per request', async () => {
    const queue = Array.from({ length: 7 }, (_, i) => entry(i));
    const { db, state } = fakeDb(queue);
    const ok = { status: 200, body: { status: 'success', data: { status: 'ok', processed: 3, errors: [] } } };
    const f = fakeFetch([ok, ok, ok]);
    const c = new AthenaConnector({ tokens: tokens(['t']).provider, fetchImpl: f.impl, batchSize: 3 });
    await c.uploadData(db);
    await c.uploadData(db);
    await c.uploadData(db);
    expect(f.calls.map((x) => x.body.operations.length)).toEqual([3, 3, 1]);
    expect(state.completed).toBe(3);
    expect(queue).toHaveLength(0);
  });

  it('records operations the server refused for good and still completes the batch', async () => {
    const { db, state } = fakeDb([entry(1), entry(2, 'PATCH', 'books')]);
    const seen: unknown[] = [];
    const f = fakeFetch([
      { status: 200, body: { status: 'success', data: { status: 'partial', processed: 1, errors: [{ id: 'id-2', code: 'validation_error', message: 'books: column content' }] } } },
    ]);
    const c = new AthenaConnector({ tokens: tokens(['t']).provider, fetchImpl: f.impl, onRejected: (r) => seen.push(...r) });
    await c.uploadData(db);
    expect(state.completed).toBe(1);
    expect(c.rejected).toHaveLength(1);
    expect(c.rejected[0]).toMatchObject({ id: 'id-2', table: 'books', code: 'validation_error' });
    expect(seen).toHaveLength(1);
  });

  it('throws (so the SDK retries the same batch) on 5xx, 429 and network errors, without completing', async () => {
    for (const answer of [{ status: 503, body: { status: 'error', code: 'internal_error' } }, { status: 429 }, new TypeError('Failed to fetch')]) {
      const { db, state } = fakeDb([entry(1)]);
      const f = fakeFetch([answer]);
      const c = new AthenaConnector({ tokens: tokens(['t']).provider, fetchImpl: f.impl });
      await expect(c.uploadData(db)).rejects.toBeInstanceOf(UploadError);
      expect(state.completed).toBe(0);
    }
  });

  it('refreshes the token after a 401 and sends the batch again with the new one', async () => {
    const { db, state } = fakeDb([entry(1)]);
    const tk = tokens(['old', 'new']);
    const f = fakeFetch([{ status: 401 }, { status: 200, body: { status: 'success', data: { status: 'ok', processed: 1, errors: [] } } }]);
    const c = new AthenaConnector({ tokens: tk.provider, fetchImpl: f.impl });
    await c.uploadData(db);
    expect(f.calls.map((x) => x.auth)).toEqual(['Bearer old', 'Bearer new']);
    expect(tk.asked).toEqual([false, true]);
    expect(state.completed).toBe(1);
  });

  it('drops a batch the server can never accept (4xx) after recording it, so the queue moves on', async () => {
    const { db, state } = fakeDb([entry(1), entry(2)]);
    const f = fakeFetch([{ status: 422, body: { status: 'error', code: 'validation_error' } }]);
    const c = new AthenaConnector({ tokens: tokens(['t']).provider, fetchImpl: f.impl });
    await c.uploadData(db);
    expect(state.completed).toBe(1);
    expect(c.rejected.map((r) => r.code)).toEqual(['http_422', 'http_422']);
  });

  it('does nothing with an empty queue', async () => {
    const { db } = fakeDb([]);
    const f = fakeFetch([]);
    await new AthenaConnector({ tokens: tokens(['t']).provider, fetchImpl: f.impl }).uploadData(db);
    expect(f.calls).toHaveLength(0);
  });

  it('fetchCredentials returns the /powersync endpoint and the current token', async () => {
    const c = new AthenaConnector({ tokens: tokens(['tok']).provider, apiBase: 'http://127.0.0.1:9' });
    await expect(c.fetchCredentials()).resolves.toEqual({ endpoint: 'http://127.0.0.1:9/powersync', token: 'tok' });
  });
});

function jwt(expSecs: number): string {
  const b64 = (o: object) => btoa(JSON.stringify(o)).replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
  return `${b64({ alg: 'HS256' })}.${b64({ sub: 'u', exp: expSecs })}.sig`;
}

describe('TokenSource', () => {
  const session = (access: string, refresh: string) => ({ accessToken: access, refreshToken: refresh, sessionId: 's', user: { id: 'u', email: 'a@b.c' } });

  it('returns a token that is still valid without asking the server', async () => {
    let saved = session(jwt(2_000), 'r1');
    const f = fakeFetch([]);
    const ts = new TokenSource({ load: () => saved, save: (s) => (saved = s as typeof saved) }, f.impl, () => 1_000_000);
    await expect(ts.token()).resolves.toBe(saved.accessToken);
    expect(f.calls).toHaveLength(0);
  });

  it('refreshes an expiring token once, rotating the refresh token, even when asked concurrently', async () => {
    let saved: ReturnType<typeof session> | null = session(jwt(1_010), 'r1');
    const fresh = jwt(5_000);
    const f = fakeFetch([{ status: 200, body: { status: 'success', data: { tokens: { access_token: fresh, refresh_token: 'r2' } } } }]);
    const ts = new TokenSource({ load: () => saved, save: (s) => (saved = s as typeof saved) }, f.impl, () => 1_000_000);
    const [a, b] = await Promise.all([ts.token(), ts.token()]);
    expect(a).toBe(fresh);
    expect(b).toBe(fresh);
    expect(f.calls).toHaveLength(1);
    expect(f.calls[0]?.body).toEqual({ refresh_token: 'r1' });
    expect(saved?.refreshToken).toBe('r2');
  });

  it('ends the session when the refresh token is refused', async () => {
    let saved: ReturnType<typeof session> | null = session(jwt(0), 'spent');
    const f = fakeFetch([{ status: 401, body: { status: 'error', code: 'invalid_refresh' } }]);
    const ts = new TokenSource({ load: () => saved, save: (s) => (saved = s as typeof saved) }, f.impl, () => 1_000_000);
    await expect(ts.token()).rejects.toMatchObject({ status: 401 });
    expect(saved).toBeNull();
  });
});
