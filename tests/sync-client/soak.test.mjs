// Convergence soak: five PowerSync clients of one user (and one of a second user, for isolation)
// make random edits across the writable tables while going offline and online, dropping their
// streams, and while the server restarts (once with SIGKILL). At the end every client must hold
// exactly the server's rows, no acknowledged write may be lost, and no client may have seen a
// checksum failure.
//
//   ATHENA_SOAK_SECONDS  how long the random phase runs (default 100)
//   ATHENA_SOAK_SEED     the random seed (printed at the start; set it to replay a run's choices)
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { AthenaServer, sleep, waitFor } from './harness.mjs';
import { tables } from './schema.mjs';

const SECONDS = Number(process.env.ATHENA_SOAK_SECONDS ?? 100);
const SEED = Number(process.env.ATHENA_SOAK_SEED ?? Math.floor(Math.random() * 2 ** 31));
const CLIENTS = 5;

/** @typedef {import('./harness.mjs').Client} Client */

/**
 * A small seeded generator (mulberry32), so a failing run's choices can be replayed.
 * @param {number} seed
 */
function prng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    /** @param {number} n */
    int: (n) => Math.floor(next() * n),
    /** @template T @param {T[]} xs @returns {T} */
    pick: (xs) => xs[Math.floor(next() * xs.length)],
    /** @param {number} p */
    chance: (p) => next() < p,
  };
}

/** Strictly increasing client timestamps across every simulated device (no two writes share one). */
let lastStamp = 0;
function stamp() {
  lastStamp = Math.max(lastStamp + 1, Date.now());
  return new Date(lastStamp).toISOString();
}

const TABLES = Object.keys(tables);
/** @param {string} table */
const selectAll = (table) => `SELECT * FROM ${table} ORDER BY id`;

/**
 * Every synced table of a client, as plain rows.
 * @param {Client} c
 * @returns {Promise<Record<string, any[]>>}
 */
async function dump(c) {
  /** @type {Record<string, any[]>} */
  const out = {};
  for (const table of TABLES) out[table] = await c.query(selectAll(table));
  return out;
}

/**
 * One simulated device: random writes through its local database.
 * @param {Client} c
 * @param {ReturnType<typeof prng>} rnd
 * @param {string[]} bookIds
 * @param {{ writes: number }} counts
 */
