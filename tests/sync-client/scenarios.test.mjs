// Conflict and failure scenarios: the official PowerSync Node client against `athena serve`, under the
// rules of DATA-MODEL.md ("Writes from clients"): offline edits, last-writer-wins progress, token
// expiry in the middle of a stream, permanently rejected uploads.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { AthenaServer, sleep, waitFor } from './harness.mjs';

const SCENARIO = { timeout: 120_000 };
/** Reconnect quickly after a dropped stream (the SDK's default waits 5 s). */
const RETRY_MS = 500;

/** @type {AthenaServer} */
let server;

before(async () => {
  server = await AthenaServer.start();
});

after(async () => {
  await server?.stop();
});

/** @typedef {import('./harness.mjs').Client} Client */

/**
 * Asserts that none of the clients saw a checksum failure, then closes them.
 * @param {...Client} clients
 */
async function finish(...clients) {
  try {
    for (const c of clients) {
      assert.deepEqual(c.checksumFailures(), [], `${c.label}: checksum failures\n${c.diagnostics()}`);
    }
  } finally {
    await Promise.allSettled(clients.map((c) => c.close()));
  }
}

/**
 * Waits until a client's CRUD queue is empty (everything uploaded and answered 2xx).
 * @param {Client} c
 */
async function drained(c, timeoutMs = 20_000) {
  await waitFor(async () => (await c.db.getUploadQueueStats()).count === 0, timeoutMs, `${c.label}: upload queue to drain`).catch(
    (e) => {
      throw new Error(`${e.message}\n${c.diagnostics()}`);
    },
  );
}

/**
 * The operations the server refused for good, over all of a client's uploads.
 * @param {Client} c
 * @returns {Array<{ id: string, code: string, message: string }>}
 */
function refusals(c) {
  return c.uploads.flatMap((u) => (u.status >= 200 && u.status < 300 ? (u.body?.data?.errors ?? []) : []));
}

/**
 * Waits until every client holds the same rows for `sql` and `predicate` holds for them; returns the rows.
 * @param {Client[]} clients
 * @param {string} sql
 * @param {(rows: any[]) => boolean} predicate
 * @param {string} what
 */
async function converge(clients, sql, predicate, what, timeoutMs = 20_000) {
  /** @type {any[][]} */
  let last = [];
  try {
    return await waitFor(
      async () => {
        last = await Promise.all(clients.map((c) => c.query(sql)));
        const first = JSON.stringify(last[0]);
        return last.every((rows) => JSON.stringify(rows) === first) && predicate(last[0]) ? last[0] : undefined;
      },
      timeoutMs,
      what,
    );
  } catch (e) {
    const rows = clients.map((c, i) => `${c.label}: ${JSON.stringify(last[i]).slice(0, 1_500)}`).join('\n');
    throw new Error(`${e instanceof Error ? e.message : e}\n${rows}\n${clients.map((c) => c.diagnostics()).join('\n')}`);
  }
}

/** An ISO time `offsetMs` from now (client `updated_at` values are set explicitly). */
const at = (offsetMs = 0) => new Date(Date.now() + offsetMs).toISOString();

