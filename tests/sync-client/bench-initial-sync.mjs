// Benchmark (not a test): initial download of N rows by the official PowerSync Node client
// (@powersync/node) from `athena serve`, compared with the same client's own local insert rate.
//
//   ATHENA_BIN=../../target/release/athena node bench-initial-sync.mjs
//   ATHENA_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test ATHENA_BIN=… node bench-initial-sync.mjs
//
// Environment: ATHENA_BIN, ATHENA_TEST_DATABASE_URL (as for the tests: a fresh database per server),
// BENCH_ROWS (default 100000), BENCH_PER_ROW_ROWS (rows for the execute-per-row baseline, default
// 20000), BENCH_LIMIT_S (hard stop, default 280).
//
// Phases, in one process on one machine:
//   1. baseline: a fresh PowerSyncDatabase (harness schema) inserts N `shelves` rows locally, three
//      ways, each into a fresh database: one writeTransaction with one execute per row (BENCH_PER_ROW_ROWS rows); one
//      executeBatch; one writeTransaction with a single INSERT … SELECT FROM json_each(?). rows/s of
//      each; the fastest is the baseline the sync rate is compared with.
//   2. seed: N shelves rows for one user go straight into the server's database (SQLite file
//      data/hot/athena.db through better-sqlite3, or PostgreSQL through psql) in one transaction while
//      the server runs; the sync role's capture triggers record them; timed until GET {sync}/health
//      reports pending_changes 0 (sequenced into the oplog).
//   3. initial sync: a fresh client connects; timed from connect() until waitForFirstSync() resolved
//      and `SELECT count(*) FROM shelves` = N. rows/s and the ratio to the fastest baseline.
//   4. server alone: the same download as a raw POST /sync/stream read up to its first
//      checkpoint_complete line without applying anything (what the server and HTTP cost).
// Prints one JSON object with every figure on stdout (progress on stderr).
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { PowerSyncDatabase } from '@powersync/node';
import { AthenaServer, sleep } from './harness.mjs';
import { AppSchema } from './schema.mjs';

const ROWS = Number(process.env.BENCH_ROWS ?? 100_000);
const LIMIT_S = Number(process.env.BENCH_LIMIT_S ?? 280);
// The execute-per-row baseline is slow (one worker round trip per row) and its rate does not depend
// on the count, so it runs on fewer rows by default to keep a run under five minutes.
const PER_ROW_ROWS = Math.min(ROWS, Number(process.env.BENCH_PER_ROW_ROWS ?? 20_000));
const PG = process.env.ATHENA_TEST_DATABASE_URL;
const run = promisify(execFile);

const hardStop = setTimeout(() => {
  process.stderr.write(`bench: over ${LIMIT_S} s, giving up\n`);
  process.exit(2);
}, LIMIT_S * 1000);
hardStop.unref();

/** @param {string} msg */
const log = (msg) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const round = (/** @type {number} */ x, d = 0) => Number(x.toFixed(d));

/** Realistic shelf values for row i of one user. */
function shelfRow(/** @type {number} */ i, /** @type {string} */ userId) {
  const ts = new Date(Date.UTC(2025, 0, 1) + i * 60_000).toISOString().replace('Z', '000Z');
  return {
    id: randomUUID(),
    user_id: userId,
    name: `Shelf ${i}: reading list`,
    description: i % 3 === 0 ? null : `Books I collected for topic number ${i}, to read this year`,
    cover_url: null,
    sort_order: i,
    is_deleted: 0,
    deleted_at: null,
    created_at: ts,
    updated_at: ts,
  };
}
const COLS = ['id', 'user_id', 'name', 'description', 'cover_url', 'sort_order', 'is_deleted', 'deleted_at', 'created_at', 'updated_at'];
const INSERT_SQL = `INSERT INTO shelves (${COLS.join(', ')}) VALUES (${COLS.map(() => '?').join(', ')})`;

