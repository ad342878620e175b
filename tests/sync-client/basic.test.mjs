// End-to-end sync scenarios: the official PowerSync Node client against `athena serve`.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { AthenaServer, readSyncStream, sleep, waitFor } from './harness.mjs';
import { tables } from './schema.mjs';

const SCENARIO = { timeout: 90_000 };
const ENDPOINT_KINDS = /** @type {const} */ (['sync-port', 'api-prefix']);

/** @type {AthenaServer} */
let server;
/** every client made by this file, checked for checksum failures at the end */
/** @type {import('./harness.mjs').Client[]} */
const everyClient = [];

before(async () => {
  server = await AthenaServer.start();
});

after(async () => {
  await server?.stop();
});

/**
 * @param {AthenaServer} srv
 * @param {Parameters<AthenaServer['makeClient']>[0]} options
 */
async function client(srv, options) {
  const c = await srv.makeClient(options);
  everyClient.push(c);
  return c;
}

/**
 * Asserts that none of the clients saw a checksum failure, then closes them.
 * @param {...import('./harness.mjs').Client} clients
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
 * Waits until a client's CRUD queue is empty (everything uploaded and acknowledged).
 * @param {import('./harness.mjs').Client} c
 */
async function uploaded(c, timeoutMs = 15_000) {
  await waitFor(async () => (await c.db.getUploadQueueStats()).count === 0, timeoutMs, `${c.label}: upload queue to drain`).catch(
    (e) => {
      throw new Error(`${e.message}\n${c.diagnostics()}`);
    },
  );
  for (const u of c.uploads) {
    assert.ok(u.status >= 200 && u.status < 300, `upload answered ${u.status}: ${JSON.stringify(u.body)}`);
    const errors = u.body?.data?.errors ?? u.body?.errors ?? [];
    assert.deepEqual(errors, [], `upload rejected operations: ${JSON.stringify(u.body)}`);
  }
}

const now = () => new Date().toISOString();