test('offline edits of one note on two devices: the newer wins, the older is kept as a conflict copy', SCENARIO, async (t) => {
  const a = await server.login();
  const book = await server.uploadBook(a.token, 'zh/lunyu.epub');
  const ca = await server.makeClient({ token: a.token, label: 'offline-a', retryDelayMs: RETRY_MS });
  const cb = await server.makeClient({ token: a.token, label: 'offline-b', retryDelayMs: RETRY_MS });
  try {
    await Promise.all([ca.waitForFirstSync(), cb.waitForFirstSync()]);
    const id = randomUUID();
    const t0 = at(-60_000);
    await ca.db.execute(
      'INSERT INTO notes (id, book_id, device_id, content, page_number, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      [id, book.id, 'device-a', 'original', 3, t0, t0],
    );
    await drained(ca);
    for (const c of [ca, cb]) {
      await c.waitForRows('SELECT user_id FROM notes WHERE id = ?', [id], (r) => r[0]?.user_id === a.userId, 10_000, 'the note');
    }

    await Promise.all([ca.db.disconnect(), cb.db.disconnect()]);
    const t1 = at(-20_000);
    const t2 = at(-10_000);
    // Each device stamps its own id, as an app does on every edit (A's is unchanged, so A's PATCH omits it).
    await ca.db.execute('UPDATE notes SET content = ?, device_id = ?, updated_at = ? WHERE id = ?', ['edited on A', 'device-a', t1, id]);
    await cb.db.execute('UPDATE notes SET content = ?, device_id = ?, updated_at = ? WHERE id = ?', ['edited on B', 'device-b', t2, id]);

    // The newer edit reaches the server first, the older one last.
    await cb.connect();
    await drained(cb);
    await ca.connect();
    await drained(ca);
    assert.deepEqual([...refusals(ca), ...refusals(cb)], [], 'no operation refused');

    const rows = await converge(
      [ca, cb],
      'SELECT * FROM notes ORDER BY id',
      (r) => r.length === 2,
      'both devices hold the note and its conflict copy',
    );
    const original = rows.find((r) => r.id === id);
    const copy = rows.find((r) => r.conflict_of === id);
    assert.ok(original && copy, `the note and a copy: ${JSON.stringify(rows)}`);
    assert.equal(original.content, 'edited on B', 'the newer edit wins the row');
    assert.equal(Date.parse(original.updated_at), Date.parse(t2));
    assert.equal(original.conflict_of, null);
    assert.equal(copy.content, 'edited on A', 'the older edit is kept as a copy');
    assert.equal(Date.parse(copy.updated_at), Date.parse(t1));
    assert.equal(copy.book_id, book.id);
    assert.equal(copy.user_id, a.userId);
    assert.equal(copy.is_deleted, 0);
    if (copy.device_id !== 'device-a') t.diagnostic(`the copy names device ${copy.device_id}, not the device that wrote it (device-a)`);

    // A retried upload of the same stale edit does not make a second copy.
    const again = await server.apiOk('POST', '/api/v1/sync/upload', {
      token: a.token,
      json: { operations: [{ table: 'notes', op: 'PATCH', id, data: { content: 'edited on A', updated_at: t1 } }] },
    });
    assert.deepEqual(again.errors, []);
    const fresh = await server.makeClient({ token: a.token, label: 'offline-fresh' });
    try {
      await fresh.waitForFirstSync();
      await converge([ca, cb, fresh], 'SELECT * FROM notes ORDER BY id', (r) => r.length === 2, 'a fresh client sees the same two rows');
      await finish(fresh);
    } finally {
      await fresh.close();
    }
  } finally {
    await finish(ca, cb);
  }
});

test('reading progress: an older write never overwrites a newer one; a second row for the book is merged', SCENARIO, async () => {
  const a = await server.login();
  const book = await server.uploadBook(a.token, 'zh/tangshi300.epub');
  const c1 = await server.makeClient({ token: a.token, label: 'progress-1', retryDelayMs: RETRY_MS });
  const c2 = await server.makeClient({ token: a.token, label: 'progress-2', retryDelayMs: RETRY_MS });
  const sql = 'SELECT * FROM reading_progress WHERE book_id = ? ORDER BY id';
  try {
    await Promise.all([c1.waitForFirstSync(), c2.waitForFirstSync()]);
    const id = randomUUID();
    const t0 = at(-60_000);
    await c1.db.execute('INSERT INTO reading_progress (id, book_id, device_id, progress, updated_at) VALUES (?, ?, ?, ?, ?)', [
      id,
      book.id,
      'device-1',
      0.1,
      t0,
    ]);
    await drained(c1);
    await converge([c1, c2], `SELECT * FROM reading_progress ORDER BY id`, (r) => r.length === 1 && r[0].user_id === a.userId, 'first progress');

    await c2.db.disconnect();
    const t1 = at(-30_000);
    const t2 = at(-20_000);
    await c1.db.execute('UPDATE reading_progress SET progress = ?, updated_at = ? WHERE id = ?', [0.8, t2, id]);
    await drained(c1);
    await c1.waitForRows(sql, [book.id], (r) => r.length === 1 && r[0].progress === 0.8, 10_000, 'server copy of 0.8');
    await c2.db.execute('UPDATE reading_progress SET progress = ?, device_id = ?, updated_at = ? WHERE id = ?', [0.3, 'device-2', t1, id]);
    await c2.connect();
    await drained(c2);
    assert.deepEqual([...refusals(c1), ...refusals(c2)], [], 'no operation refused');
    let rows = await converge(
      [c1, c2],
      'SELECT * FROM reading_progress ORDER BY id',
      (r) => r.length === 1 && r[0].progress === 0.8,
      'both at the newer 0.8',
    );
    assert.equal(Date.parse(rows[0].updated_at), Date.parse(t2));
    assert.equal(rows[0].device_id, 'device-1');

    // Another device creates its own row for the same book: newer, so it is merged and wins…
    const other = randomUUID();
    const t3 = at(-10_000);
    await c2.db.execute('INSERT INTO reading_progress (id, book_id, device_id, progress, updated_at) VALUES (?, ?, ?, ?, ?)', [
      other,
      book.id,
      'device-2',
      0.5,
      t3,
    ]);
    // …and an older new row from the first device changes nothing.
    const stale = randomUUID();
    await c1.db.execute('INSERT INTO reading_progress (id, book_id, device_id, progress, updated_at) VALUES (?, ?, ?, ?, ?)', [
      stale,
      book.id,
      'device-1',
      0.2,
      at(-15_000),
    ]);
    await Promise.all([drained(c1), drained(c2)]);
    assert.deepEqual([...refusals(c1), ...refusals(c2)], [], 'merged rows are not refused');
    rows = await converge(
      [c1, c2],
      'SELECT * FROM reading_progress ORDER BY id',
      (r) => r.length === 1 && r[0].progress === 0.5,
      'one row for the book, at the newest 0.5',
    );
    assert.equal(rows[0].id, id, 'the existing row keeps its id');
    assert.equal(rows[0].device_id, 'device-2');
    assert.equal(Date.parse(rows[0].updated_at), Date.parse(t3));

    // The merged id maps to the row: a later edit under it lands on the same row.
    const t4 = at(-5_000);
    await c2.db.execute('INSERT INTO reading_progress (id, book_id, device_id, progress, updated_at) VALUES (?, ?, ?, ?, ?)', [
      other,
      book.id,
      'device-2',
      0.6,
      t4,
    ]);
    await drained(c2);
    rows = await converge(
      [c1, c2],
      'SELECT * FROM reading_progress ORDER BY id',
      (r) => r.length === 1 && r[0].progress === 0.6,
      'an edit under the merged id',
    );
    assert.equal(rows[0].id, id);
  } finally {
    await finish(c1, c2);
  }
});