async function randomWrite(c, rnd, bookIds, counts) {
  const device = c.label;
  const n = ++counts.writes;
  const value = `${device}#${n}`;
  const now = stamp();
  const book = rnd.pick(bookIds);
  const live = async (/** @type {string} */ table, where = 'is_deleted = 0') =>
    (await c.query(`SELECT id FROM ${table} WHERE ${where}`)).map((r) => r.id);
  const table = rnd.pick(['notes', 'notes', 'highlights', 'highlights', 'bookmarks', 'shelves', 'shelf_books', 'reading_progress', 'reading_progress', 'reading_sessions', 'user_settings', 'reading_settings', 'books']);
  switch (table) {
    case 'notes':
    case 'highlights': {
      const column = table === 'notes' ? 'content' : 'text';
      const ids = await live(table);
      if (ids.length < 3 || rnd.chance(0.3)) {
        await c.db.execute(
          `INSERT INTO ${table} (id, book_id, device_id, ${column}, page_number, is_deleted, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?)`,
          [randomUUID(), book, device, value, rnd.int(300), now, now],
        );
      } else if (rnd.chance(0.08)) {
        await c.db.execute(`DELETE FROM ${table} WHERE id = ?`, [rnd.pick(ids)]);
      } else {
        await c.db.execute(`UPDATE ${table} SET ${column} = ?, device_id = ?, updated_at = ? WHERE id = ?`, [value, device, now, rnd.pick(ids)]);
      }
      return;
    }
    case 'bookmarks': {
      const ids = await live('bookmarks');
      if (ids.length < 2 || rnd.chance(0.3)) {
        await c.db.execute(
          'INSERT INTO bookmarks (id, book_id, device_id, title, page_number, is_deleted, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?)',
          [randomUUID(), book, device, value, rnd.int(300), now, now],
        );
      } else if (rnd.chance(0.1)) {
        await c.db.execute('DELETE FROM bookmarks WHERE id = ?', [rnd.pick(ids)]);
      } else {
        await c.db.execute('UPDATE bookmarks SET title = ?, page_number = ?, updated_at = ? WHERE id = ?', [value, rnd.int(300), now, rnd.pick(ids)]);
      }
      return;
    }
    case 'shelves': {
      const ids = await live('shelves');
      if (ids.length < 2 || rnd.chance(0.2)) {
        await c.db.execute('INSERT INTO shelves (id, name, sort_order, is_deleted, created_at, updated_at) VALUES (?, ?, ?, 0, ?, ?)', [
          randomUUID(),
          value,
          rnd.int(100),
          now,
          now,
        ]);
      } else if (rnd.chance(0.05)) {
        await c.db.execute('DELETE FROM shelves WHERE id = ?', [rnd.pick(ids)]);
      } else {
        await c.db.execute('UPDATE shelves SET name = ?, sort_order = ?, updated_at = ? WHERE id = ?', [value, rnd.int(100), now, rnd.pick(ids)]);
      }
      return;
    }
    case 'shelf_books': {
      const shelves = await live('shelves');
      const items = await c.query('SELECT id, shelf_id, book_id FROM shelf_books');
      if (items.length > 0 && rnd.chance(0.3)) {
        await c.db.execute('DELETE FROM shelf_books WHERE id = ?', [rnd.pick(items).id]);
      } else if (items.length > 0 && rnd.chance(0.5)) {
        await c.db.execute('UPDATE shelf_books SET sort_order = ? WHERE id = ?', [rnd.int(1000), rnd.pick(items).id]);
      } else if (shelves.length > 0) {
        const shelf = rnd.pick(shelves);
        if (items.some((i) => i.shelf_id === shelf && i.book_id === book)) return;
        await c.db.execute('INSERT INTO shelf_books (id, shelf_id, book_id, sort_order, added_at) VALUES (?, ?, ?, ?, ?)', [
          randomUUID(),
          shelf,
          book,
          rnd.int(1000),
          now,
        ]);
      }
      return;
    }
    case 'reading_progress': {
      const progress = Math.round(rnd.next() * 1000) / 1000;
      const [row] = await c.query('SELECT id FROM reading_progress WHERE book_id = ?', [book]);
      if (row) {
        await c.db.execute('UPDATE reading_progress SET progress = ?, device_id = ?, last_position = ?, updated_at = ? WHERE id = ?', [
          progress,
          device,
          value,
          now,
          row.id,
        ]);
      } else {
        await c.db.execute(
          'INSERT INTO reading_progress (id, book_id, device_id, progress, last_position, updated_at) VALUES (?, ?, ?, ?, ?, ?)',
          [randomUUID(), book, device, progress, value, now],
        );
      }
      return;
    }
    case 'reading_sessions': {
      const ids = (await c.query('SELECT id FROM reading_sessions')).map((r) => r.id);
      if (ids.length < 2 || rnd.chance(0.3)) {
        await c.db.execute(
          'INSERT INTO reading_sessions (id, book_id, device_id, is_active, total_ms, created_at, updated_at) VALUES (?, ?, ?, 1, ?, ?, ?)',
          [randomUUID(), book, device, rnd.int(100_000), now, now],
        );
      } else if (rnd.chance(0.1)) {
        await c.db.execute('DELETE FROM reading_sessions WHERE id = ?', [rnd.pick(ids)]);
      } else {
        await c.db.execute('UPDATE reading_sessions SET total_ms = ?, is_active = ?, updated_at = ? WHERE id = ?', [
          rnd.int(1_000_000),
          rnd.int(2),
          now,
          rnd.pick(ids),
        ]);
      }
      return;
    }
    case 'user_settings': {
      const settings = JSON.stringify({ daily_goal_minutes: rnd.int(120), marker: value });
      const [row] = await c.query('SELECT id FROM user_settings');
      if (row) {
        await c.db.execute('UPDATE user_settings SET settings_json = ?, device_id = ?, updated_at = ? WHERE id = ?', [settings, device, now, row.id]);
      } else {
        await c.db.execute('INSERT INTO user_settings (id, device_id, settings_json, updated_at) VALUES (?, ?, ?, ?)', [randomUUID(), device, settings, now]);
      }
      return;
    }
    case 'reading_settings': {
      const forBook = rnd.chance(0.5) ? book : null;
      const size = 12 + rnd.int(20);
      const [row] = await c.query('SELECT id FROM reading_settings WHERE book_id IS ?', [forBook]);
      if (row) {
        await c.db.execute('UPDATE reading_settings SET font_size = ?, theme_id = ?, device_id = ?, updated_at = ? WHERE id = ?', [
          size,
          value,
          device,
          now,
          row.id,
        ]);
      } else {
        await c.db.execute(
          'INSERT INTO reading_settings (id, book_id, device_id, theme_id, font_size, is_deleted, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?)',
          [randomUUID(), forBook, device, value, size, now, now],
        );
      }
      return;
    }
    case 'books':
      await c.db.execute('UPDATE books SET title = ? WHERE id = ?', [value, book]);
      return;
  }
}