for (const kind of ENDPOINT_KINDS) {
  describe(`sync through ${kind}`, () => {
    test('initial sync delivers the user’s books', SCENARIO, async () => {
      const a = await server.login();
      const one = await server.uploadBook(a.token, 'zh/lunyu.epub');
      const two = await server.uploadBook(a.token, 'zh/tangshi300.epub');
      const c = await client(server, { token: a.token, endpointKind: kind, label: `initial-${kind}` });
      try {
        await c.waitForFirstSync();
        const rows = await c.waitForRows(
          'SELECT id, user_id, title, file_type FROM books ORDER BY title',
          [],
          (r) => r.length === 2,
          10_000,
          'two books',
        );
        const byId = Object.fromEntries(rows.map((r) => [r.id, r]));
        for (const book of [one, two]) {
          assert.ok(byId[book.id], `book ${book.id} missing: ${JSON.stringify(rows)}`);
          assert.equal(byId[book.id].title, book.title);
          assert.equal(byId[book.id].file_type, 'epub');
          assert.equal(byId[book.id].user_id, a.userId);
        }
        // The official client asks for BSON lines and gzip; the server answers in kind (counted per stream).
        assert.ok(server.ports.metrics, 'metrics listener');
        const metrics = await (await fetch(`http://127.0.0.1:${server.ports.metrics}/metrics`)).text();
        const bsonGzip = metrics
          .split('\n')
          .find((l) => l.startsWith('powersync_streams_opened_total') && l.includes('format="bson"') && l.includes('gzip="true"'));
        assert.ok(bsonGzip && Number(bsonGzip.split(' ').pop()) > 0, `no BSON+gzip stream counted:\n${metrics}`);
        // The server sends exactly the client columns (and the id): anything else would be invisible to the app.
        const columns = new Set(['id', ...tables.books.columns.map((col) => col.name)]);
        for (const { data } of await c.query('SELECT data FROM ps_data__books')) {
          const unknown = Object.keys(JSON.parse(data)).filter((k) => !columns.has(k));
          assert.deepEqual(unknown, [], 'books rows carry columns the client schema does not have');
        }
      } finally {
        await finish(c);
      }
    });

    test('a REST edit reaches a connected client within 5 s', SCENARIO, async (t) => {
      const a = await server.login();
      const book = await server.uploadBook(a.token, 'zh/lunyu.epub');
      const c = await client(server, { token: a.token, endpointKind: kind, label: `rest-edit-${kind}` });
      try {
        await c.waitForFirstSync();
        await c.waitForRows('SELECT title FROM books WHERE id = ?', [book.id], (r) => r.length === 1);
        const got = await server.api('GET', `/api/v1/books/${book.id}`, { token: a.token });
        const etag = got.headers.get('etag');
        assert.ok(etag, 'GET /books/{id} has an ETag');
        const title = `Analects ${randomUUID().slice(0, 6)}`;
        const started = Date.now();
        await server.apiOk('PATCH', `/api/v1/books/${book.id}/metadata`, {
          token: a.token,
          headers: { 'if-match': etag },
          json: { title, confirmed: true },
        });
        await c.waitForRows(
          'SELECT title, metadata_confirmed FROM books WHERE id = ?',
          [book.id],
          (r) => r[0]?.title === title,
          5_000,
          'edited title',
        );
        t.diagnostic(`REST edit visible on the client after ${Date.now() - started} ms`);
      } finally {
        await finish(c);
      }
    });

    test('client writes to notes round-trip to a second device', SCENARIO, async (t) => {
      const a = await server.login();
      const book = await server.uploadBook(a.token, 'zh/lunyu.epub');
      const c1 = await client(server, { token: a.token, endpointKind: kind, label: `writer-${kind}` });
      const c2 = await client(server, { token: a.token, endpointKind: kind, label: `reader-${kind}` });
      try {
        await Promise.all([c1.waitForFirstSync(), c2.waitForFirstSync()]);
        const id = randomUUID();
        const created = now();
        const started = Date.now();
        await c1.db.execute(
          'INSERT INTO notes (id, book_id, device_id, content, page_number, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
          [id, book.id, 'device-one', '学而时习之', 1, created, created],
        );
        await uploaded(c1);
        // The server's copy flows back: user_id is filled in by the server, not by the client.
        for (const c of [c1, c2]) {
          await c.waitForRows(
            'SELECT user_id, content, book_id FROM notes WHERE id = ?',
            [id],
            (r) => r[0]?.content === '学而时习之' && r[0]?.user_id === a.userId && r[0]?.book_id === book.id,
            10_000,
            'inserted note',
          );
        }
        t.diagnostic(`insert on one device visible on both (acknowledged) after ${Date.now() - started} ms`);

        // Update
        await sleep(5);
        await c1.db.execute('UPDATE notes SET content = ?, updated_at = ? WHERE id = ?', ['不亦说乎', now(), id]);
        await uploaded(c1);
        for (const c of [c1, c2]) {
          await c.waitForRows('SELECT content FROM notes WHERE id = ?', [id], (r) => r[0]?.content === '不亦说乎', 10_000, 'updated note');
        }

        // Delete: notes are soft-deleted on the server, so the row either disappears or comes back with
        // is_deleted = 1. The writer's local delete is instant, so wait until it holds the same state
        // as the other device (the server's copy flowing back).
        await c1.db.execute('DELETE FROM notes WHERE id = ?', [id]);
        await uploaded(c1);
        const sql = 'SELECT is_deleted, deleted_at IS NOT NULL AS has_deleted_at FROM notes WHERE id = ?';
        const other = await c2.waitForRows(sql, [id], (r) => r.length === 0 || r[0].is_deleted === 1, 10_000, 'deleted note');
        await c1.waitForRows(sql, [id], (r) => JSON.stringify(r) === JSON.stringify(other), 10_000, `same state as the other device: ${JSON.stringify(other)}`);
      } finally {
        await finish(c1, c2);
      }
    });
  });
}