test('token expiry in the middle of a stream: clients refresh, reconnect and lose nothing', { timeout: 150_000 }, async (t) => {
  const ttl = 5;
  const srv = await AthenaServer.start({ env: { ATHENA_ACCESS_TOKEN_TTL_SECS: String(ttl) } });
  /** @type {Client[]} */
  const clients = [];
  try {
    const a = await srv.login();
    const tokens = srv.tokenSource(a, { minValidMs: 1_500 });
    const book = await srv.uploadBook(await tokens(), 'zh/lunyu.epub');
    const shelf = await srv.apiOk('POST', '/api/v1/shelves', { token: await tokens(), json: { name: 'before expiry' } });
    for (const label of ['expiry-1', 'expiry-2']) {
      clients.push(await srv.makeClient({ token: await tokens(), label, tokens, retryDelayMs: RETRY_MS }));
    }
    const [c1, c2] = clients;
    await Promise.all(clients.map((c) => c.waitForFirstSync()));
    const requestsBefore = clients.map((c) => c.syncRequests.length);

    // Writes on both sides for three token lifetimes.
    const noteIds = [];
    let title = book.title;
    let shelfName = 'before expiry';
    const started = Date.now();
    for (let i = 0; Date.now() - started < ttl * 3_000 + 1_000; i++) {
      const writer = clients[i % 2];
      const id = randomUUID();
      noteIds.push(id);
      await writer.db.execute('INSERT INTO notes (id, book_id, device_id, content, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)', [
        id,
        book.id,
        writer.label,
        `note ${i}`,
        at(),
        at(),
      ]);
      if (i % 3 === 0) {
        const got = await srv.api('GET', `/api/v1/books/${book.id}`, { token: await tokens() });
        assert.equal(got.status, 200, got.text);
        title = `title ${i}`;
        await srv.apiOk('PATCH', `/api/v1/books/${book.id}/metadata`, {
          token: await tokens(),
          headers: { 'if-match': got.headers.get('etag') ?? '' },
          json: { title },
        });
      } else if (i % 3 === 1) {
        shelfName = `shelf ${i}`;
        await writer.db.execute('UPDATE shelves SET name = ?, updated_at = ? WHERE id = ?', [shelfName, at(), shelf.id]);
      }
      await sleep(400);
    }
    await Promise.all(clients.map((c) => drained(c, 30_000)));
    assert.deepEqual(clients.flatMap(refusals), [], 'no operation refused');

    const want = [...noteIds].sort();
    await converge(clients, 'SELECT * FROM notes ORDER BY id', (r) => JSON.stringify(r.map((n) => n.id)) === JSON.stringify(want), 'every note on both clients', 30_000);
    await converge(clients, 'SELECT * FROM books ORDER BY id', (r) => r[0]?.title === title, 'the last REST title', 30_000);
    await converge(clients, 'SELECT * FROM shelves ORDER BY id', (r) => r[0]?.name === shelfName, 'the last shelf name', 30_000);

    // The server ended streams at expiry and the clients came back with fresh tokens.
    const reconnects = clients.map((c, i) => c.syncRequests.length - requestsBefore[i]);
    t.diagnostic(`token refreshes: ${tokens.refreshes}; stream reconnects per client: ${reconnects.join(', ')}`);
    t.diagnostic(`uploads answered 401 (retried with a fresh token): ${clients.flatMap((c) => c.uploads).filter((u) => u.status === 401).length}`);
    assert.ok(tokens.refreshes >= 3, `at least three refreshes over three token lifetimes: ${tokens.refreshes}`);
    for (const [i, n] of reconnects.entries()) assert.ok(n >= 2, `${clients[i].label}: reconnected after expiry (${n} new stream requests)`);
  } finally {
    try {
      await finish(...clients);
    } finally {
      await srv.stop();
    }
  }
});