/**
 * Operations the server acknowledged (a 2xx answer that does not list the operation in `errors`),
 * in the order the answers came, over all clients.
 * @param {Client[]} clients
 */
function acknowledged(clients) {
  const acked = [];
  const refused = [];
  for (const c of clients) {
    for (const u of c.uploads) {
      if (u.status < 200 || u.status >= 300) continue;
      const errors = u.body?.data?.errors ?? [];
      const bad = new Set(errors.map((/** @type {any} */ e) => e.id));
      for (const op of u.operations) {
        if (bad.has(op.id)) refused.push({ ...op, client: c.label, errors: errors.filter((/** @type {any} */ e) => e.id === op.id) });
        else acked.push({ ...op, client: c.label, at: u.at });
      }
    }
  }
  acked.sort((x, y) => x.at - y.at);
  return { acked, refused };
}

test(`convergence soak: ${CLIENTS} clients, ${SECONDS} s of random edits, restarts and dropped connections`, { timeout: (SECONDS + 150) * 1000 }, async (t) => {
  t.diagnostic(`ATHENA_SOAK_SEED=${SEED} ATHENA_SOAK_SECONDS=${SECONDS}`);
  process.stderr.write(`soak: ATHENA_SOAK_SEED=${SEED} ATHENA_SOAK_SECONDS=${SECONDS}\n`);
  const rnd = prng(SEED);
  const server = await AthenaServer.start();
  /** @type {Client[]} */
  const clients = [];
  try {
    const a = await server.login();
    const b = await server.login();
    const books = [await server.uploadBook(a.token, 'zh/lunyu.epub'), await server.uploadBook(a.token, 'zh/tangshi300.epub')];
    const bookIds = books.map((x) => x.id);
    const bBook = await server.uploadBook(b.token, 'zh/lunyu.epub');
    for (let i = 0; i < CLIENTS; i++) {
      clients.push(await server.makeClient({ token: a.token, label: `soak-${i}`, retryDelayMs: 500 }));
    }
    const other = await server.makeClient({ token: b.token, label: 'soak-other', retryDelayMs: 500 });
    await Promise.all([...clients, other].map((c) => c.waitForFirstSync(30_000)));

    const counts = { writes: 0, offline: 0, dropped: 0, restarts: 0 };
    const online = clients.map(() => true);
    const deadline = Date.now() + SECONDS * 1000;
    /** @type {string[]} */
    const failures = [];

    // Each device: a write most of the time, sometimes offline for a while, sometimes a dropped stream.
    const device = async (/** @type {number} */ i) => {
      const c = clients[i];
      const r = prng(SEED + 1 + i);
      while (Date.now() < deadline) {
        const roll = r.next();
        try {
          if (roll < 0.04 && online[i]) {
            online[i] = false;
            counts.offline++;
            await c.db.disconnect();
          } else if (roll < 0.1 && !online[i]) {
            await c.connect();
            online[i] = true;
          } else if (roll < 0.12 && online[i]) {
            counts.dropped++;
            await c.db.disconnect();
            await c.connect();
          } else {
            await randomWrite(c, r, bookIds, counts);
          }
        } catch (e) {
          failures.push(`${c.label}: ${e instanceof Error ? e.stack : e}`);
        }
        await sleep(50 + r.int(250));
      }
    };
    // The second user writes too, on their own book.
    const bystander = async () => {
      const r = prng(SEED + 100);
      while (Date.now() < deadline) {
        try {
          const now = stamp();
          await other.db.execute('INSERT INTO notes (id, book_id, device_id, content, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)', [
            randomUUID(),
            bBook.id,
            'other',
            `other#${r.int(1e9)}`,
            now,
            now,
          ]);
        } catch (e) {
          failures.push(`soak-other: ${e instanceof Error ? e.stack : e}`);
        }
        await sleep(500 + r.int(1000));
      }
    };
    // Restarts at about a quarter, half and three quarters of the run, the middle one a SIGKILL.
    const restarts = async () => {
      for (const [fraction, signal] of /** @type {const} */ ([
        [0.25, 'SIGTERM'],
        [0.5, 'SIGKILL'],
        [0.75, 'SIGTERM'],
      ])) {
        const when = deadline - SECONDS * 1000 * (1 - fraction);
        if (when > Date.now()) await sleep(when - Date.now());
        const stopped = await server.restart({ signal, graceMs: 5_000 });
        counts.restarts++;
        t.diagnostic(`restart (${signal}) at ${Math.round(fraction * 100)}%: stopped in ${stopped.ms} ms${stopped.forced ? ' (forced)' : ''}`);
      }
    };
    await Promise.all([...clients.map((_, i) => device(i)), bystander(), restarts()]);
    assert.deepEqual(failures, [], 'local writes and connection changes all worked');
    t.diagnostic(`random phase: ${JSON.stringify(counts)}`);

    // Everyone back online; every queue drains.
    for (const [i, c] of clients.entries()) if (!online[i]) await c.connect();
    const settle = Date.now();
    for (const c of [...clients, other]) {
      await waitFor(async () => (await c.db.getUploadQueueStats()).count === 0, 60_000, `${c.label}: upload queue to drain`).catch((e) => {
        throw new Error(`${e.message}\n${c.diagnostics()}`);
      });
    }

    // The server's rows: a fresh client after a full sync, re-read until every device agrees with it.
    const fresh = await server.makeClient({ token: a.token, label: 'soak-fresh', retryDelayMs: 500 });
    clients.push(fresh);
    await fresh.waitForFirstSync(30_000);
    /** @type {Record<string, any[]>} */
    let truth = {};
    /** @type {string[]} */
    let differing = [];
    await waitFor(
      async () => {
        truth = await dump(fresh);
        const want = JSON.stringify(truth);
        differing = [];
        for (const c of clients) {
          const got = await dump(c);
          if (JSON.stringify(got) !== want) {
            const tablesOff = TABLES.filter((tb) => JSON.stringify(got[tb]) !== JSON.stringify(truth[tb]));
            differing.push(`${c.label}: ${tablesOff.join(', ')}`);
          }
        }
        return differing.length === 0;
      },
      60_000,
      'every client to hold the server’s rows',
    ).catch(async (e) => {
      const details = [];
      for (const c of clients) {
        const got = await dump(c);
        for (const tb of TABLES) {
          const want = new Map(truth[tb].map((r) => [r.id, JSON.stringify(r)]));
          const have = new Map(got[tb].map((r) => [r.id, JSON.stringify(r)]));
          for (const [id, row] of have) if (want.get(id) !== row) details.push(`${c.label} ${tb} ${id}: has ${row}, server ${want.get(id)}`);
          for (const [id, row] of want) if (!have.has(id)) details.push(`${c.label} ${tb} ${id}: missing ${row}`);
        }
      }
      throw new Error(`${e.message}\n(seed ${SEED}) differing: ${differing.join('; ')}\n${details.slice(0, 30).join('\n')}\n${clients[0].diagnostics()}`);
    });
    t.diagnostic(`converged ${Date.now() - settle} ms after the random phase; rows: ${TABLES.map((tb) => `${tb}=${truth[tb].length}`).join(' ')}`);
    const copies = ['notes', 'highlights'].map((tb) => `${tb}=${truth[tb].filter((r) => r.conflict_of).length}`).join(' ');
    t.diagnostic(`conflict copies: ${copies}`);

    checkAcknowledged(t, truth, acknowledged(clients), a.userId);

    // Isolation: the second user's client holds only their own rows, and the first user's devices none of theirs.
    for (const tb of TABLES) {
      const leaked = await other.query(`SELECT id FROM ${tb} WHERE user_id IS NOT ?`, [b.userId]);
      assert.deepEqual(leaked, [], `the second user received ${tb} rows of another user`);
      assert.ok(truth[tb].every((r) => r.user_id === a.userId), `${tb}: the first user holds another user's rows`);
    }

    const deferred = clients.reduce((n, c) => n + c.deferredCheckpoints(), 0);
    t.diagnostic(`checkpoints deferred for pending local writes: ${deferred}`);
    const checksum = [...clients, other].flatMap((c) => c.checksumFailures().map((m) => `${c.label}: ${m.slice(0, 300)}`));
    assert.deepEqual(checksum, [], `checksum failures (seed ${SEED})`);
  } finally {
    await server.stop();
  }
});