describe('isolation between users', () => {
  test('a second user never receives the first user’s rows', SCENARIO, async () => {
    const a = await server.login();
    const b = await server.login();
    const book = await server.uploadBook(a.token, 'zh/guwenguanzhi.epub');
    const ca = await client(server, { token: a.token, label: 'iso-a' });
    const cb = await client(server, { token: b.token, label: 'iso-b' });
    try {
      await Promise.all([ca.waitForFirstSync(), cb.waitForFirstSync()]);
      const noteId = randomUUID();
      await ca.db.execute('INSERT INTO notes (id, book_id, device_id, content, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)', [
        noteId,
        book.id,
        'device-a',
        'secret of A',
        now(),
        now(),
      ]);
      await uploaded(ca);
      await ca.waitForRows('SELECT user_id FROM notes WHERE id = ?', [noteId], (r) => r[0]?.user_id === a.userId);
      // B owns a book too, so B's stream is known to be carrying data when we look.
      const bBook = await server.uploadBook(b.token, 'zh/lunyu.epub');
      await cb.waitForRows('SELECT id FROM books WHERE id = ?', [bBook.id], (r) => r.length === 1, 10_000, 'B’s own book');
      await sleep(1_000);

      for (const table of ['books', 'notes']) {
        const leaked = await cb.query(`SELECT id FROM ${table} WHERE user_id = ? OR id IN (?, ?)`, [a.userId, book.id, noteId]);
        assert.deepEqual(leaked, [], `B received A’s ${table}`);
      }
      const oplog = await cb.query('SELECT row_type, row_id FROM ps_oplog WHERE row_id IN (?, ?) OR data LIKE ?', [
        book.id,
        noteId,
        `%${a.userId}%`,
      ]);
      assert.deepEqual(oplog, [], 'B’s local oplog holds A’s rows');
      const buckets = (await cb.query('SELECT name FROM ps_buckets')).map((r) => r.name);
      assert.ok(!buckets.some((n) => n.includes(a.userId)), `B has A’s bucket: ${buckets}`);

      // A crafted request: B's token asking for A's bucket by name.
      for (const kind of ENDPOINT_KINDS) {
        const res = await readSyncStream(
          server.syncEndpoint(kind),
          b.token,
          {
            buckets: [{ name: `user_data["${a.userId}"]`, after: '0' }],
            include_checksum: true,
            raw_data: true,
            binary_data: false,
            client_id: randomUUID(),
            parameters: {},
            streams: { include_defaults: true, subscriptions: [] },
          },
          2_000,
        );
        assert.ok(res.status === 200 || (res.status >= 400 && res.status < 500), `${kind}: status ${res.status}`);
        for (const line of res.lines) {
          for (const secret of [a.userId, book.id, noteId, 'secret of A', book.title]) {
            assert.ok(!line.includes(secret), `${kind}: B's stream carries A's data (${secret}): ${line.slice(0, 300)}`);
          }
        }
      }
    } finally {
      await finish(ca, cb);
    }
  });
});

describe('wire format', () => {
  test('a raw /sync/stream response follows the NDJSON rules', SCENARIO, async () => {
    const a = await server.login();
    const book = await server.uploadBook(a.token, 'zh/lunyu.epub');
    for (const kind of ENDPOINT_KINDS) {
      const res = await readSyncStream(
        server.syncEndpoint(kind),
        a.token,
        {
          buckets: [],
          include_checksum: true,
          raw_data: true,
          binary_data: true,
          client_id: randomUUID(),
          parameters: {},
          streams: { include_defaults: true, subscriptions: [] },
        },
        2_000,
      );
      assert.equal(res.status, 200, `${kind}: ${res.text.slice(0, 300)}`);
      assert.match(res.contentType ?? '', /application\/x-ndjson/, `${kind}: content type`);
      assert.ok(res.lines.length >= 2, `${kind}: at least a checkpoint and its completion: ${res.text.slice(0, 300)}`);
      const kinds = [];
      /** @type {Record<string, number>} */
      const sums = {};
      let sawBook = false;
      // Ops up to the first checkpoint_complete belong to the first checkpoint; later lines are diffs
      // (the worker updates the new book meanwhile: its cover, its text status).
      let firstComplete = false;
      for (const line of res.lines) {
        assert.notEqual(line.trim(), '', `${kind}: blank NDJSON line`);
        const msg = JSON.parse(line);
        const keys = Object.keys(msg);
        assert.equal(keys.length, 1, `${kind}: a line has exactly one key: ${line.slice(0, 200)}`);
        kinds.push(keys[0]);
        if (msg.checkpoint_complete) firstComplete = true;
        if (msg.checkpoint) {
          assert.equal(typeof msg.checkpoint.last_op_id, 'string', 'last_op_id is a string');
          for (const b of msg.checkpoint.buckets) assert.equal(typeof b.checksum, 'number', 'checksum is a number');
        }
        if (msg.data) {
          for (const op of msg.data.data) {
            assert.equal(typeof op.op_id, 'string', `op_id is a string: ${JSON.stringify(op)}`);
            assert.equal(typeof op.checksum, 'number', 'op checksum is a number');
            if (op.op === 'PUT') {
              assert.equal(typeof op.data, 'string', 'PUT data is JSON text');
              JSON.parse(op.data);
              if (op.object_type === 'books' && op.object_id === book.id) sawBook = true;
            }
            if (!firstComplete) sums[msg.data.bucket] = ((sums[msg.data.bucket] ?? 0) + op.checksum) >>> 0;
          }
        }
      }
      assert.equal(kinds[0], 'checkpoint', `${kind}: the first line is a full checkpoint: ${kinds}`);
      assert.ok(kinds.includes('checkpoint_complete'), `${kind}: the checkpoint is completed: ${kinds}`);
      assert.ok(sawBook, `${kind}: the user’s book is in the data`);
      const first = JSON.parse(res.lines[0]).checkpoint;
      for (const b of first.buckets) {
        assert.equal(sums[b.bucket] ?? 0, b.checksum >>> 0, `${kind}: bucket ${b.bucket} checksum equals the sum of its ops`);
      }
    }
  });
});