/** A fresh local PowerSync database with the harness schema (no connector). */
async function localDb(/** @type {string} */ label) {
  const dir = mkdtempSync(path.join(os.tmpdir(), `athena-bench-${label}-`));
  const db = new PowerSyncDatabase({
    schema: AppSchema,
    database: { dbFilename: `${label}-${randomUUID().slice(0, 8)}.db`, dbLocation: dir },
  });
  await db.init();
  return {
    db,
    async dispose() {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Phase 1: the client's own local write rate. */
async function baseline() {
  const rows = Array.from({ length: ROWS }, (_, i) => shelfRow(i, 'baseline-user'));
  const params = rows.map((r) => COLS.map((c) => /** @type {any} */ (r)[c]));
  /** @type {Record<string, any>} */
  const out = {};

  {
    const { db, dispose } = await localDb('base-tx');
    const t0 = performance.now();
    await db.writeTransaction(async (tx) => {
      for (const p of params.slice(0, PER_ROW_ROWS)) await tx.execute(INSERT_SQL, p);
    });
    const ms = performance.now() - t0;
    const [{ n }] = await db.getAll('SELECT count(*) AS n FROM shelves');
    if (n !== PER_ROW_ROWS) throw new Error(`baseline writeTransaction: ${n} rows, expected ${PER_ROW_ROWS}`);
    out.write_transaction = { rows: PER_ROW_ROWS, ms: round(ms), rows_per_s: round((PER_ROW_ROWS / ms) * 1000) };
    log(`baseline writeTransaction (one execute per row): ${round(ms)} ms, ${out.write_transaction.rows_per_s} rows/s`);
    await dispose();
  }
  {
    const { db, dispose } = await localDb('base-batch');
    const t0 = performance.now();
    await db.executeBatch(INSERT_SQL, params);
    const ms = performance.now() - t0;
    const [{ n }] = await db.getAll('SELECT count(*) AS n FROM shelves');
    if (n !== ROWS) throw new Error(`baseline executeBatch: ${n} rows, expected ${ROWS}`);
    out.execute_batch = { ms: round(ms), rows_per_s: round((ROWS / ms) * 1000) };
    log(`baseline executeBatch: ${round(ms)} ms, ${out.execute_batch.rows_per_s} rows/s`);
    await dispose();
  }
  {
    // One statement: the rows as one JSON array parameter, expanded by SQLite's json_each.
    const { db, dispose } = await localDb('base-json');
    const json = JSON.stringify(rows);
    const t0 = performance.now();
    await db.writeTransaction(async (tx) => {
      await tx.execute(
        `INSERT INTO shelves (${COLS.join(', ')}) SELECT ${COLS.map((c) => `e.value ->> '${c}'`).join(', ')} FROM json_each(?) AS e`,
        [json],
      );
    });
    const ms = performance.now() - t0;
    const [{ n }] = await db.getAll('SELECT count(*) AS n FROM shelves');
    if (n !== ROWS) throw new Error(`baseline json_each: ${n} rows, expected ${ROWS}`);
    out.json_each_single_statement = { ms: round(ms), rows_per_s: round((ROWS / ms) * 1000) };
    log(`baseline one INSERT … SELECT FROM json_each(?): ${round(ms)} ms, ${out.json_each_single_statement.rows_per_s} rows/s`);
    await dispose();
  }
  return out;
}

/** Phase 2: N shelves for `userId` straight into the server's database, in one transaction. */
async function seed(/** @type {AthenaServer} */ server, /** @type {string} */ userId) {
  const t0 = performance.now();
  if (server.databaseUrl) {
    const sql = `INSERT INTO shelves (${COLS.join(', ')})
      SELECT gen_random_uuid()::text, '${userId}', 'Shelf ' || i || ': reading list',
             CASE WHEN i % 3 = 0 THEN NULL ELSE 'Books I collected for topic number ' || i || ', to read this year' END,
             NULL, i, FALSE, NULL,
             timestamptz '2025-01-01 00:00:00+00' + i * interval '1 minute',
             timestamptz '2025-01-01 00:00:00+00' + i * interval '1 minute'
      FROM generate_series(0, ${ROWS - 1}) AS i`;
    await run('psql', [server.databaseUrl, '-v', 'ON_ERROR_STOP=1', '-qtAc', sql], { timeout: 120_000 });
  } else {
    const db = new Database(path.join(server.dataDir, 'hot', 'athena.db'));
    db.pragma('busy_timeout = 30000');
    const insert = db.prepare(INSERT_SQL);
    db.transaction(() => {
      for (let i = 0; i < ROWS; i++) {
        const r = /** @type {any} */ (shelfRow(i, userId));
        insert.run(COLS.map((c) => r[c]));
      }
    })();
    db.close();
  }
  return performance.now() - t0;
}

/**
 * The server alone: a raw `POST /sync/stream` (as the client sends it, JSON lines), read until the
 * first `checkpoint_complete` line, without applying anything. Returns ms, bytes and data lines.
 * @param {AthenaServer} server
 * @param {string} token
 */
async function rawStream(server, token) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 120_000);
  const t0 = performance.now();
  let bytes = 0;
  let dataLines = 0;
  let firstByteMs = 0;
  let tail = '';
  /** @type {{ ms: number, first_byte_ms: number, bytes: number, data_lines: number, rows_per_s: number } | undefined} */
  let result;
  try {
    const res = await fetch(`${server.syncEndpoint('sync-port')}/sync/stream`, {
      method: 'POST',
      // Plain NDJSON, uncompressed: the server's own cost, nothing for this reader to inflate.
      headers: {
        authorization: `Token ${token}`,
        'content-type': 'application/json',
        accept: 'application/x-ndjson',
        'accept-encoding': 'identity',
      },
      body: JSON.stringify({
        buckets: [],
        include_checksum: true,
        raw_data: true,
        binary_data: false,
        client_id: randomUUID(),
        parameters: {},
        streams: { include_defaults: true, subscriptions: [] },
      }),
      signal: controller.signal,
    });
    if (!res.ok || !res.body) throw new Error(`raw stream answered ${res.status}`);
    const decoder = new TextDecoder();
    for await (const chunk of res.body) {
      if (!firstByteMs) firstByteMs = performance.now() - t0;
      bytes += chunk.byteLength;
      // Lines are megabytes long: only the start of each is looked at, and only new text is scanned.
      const text = decoder.decode(chunk, { stream: true });
      let start = 0;
      for (;;) {
        const nl = text.indexOf('\n', start);
        const line = tail + text.slice(start, nl < 0 ? Math.min(text.length, start + 64) : Math.min(nl, start + 64));
        if (nl < 0) {
          if (tail.length < 64) tail = line.slice(0, 64);
          break;
        }
        tail = '';
        start = nl + 1;
        if (line.startsWith('{"data"')) dataLines++;
        if (line.startsWith('{"checkpoint_complete"')) {
          const ms = performance.now() - t0;
          result = { ms: round(ms), first_byte_ms: round(firstByteMs), bytes, data_lines: dataLines, rows_per_s: round((ROWS / ms) * 1000) };
          break;
        }
      }
      if (result) break;
    }
  } catch (e) {
    // Leaving the loop cancels the body; an abort after the result is expected.
    if (!result) throw e;
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
  if (!result) throw new Error('raw stream ended without checkpoint_complete');
  return result;
}

/** CPU seconds (user + system) used so far by process `pid` (Linux /proc). */
function procCpuS(/** @type {number | undefined} */ pid) {
  if (!pid) return NaN;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

/** @param {AthenaServer} server */
async function syncHealth(server) {
  const res = await fetch(`${server.syncEndpoint('sync-port')}/health`, { signal: AbortSignal.timeout(5_000) });
  return (await res.json())?.data;
}

async function main() {
  const started = new Date();
  const machine = {
    cpus: os.cpus().length,
    cpu_model: os.cpus()[0]?.model,
    mem_gib: round(os.totalmem() / 2 ** 30, 1),
    loadavg_at_start: os.loadavg().map((x) => round(x, 2)),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
  };
  const bin = process.env.ATHENA_BIN ?? '../../target/debug/athena';
  const versions = JSON.parse(readFileSync(new URL('./package-lock.json', import.meta.url), 'utf8')).packages;
  log(`rows=${ROWS} backend=${PG ? 'postgres' : 'sqlite'} bin=${bin} load=${machine.loadavg_at_start.join(' ')}`);

  const base = await baseline();
  const baselineBest = Math.max(...Object.values(base).map((b) => b.rows_per_s));

  const server = await AthenaServer.start();
  try {
    const user = await server.login();
    const seedMs = await seed(server, user.userId);
    log(`seeded ${ROWS} shelves in ${round(seedMs)} ms`);
    const tSeq0 = performance.now();
    let health;
    for (;;) {
      health = await syncHealth(server);
      if (health && Number(health.pending_changes) === 0 && BigInt(health.last_op_id ?? '0') >= BigInt(ROWS)) break;
      if (performance.now() - tSeq0 > 150_000) throw new Error(`sequencing: still ${JSON.stringify(health)} after 150 s\n${server.logTail(20)}`);
      await sleep(50);
    }
    const sequenceMs = performance.now() - tSeq0;
    log(`sequenced (pending_changes 0, last_op_id ${health.last_op_id}) ${round(sequenceMs)} ms after the seed committed`);

    const client = await server.makeClient({ token: user.token, label: 'bench', connect: false });
    const cpu0 = { client: process.cpuUsage(), server: procCpuS(server.child?.pid) };
    const t0 = performance.now();
    await client.connect();
    const connectMs = performance.now() - t0;
    await client.waitForFirstSync(200_000);
    const firstSyncMs = performance.now() - t0;
    const [{ n }] = await client.query('SELECT count(*) AS n FROM shelves');
    const totalMs = performance.now() - t0;
    const clientCpu = process.cpuUsage(cpu0.client);
    const cpu = {
      client_process_s: round((clientCpu.user + clientCpu.system) / 1e6, 2),
      server_process_s: round(procCpuS(server.child?.pid) - cpu0.server, 2),
    };
    if (n !== ROWS) throw new Error(`client has ${n} shelves after first sync, expected ${ROWS}\n${client.diagnostics()}`);
    const failures = client.checksumFailures();
    const syncRate = round((ROWS / totalMs) * 1000);
    log(`initial sync: connect ${round(connectMs)} ms, first sync ${round(firstSyncMs)} ms, all ${ROWS} rows at ${round(totalMs)} ms = ${syncRate} rows/s (ratio ${round(syncRate / baselineBest, 2)} to the fastest baseline); CPU during it: client process ${cpu.client_process_s} s, server ${cpu.server_process_s} s`);

    await client.close();
    const raw = await rawStream(server, user.token);
    log(`raw /sync/stream to checkpoint_complete (server only, no client apply): ${raw.ms} ms, ${raw.bytes} bytes, ${raw.data_lines} data lines, ${raw.rows_per_s} rows/s`);

    const result = {
      started: started.toISOString(),
      rows: ROWS,
      backend: PG ? 'postgres' : 'sqlite',
      server_bin: path.resolve(bin),
      client: { '@powersync/node': versions['node_modules/@powersync/node']?.version, '@powersync/common': versions['node_modules/@powersync/common']?.version },
      machine,
      baseline: base,
      baseline_best_rows_per_s: baselineBest,
      seed_ms: round(seedMs),
      sequence_ms: round(sequenceMs),
      sequence_rows_per_s: round((ROWS / sequenceMs) * 1000),
      initial_sync: {
        connect_ms: round(connectMs),
        first_sync_ms: round(firstSyncMs),
        all_rows_ms: round(totalMs),
        rows_per_s: syncRate,
        cpu_during_sync: cpu,
        checksum_failures: failures.length,
        warnings: client.warnings().length,
      },
      raw_stream_server_only: raw,
      ratio_to_baseline: round(syncRate / baselineBest, 3),
      ratio_to_each_baseline: Object.fromEntries(Object.entries(base).map(([k, b]) => [k, round(syncRate / b.rows_per_s, 3)])),
      target_met: syncRate >= 0.8 * baselineBest,
      loadavg_at_end: os.loadavg().map((x) => round(x, 2)),
    };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await server.stop();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`bench failed: ${e instanceof Error ? e.stack : e}\n`);
    process.exit(1);
  },
);