test('a permanently refused upload does not block the queue, and the server’s state flows back', SCENARIO, async () => {
  const a = await server.login();
  const b = await server.login();
  const mine = await server.uploadBook(a.token, 'zh/lunyu.epub');
  const theirs = await server.uploadBook(b.token, 'zh/tangshi300.epub');
  const c = await server.makeClient({ token: a.token, label: 'refused', retryDelayMs: RETRY_MS });
  try {
    await c.waitForFirstSync();
    const kept = randomUUID();
    await c.db.execute('INSERT INTO notes (id, book_id, device_id, content, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)', [
      kept,
      mine.id,
      'device-r',
      'on my book',
      at(),
      at(),
    ]);
    await drained(c);
    await c.waitForRows('SELECT user_id FROM notes WHERE id = ?', [kept], (r) => r[0]?.user_id === a.userId, 10_000, 'a valid note');

    // A new note on another user's book, and an edit moving the valid note there: both refused for good.
    const foreign = randomUUID();
    await c.db.execute('INSERT INTO notes (id, book_id, device_id, content, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)', [
      foreign,
      theirs.id,
      'device-r',
      'on their book',
      at(),
      at(),
    ]);
    await c.db.execute('UPDATE notes SET book_id = ?, content = ?, updated_at = ? WHERE id = ?', [theirs.id, 'moved', at(), kept]);
    // Written after the refused ones, in the same queue.
    const later = randomUUID();
    await c.db.execute('INSERT INTO bookmarks (id, book_id, device_id, title, page_number, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)', [
      later,
      mine.id,
      'device-r',
      'after the refusal',
      7,
      at(),
      at(),
    ]);
    await drained(c);
    const refused = refusals(c);
    assert.deepEqual(
      refused.map((r) => r.id).sort(),
      [foreign, kept].sort(),
      `exactly the two operations on another user's book are refused: ${JSON.stringify(refused)}`,
    );
    for (const r of refused) assert.equal(r.code, 'not_found', JSON.stringify(r));

    // The server's state flows back: the refused insert disappears, the refused edit is undone.
    await c.waitForRows('SELECT id FROM notes WHERE id = ?', [foreign], (r) => r.length === 0, 15_000, 'the refused note gone');
    await c.waitForRows(
      'SELECT book_id, content FROM notes WHERE id = ?',
      [kept],
      (r) => r[0]?.book_id === mine.id && r[0]?.content === 'on my book',
      15_000,
      'the refused edit undone',
    );
    await c.waitForRows('SELECT user_id FROM bookmarks WHERE id = ?', [later], (r) => r[0]?.user_id === a.userId, 10_000, 'the later bookmark');

    // And later writes still sync.
    const afterwards = randomUUID();
    await c.db.execute('INSERT INTO notes (id, book_id, device_id, content, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)', [
      afterwards,
      mine.id,
      'device-r',
      'afterwards',
      at(),
      at(),
    ]);
    await drained(c);
    await c.waitForRows('SELECT user_id FROM notes WHERE id = ?', [afterwards], (r) => r[0]?.user_id === a.userId, 10_000, 'a later note');
    const other = await server.makeClient({ token: b.token, label: 'refused-owner' });
    try {
      await other.waitForFirstSync();
      await other.waitForRows('SELECT id FROM books', [], (r) => r.length === 1, 10_000, 'B’s book');
      assert.deepEqual(await other.query('SELECT id FROM notes'), [], 'nothing reached the other user');
    } finally {
      await finish(other);
    }
  } finally {
    await finish(c);
  }
});