/**
 * No acknowledged write is lost: for last-writer-wins tables the newest acknowledged value per key is
 * the server's; for notes and highlights the newest acknowledged edit of a row is its content (older
 * edits may live on as conflict copies); column-merge tables hold acknowledged values; deletes stick.
 * @param {import('node:test').TestContext} t
 * @param {Record<string, any[]>} truth
 * @param {ReturnType<typeof acknowledged>} ack
 * @param {string} userId
 */
function checkAcknowledged(t, truth, { acked, refused }, userId) {
  const byId = (/** @type {string} */ table) => new Map(truth[table].map((r) => [r.id, r]));
  const problems = [];
  const refusedCodes = refused.map((r) => `${r.table} ${r.op} ${r.errors.map((/** @type {any} */ e) => e.code).join(',')}`);
  t.diagnostic(`acknowledged operations: ${acked.length}; refused: ${refused.length}${refused.length ? ` (${[...new Set(refusedCodes)].join('; ')})` : ''}`);
  // Refusals that the random writes should never cause: only references to rows deleted meanwhile are expected.
  for (const r of refused) {
    for (const e of r.errors) if (e.code !== 'not_found') problems.push(`unexpected refusal: ${JSON.stringify(r).slice(0, 400)}`);
  }

  // Which key (book or user) a last-writer-wins row stands for, from the PUT that created it.
  /** @type {Record<string, Map<string, string>>} */
  const keyOf = { reading_progress: new Map(), reading_settings: new Map(), user_settings: new Map() };
  for (const op of acked) {
    if (op.op === 'PUT' && op.table in keyOf) keyOf[op.table].set(op.id, op.table === 'user_settings' ? userId : String(op.data?.book_id ?? null));
  }
  for (const [table, column] of /** @type {const} */ ([
    ['reading_progress', 'progress'],
    ['reading_settings', 'theme_id'],
    ['user_settings', 'settings_json'],
  ])) {
    /** @type {Map<string, any>} newest acknowledged write per key */
    const newest = new Map();
    for (const op of acked.filter((o) => o.table === table && o.op !== 'DELETE' && o.data?.updated_at)) {
      const key = keyOf[table].get(op.id);
      if (key === undefined) continue;
      const best = newest.get(key);
      if (!best || Date.parse(op.data.updated_at) > Date.parse(best.data.updated_at)) newest.set(key, op);
    }
    for (const [key, op] of newest) {
      const rows = truth[table].filter((r) => (table === 'user_settings' ? userId : String(r.book_id ?? null)) === key);
      if (rows.length !== 1) {
        problems.push(`${table} ${key}: ${rows.length} rows on the server (one per key)`);
        continue;
      }
      const row = rows[0];
      if (Date.parse(row.updated_at) !== Date.parse(op.data.updated_at)) {
        problems.push(`${table} ${key}: server updated_at ${row.updated_at}, newest acknowledged ${op.data.updated_at} (${JSON.stringify(op)})`);
      } else if (column in op.data && String(row[column]) !== String(op.data[column])) {
        problems.push(`${table} ${key}: server ${column} ${row[column]}, newest acknowledged ${op.data[column]}`);
      }
    }
  }

  for (const [table, column] of /** @type {const} */ ([
    ['notes', 'content'],
    ['highlights', 'text'],
  ])) {
    const rows = byId(table);
    const deleted = new Set(acked.filter((o) => o.table === table && o.op === 'DELETE').map((o) => o.id));
    /** @type {Map<string, any>} */
    const newest = new Map();
    for (const op of acked.filter((o) => o.table === table && o.op !== 'DELETE' && column in (o.data ?? {}))) {
      const best = newest.get(op.id);
      if (!best || Date.parse(op.data.updated_at) > Date.parse(best.data.updated_at)) newest.set(op.id, op);
    }
    for (const op of acked.filter((o) => o.table === table && o.op !== 'DELETE' && column in (o.data ?? {}))) {
      const row = rows.get(op.id);
      if (!row) {
        problems.push(`${table} ${op.id}: acknowledged ${op.op} by ${op.client}, row missing on the server`);
        continue;
      }
      if (deleted.has(op.id)) {
        if (row.is_deleted !== 1) problems.push(`${table} ${op.id}: acknowledged DELETE, row not deleted`);
        continue;
      }
      const copies = truth[table].filter((r) => r.conflict_of === op.id);
      const kept = row[column] === op.data[column] || copies.some((r) => r[column] === op.data[column]);
      if (newest.get(op.id) === op && row[column] !== op.data[column]) {
        problems.push(
          `${table} ${op.id}: the newest acknowledged edit (${op.client}, ${op.data.updated_at}: ${op.data[column]}) is not the row's ${column} (${row[column]}, ${row.updated_at}); copies: ${JSON.stringify(copies.map((r) => [r[column], r.updated_at]))}`,
        );
      } else if (!kept && Date.parse(row.updated_at) < Date.parse(op.data.updated_at)) {
        problems.push(`${table} ${op.id}: acknowledged edit ${op.data[column]} (${op.data.updated_at}) lost: neither the row nor a copy holds it`);
      }
    }
  }

  // Column merge: every non-deleted row holds, per column, a value some acknowledged write sent; deletes stick.
  for (const table of ['bookmarks', 'shelves', 'shelf_books', 'reading_sessions', 'books']) {
    const rows = byId(table);
    for (const op of acked.filter((o) => o.table === table)) {
      const row = rows.get(op.id);
      if (op.op === 'DELETE') {
        if (row && !(row.is_deleted === 1 || row.deleted_at)) problems.push(`${table} ${op.id}: acknowledged DELETE, row still live`);
      }
    }
    for (const column of ['title', 'name', 'sort_order', 'total_ms']) {
      /** @type {Map<string, Set<string>>} */
      const sent = new Map();
      for (const op of acked.filter((o) => o.table === table && o.data && column in o.data)) {
        if (!sent.has(op.id)) sent.set(op.id, new Set());
        sent.get(op.id)?.add(String(op.data[column]));
      }
      for (const [id, values] of sent) {
        const row = rows.get(id);
        if (row && !values.has(String(row[column])) && !(table === 'shelf_books' || table === 'books')) {
          problems.push(`${table} ${id}: ${column} ${row[column]} is none of the acknowledged values`);
        }
        if (table === 'books' && row && !values.has(String(row[column]))) {
          problems.push(`books ${id}: title ${row.title} is none of the acknowledged titles`);
        }
      }
    }
  }
  assert.deepEqual(problems, [], `acknowledged writes lost or misapplied (seed ${SEED})`);
}