describe('server restart', () => {
  for (const signal of /** @type {const} */ (['SIGTERM', 'SIGKILL'])) {
    test(`a client reconnects after a restart (${signal}) and resumes`, { timeout: 150_000 }, async (t) => {
      const srv = await AthenaServer.start();
      try {
        const a = await srv.login();
        const book = await srv.uploadBook(a.token, 'zh/lunyu.epub');
        const c = await client(srv, { token: a.token, label: `restart-${signal}` });
        try {
          await c.waitForFirstSync();
          await c.waitForRows('SELECT id FROM books WHERE id = ?', [book.id], (r) => r.length === 1);
          const oplogBefore = (await c.query('SELECT count(*) AS n FROM ps_oplog'))[0].n;

          const stopped = await srv.kill({ signal });
          t.diagnostic(`server stopped in ${stopped.ms} ms${stopped.forced ? ' (SIGKILL after 10 s: streams held shutdown)' : ''}`);
          // Written while the server is down: uploaded once it is back.
          const noteId = randomUUID();
          await c.db.execute('INSERT INTO notes (id, book_id, device_id, content, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)', [
            noteId,
            book.id,
            'device-offline',
            'written offline',
            now(),
            now(),
          ]);
          await sleep(1_000);
          await srv.restart({ signal });

          await c.waitForRows(
            'SELECT user_id FROM notes WHERE id = ?',
            [noteId],
            (r) => r[0]?.user_id === a.userId,
            30_000,
            'offline note acknowledged after restart',
          );
          const got = await srv.api('GET', `/api/v1/books/${book.id}`, { token: a.token });
          const title = `After restart ${randomUUID().slice(0, 6)}`;
          await srv.apiOk('PATCH', `/api/v1/books/${book.id}/metadata`, {
            token: a.token,
            headers: { 'if-match': got.headers.get('etag') ?? '' },
            json: { title },
          });
          await c.waitForRows('SELECT title FROM books WHERE id = ?', [book.id], (r) => r[0]?.title === title, 10_000, 'edit after restart');
          assert.ok(c.db.currentStatus.connected, 'connected again');
          // Resumed, not restarted from scratch: the reconnect asked for its bucket after a non-zero op id.
          assert.ok(c.syncRequests.length >= 2, `a second sync request: ${JSON.stringify(c.syncRequests)}`);
          const resumed = c.syncRequests.at(-1)?.buckets ?? [];
          assert.ok(resumed.length > 0 && resumed.every((b) => b.after !== '0'), `resumed positions: ${JSON.stringify(resumed)}`);
          const oplogAfter = (await c.query('SELECT count(*) AS n FROM ps_oplog'))[0].n;
          t.diagnostic(`client oplog rows: ${oplogBefore} before, ${oplogAfter} after`);
        } finally {
          await finish(c);
        }
      } finally {
        await srv.stop();
      }
    });
  }
});

test('no client saw a checksum failure', (t) => {
  assert.ok(everyClient.length > 0);
  const deferred = everyClient.reduce((n, c) => n + c.deferredCheckpoints(), 0);
  t.diagnostic(`${everyClient.length} clients; checkpoints deferred for pending local writes: ${deferred}`);
  const warnings = new Set(everyClient.flatMap((c) => c.warnings().map((w) => `${c.label}: ${w.slice(0, 200)}`)));
  for (const w of warnings) t.diagnostic(`client warning: ${w}`);
  const failures = everyClient.flatMap((c) => c.checksumFailures().map((m) => `${c.label}: ${m}`));
  assert.deepEqual(failures, []);
});
