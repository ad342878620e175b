// Test harness: runs the real `athena serve` binary on loopback and drives the official
// PowerSync Node client (@powersync/node) against it.
//
// Environment:
//   ATHENA_BIN                 server binary (default: ../../target/debug/athena)
//   ATHENA_TEST_DATABASE_URL   when set, each server gets a fresh PostgreSQL database
//                              created from this URL (and dropped at stop); SQLite otherwise
//   ATHENA_SYNC_TEST_VERBOSE   when set, client warnings and server stderr are echoed live
import { spawn, execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { PowerSyncDatabase, SyncStreamConnectionMethod } from '@powersync/node';
import { AppSchema } from './schema.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, '../..');
/** The shared corpus: `ATHENA_CORPUS`, else `shared/` beside the repository (as CI lays it out), else the
 * developers' machine layout. */
export const CORPUS =
  process.env.ATHENA_CORPUS ??
  [path.resolve(REPO_ROOT, '../shared/corpus'), path.resolve(REPO_ROOT, '../../shared/corpus'), '/work/shared/corpus'].find((p) =>
    existsSync(path.join(p, 'truth.json')),
  ) ??
  path.resolve(REPO_ROOT, '../shared/corpus');
const BIN = path.resolve(process.env.ATHENA_BIN ?? path.join(REPO_ROOT, 'target/debug/athena'));
const VERBOSE = Boolean(process.env.ATHENA_SYNC_TEST_VERBOSE);
const run = promisify(execFile);

/** Every child process started here, killed when this process exits whatever happens. */
const children = new Set();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** @param {number} ms */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `predicate` until it returns a truthy value (which is returned) or `timeoutMs` passes.
 * @template T
 * @param {() => T | null | undefined | false | Promise<T | null | undefined | false>} predicate
 * @param {number} [timeoutMs]
 * @param {string} [what] description for the timeout error
 * @returns {Promise<T>}
 */
export async function waitFor(predicate, timeoutMs = 10_000, what = 'condition') {
  const deadline = Date.now() + timeoutMs;
  /** @type {unknown} */
  let lastError;
  for (;;) {
    try {
      const value = await predicate();
      if (value) return value;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) {
      const cause = lastError ? ` (last error: ${String(lastError)})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${cause}`);
    }
    await sleep(100);
  }
}

/**
 * Rejects when `promise` does not settle within `ms`.
 * @template T
 * @param {Promise<T>} promise
 * @param {number} ms
 * @param {string} what
 * @returns {Promise<T>}
 */
export function withTimeout(promise, ms, what) {
  /** @type {NodeJS.Timeout | undefined} */
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
  });
  return /** @type {Promise<T>} */ (Promise.race([promise, timeout])).finally(() => clearTimeout(timer));
}

/** A unique, valid e-mail address per call (send-code is limited to one per address per 60 s). */
export function uniqueEmail(label = 'user') {
  return `${label}-${randomUUID().slice(0, 8)}@example.test`;
}

/**
 * @typedef {{ api?: number, sync?: number, metrics?: number }} Ports
 * @typedef {{ status: number, headers: Headers, body: any, text: string }} ApiResponse
 * @typedef {{ token: string, userId: string, email: string, refreshToken: string }} Login
 * @typedef {((options?: { force?: boolean }) => Promise<string>) & { refreshes: number }} TokenSource
 */

/**
 * When a JWT expires (ms since the epoch; 0 when it cannot be read).
 * @param {string} token
 */
export function tokenExpiresAt(token) {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
    return typeof payload.exp === 'number' ? payload.exp * 1000 : 0;
  } catch {
    return 0;
  }
}

/** One `athena serve` process (restartable on the same data directory and ports). */
export class AthenaServer {
  /** @type {import('node:child_process').ChildProcess | null} */
  child = null;
  /** @type {Ports} */
  ports = {};
  /** @type {string[]} */
  stderrTail = [];
  /** temp folder holding data/ and backups/; the process runs in it */
  /** @type {string} */
  root = '';
  /** @type {string} */
  dataDir = '';
  /** @type {string | undefined} */
  databaseUrl;
  /** @type {string | undefined} */
  databaseName;
  /** @type {Array<{at: number, kind: string}>} */
  events = [];
  /** @type {Set<Client>} */
  clients = new Set();
  /** whether the running build has the sync role (a `"role":"sync"` listening line) */
  hasSync = false;
  /** whether start and restart fail without a sync listener */
  requireSync = true;
  /** extra environment for the server process (set after the harness's own variables, so it wins) */
  /** @type {Record<string, string>} */
  extraEnv = {};

  /**
   * Starts a server on a fresh data directory (and a fresh PostgreSQL database when configured).
   * @param {{ requireSync?: boolean, env?: Record<string, string> }} [options] `env`: extra server
   *   environment, e.g. `{ ATHENA_ACCESS_TOKEN_TTL_SECS: '5' }` (kept across restarts)
   */
  static async start(options = {}) {
    const server = new AthenaServer();
    server.requireSync = options.requireSync ?? true;
    server.extraEnv = { ...(options.env ?? {}) };
    server.root = await mkdtemp(path.join(tmpdir(), 'athena-sync-test-'));
    server.dataDir = path.join(server.root, 'data');
    const adminUrl = process.env.ATHENA_TEST_DATABASE_URL;
    if (adminUrl) {
      server.databaseName = `athena_sync_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
      await psql(adminUrl, `CREATE DATABASE ${server.databaseName}`);
      const url = new URL(adminUrl);
      url.pathname = `/${server.databaseName}`;
      server.databaseUrl = url.toString();
    }
    try {
      await server.#spawn({ api: 0, sync: 0, metrics: 0 }, server.requireSync);
    } catch (e) {
      await server.stop();
      throw e;
    }
    return server;
  }

  get apiBase() {
    return `http://127.0.0.1:${this.ports.api}`;
  }

  /**
   * The sync service's base URL as a client's `fetchCredentials` returns it.
   * @param {'sync-port' | 'api-prefix'} kind
   */
  syncEndpoint(kind) {
    if (kind === 'api-prefix') return `${this.apiBase}/powersync`;
    if (!this.ports.sync) throw new Error('this server has no sync listener');
    return `http://127.0.0.1:${this.ports.sync}`;
  }

  /**
   * @param {Ports} ports
   * @param {boolean} requireSync
   */
  async #spawn(ports, requireSync) {
    /** @type {Record<string, string | undefined>} */
    const env = { ...process.env };
    for (const key of Object.keys(env)) {
      if (key.startsWith('ATHENA_') || key.startsWith('POWERSYNC_') || key === 'DATABASE_URL') delete env[key];
    }
    Object.assign(env, {
      ATHENA_MODE: 'development',
      ATHENA_BIND: '127.0.0.1',
      ATHENA_DATA_DIR: this.dataDir,
      ATHENA_BACKUP_DIR: path.join(this.root, 'backups'),
      ATHENA_API_PORT: String(ports.api ?? 0),
      POWERSYNC_PORT: String(ports.sync ?? 0),
      ATHENA_METRICS_PORT: String(ports.metrics ?? 0),
    });
    if (this.databaseUrl) env.DATABASE_URL = this.databaseUrl;
    Object.assign(env, this.extraEnv);

    const child = spawn(BIN, ['serve'], { env, cwd: this.root, stdio: ['ignore', 'ignore', 'pipe'] });
    children.add(child);
    this.child = child;
    /** @type {Ports} */
    const seen = {};
    let syncMissing = false;
    /** @type {string | null} */
    let exited = null;
    child.on('exit', (code, signal) => {
      exited = `exited with ${code ?? signal}`;
      children.delete(child);
    });
    child.on('error', (e) => {
      exited = `could not start ${BIN}: ${e.message}`;
    });
    const lines = createInterface({ input: /** @type {import('node:stream').Readable} */ (child.stderr) });
    lines.on('line', (line) => {
      this.stderrTail.push(line);
      if (this.stderrTail.length > 400) this.stderrTail.shift();
      if (VERBOSE) process.stderr.write(`[athena] ${line}\n`);
      /** @type {any} */
      let entry;
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      if (entry.message === 'listening' && typeof entry.addr === 'string') {
        const port = Number(entry.addr.slice(entry.addr.lastIndexOf(':') + 1));
        const role = /** @type {keyof Ports} */ (entry.role);
        if (role === 'api' || role === 'sync' || role === 'metrics') seen[role] = port;
      }
      if (typeof entry.message === 'string' && entry.message.includes('sync role is not part of this build')) {
        syncMissing = true;
      }
    });

    await waitFor(
      () => {
        if (exited) throw new Error(`athena ${exited}\n${this.stderrTail.slice(-20).join('\n')}`);
        return seen.api && (seen.sync || syncMissing);
      },
      30_000,
      'athena to log its listening addresses',
    ).catch((e) => {
      throw new Error(`${e.message}\n--- server stderr ---\n${this.stderrTail.slice(-30).join('\n')}`);
    });
    this.hasSync = Boolean(seen.sync);
    if (requireSync && !this.hasSync) {
      throw new Error('this athena build has no sync role (no "role":"sync" listening line)');
    }
    // The metrics listener may come up a moment after the others; it is optional for these tests.
    await waitFor(() => seen.metrics, 2_000, 'metrics listener').catch(() => undefined);
    this.ports = { ...seen };
    await waitFor(
      async () => {
        if (exited) throw new Error(`athena ${exited}`);
        const res = await fetch(`${this.apiBase}/health`, { signal: AbortSignal.timeout(2_000) });
        return res.status < 500;
      },
      20_000,
      'GET /health',
    );
    this.events.push({ at: Date.now(), kind: 'started' });
  }

  /**
   * Stops the process: SIGTERM, then SIGKILL after `graceMs`.
   * @param {{ signal?: NodeJS.Signals, graceMs?: number }} [options]
   * @returns {Promise<{ forced: boolean, ms: number }>}
   */
  async kill({ signal = 'SIGTERM', graceMs = 10_000 } = {}) {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return { forced: false, ms: 0 };
    const started = Date.now();
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    let forced = false;
    const timer = setTimeout(() => {
      forced = true;
      child.kill('SIGKILL');
    }, graceMs);
    await exited;
    clearTimeout(timer);
    const ms = Date.now() - started;
    this.events.push({ at: Date.now(), kind: forced ? 'killed (forced)' : `stopped (${signal})` });
    return { forced, ms };
  }

  /**
   * Kills the server and starts it again on the same data directory, database and ports.
   * @param {{ signal?: NodeJS.Signals, graceMs?: number }} [options]
   */
  async restart(options = {}) {
    const stopped = await this.kill(options);
    const previous = { ...this.ports };
    /** @type {unknown} */
    let lastError;
    for (let attempt = 0; attempt < 6; attempt++) {
      try {
        await this.#spawn(previous, this.requireSync);
        return stopped;
      } catch (e) {
        lastError = e;
        await this.kill({ signal: 'SIGKILL' });
        await sleep(500);
      }
    }
    // The same ports could not be bound again: fall back to fresh ones (clients read the endpoint
    // through fetchCredentials, so they follow).
    process.stderr.write(`restart on the same ports failed (${String(lastError)}); using fresh ports\n`);
    await this.#spawn({ api: 0, sync: 0, metrics: 0 }, this.requireSync);
    return stopped;
  }

  /** Closes every client made here, stops the process, drops the database, removes the data dir. */
  async stop() {
    await Promise.allSettled([...this.clients].map((c) => c.close()));
    await this.kill();
    if (this.databaseName && process.env.ATHENA_TEST_DATABASE_URL) {
      await psql(process.env.ATHENA_TEST_DATABASE_URL, `DROP DATABASE IF EXISTS ${this.databaseName} WITH (FORCE)`).catch(
        (e) => process.stderr.write(`could not drop ${this.databaseName}: ${e}\n`),
      );
      this.databaseName = undefined;
    }
    if (this.root) await rm(this.root, { recursive: true, force: true });
  }

  /** The last lines of the server's stderr (without per-request access lines), for failure messages. */
  logTail(n = 40) {
    return this.stderrTail
      .filter((l) => !l.includes('"finished processing request"') && !l.includes('"login code'))
      .slice(-n)
      .join('\n');
  }

  /**
   * A JSON request against the API port.
   * @param {string} method
   * @param {string} urlPath path below the API port, e.g. `/api/v1/books`
   * @param {{ token?: string, json?: unknown, body?: any, headers?: Record<string, string>, timeoutMs?: number }} [options]
   * @returns {Promise<ApiResponse>}
   */
  async api(method, urlPath, { token, json, body, headers = {}, timeoutMs = 30_000 } = {}) {
    /** @type {Record<string, string>} */
    const h = { ...headers };
    if (token) h.authorization = `Bearer ${token}`;
    if (json !== undefined) {
      h['content-type'] = 'application/json';
      body = JSON.stringify(json);
    }
    const res = await fetch(`${this.apiBase}${urlPath}`, {
      method,
      headers: h,
      body,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    /** @type {any} */
    let parsed = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = null;
    }
    return { status: res.status, headers: res.headers, body: parsed, text };
  }

  /**
   * Like {@link api}, but fails unless the status is 2xx; returns the envelope's `data`.
   * @param {string} method
   * @param {string} urlPath
   * @param {Parameters<AthenaServer['api']>[2]} [options]
   */
  async apiOk(method, urlPath, options) {
    const res = await this.api(method, urlPath, options);
    if (res.status < 200 || res.status >= 300) {
      throw new Error(`${method} ${urlPath} answered ${res.status}: ${res.text.slice(0, 500)}`);
    }
    return res.body?.data;
  }

  /**
   * Logs in with an e-mail code (development mode returns the code as `dev_code`).
   * @param {string} [email]
   * @returns {Promise<Login>}
   */
  async login(email = uniqueEmail()) {
    const sent = await this.apiOk('POST', '/api/v1/auth/email/send-code', { json: { email } });
    if (!sent?.dev_code) throw new Error(`send-code returned no dev_code: ${JSON.stringify(sent)}`);
    const verified = await this.apiOk('POST', '/api/v1/auth/email/verify-code', { json: { email, code: sent.dev_code } });
    return {
      email,
      token: verified.tokens.access_token,
      refreshToken: verified.tokens.refresh_token,
      userId: verified.user.id,
    };
  }

  /**
   * A source of valid access tokens for one login: answers `login.token` while it has more than
   * `minValidMs` left, else refreshes it (`POST /api/v1/auth/refresh`), rotating `login.refreshToken`.
   * Refreshes are serialised, so clients sharing one login never present a spent refresh token.
   * @param {Login} login updated in place
   * @param {{ minValidMs?: number }} [options]
   * @returns {TokenSource}
   */
  tokenSource(login, { minValidMs = 2_000 } = {}) {
    /** @type {Promise<string> | null} */
    let inFlight = null;
    const refresh = async () => {
      const data = await this.apiOk('POST', '/api/v1/auth/refresh', { json: { refresh_token: login.refreshToken }, timeoutMs: 10_000 });
      if (!data?.tokens?.access_token || !data?.tokens?.refresh_token) throw new Error(`refresh returned no tokens: ${JSON.stringify(data)}`);
      login.token = data.tokens.access_token;
      login.refreshToken = data.tokens.refresh_token;
      source.refreshes++;
      return login.token;
    };
    /** @type {TokenSource} */
    const source = Object.assign(
      /** @param {{ force?: boolean }} [o] */
      async ({ force = false } = {}) => {
        if (!force && tokenExpiresAt(login.token) - Date.now() > minValidMs) return login.token;
        inFlight ??= refresh().finally(() => {
          inFlight = null;
        });
        return inFlight;
      },
      { refreshes: 0 },
    );
    return source;
  }

  /**
   * Uploads a book file through the one-step multipart endpoint; returns the book.
   * @param {string} token
   * @param {string} filePath absolute, or relative to the corpus (e.g. `zh/lunyu.epub`)
   */
  async uploadBook(token, filePath) {
    const full = path.isAbsolute(filePath) ? filePath : path.join(CORPUS, filePath);
    const form = new FormData();
    form.append('file', new Blob([await readFile(full)]), path.basename(full));
    return this.apiOk('POST', '/api/v1/books', { token, body: form, timeoutMs: 60_000 });
  }

  /**
   * A PowerSync client database for one user, connected over HTTP streaming.
   * `tokens`: where fresh tokens come from (see {@link tokenSource}); without it the client keeps `token`.
   * `retryDelayMs`: the SDK's wait before reconnecting after an error (its default when unset).
   * @param {{ token: string, endpointKind?: 'sync-port' | 'api-prefix', label?: string, connect?: boolean, tokens?: TokenSource, retryDelayMs?: number }} options
   */
  async makeClient({ token, endpointKind = 'sync-port', label = 'client', connect = true, tokens, retryDelayMs }) {
    const client = new Client(this, { token, endpointKind, label, tokens, retryDelayMs });
    this.clients.add(client);
    await client.open();
    if (connect) await client.connect();
    return client;
  }
}

/**
 * @param {string} url
 * @param {string} sql
 */
async function psql(url, sql) {
  await run('psql', [url, '-v', 'ON_ERROR_STOP=1', '-qtAc', sql], { timeout: 30_000 });
}

/**
 * Log lines that mean the client rejected a checkpoint because bucket checksums disagreed (it then
 * drops the bucket and downloads it again). The core extension writes "Checksums didn't match,
 * failed for: …" and "Could not apply checkpoint, …" (with a comma). Not counted: the info line
 * "Could not apply checkpoint due to local data. Will retry at completed upload or next checkpoint.",
 * which is the normal wait for a write checkpoint while the client's own uploads are in flight.
 */
const CHECKSUM_FAILURE = /checksum|failed_buckets|could not apply (partial )?checkpoint,/i;
const APPLY_DEFERRED = /could not apply (partial )?checkpoint due to local data/i;
const LEVEL_NAMES = /** @type {Record<number, string>} */ ({ 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error' });

/** A PowerSync client (its own SQLite file) plus the connector that talks to an {@link AthenaServer}. */
export class Client {
  /** @type {Array<{ at: number, level: number, message: string }>} */
  logs = [];
  /** responses of `POST /api/v1/sync/upload`, in order */
  /** @type {Array<{ status: number, body: any, operations: any[], at: number }>} */
  uploads = [];
  /** bodies of the client's `POST /sync/stream` requests, in order */
  /** @type {Array<{ buckets: Array<{ name: string, after: string }>, [key: string]: any }>} */
  syncRequests = [];
  #dir;
  #closed = false;

  /**
   * @param {AthenaServer} server
   * @param {{ token: string, endpointKind: 'sync-port' | 'api-prefix', label: string, tokens?: TokenSource, retryDelayMs?: number }} options
   */
  constructor(server, { token, endpointKind, label, tokens, retryDelayMs }) {
    this.server = server;
    this.token = token;
    this.tokens = tokens;
    this.retryDelayMs = retryDelayMs;
    this.endpointKind = endpointKind;
    this.label = label;
    this.#dir = mkdtempSync(path.join(tmpdir(), `athena-ps-${label}-`));
    this.db = new PowerSyncDatabase({
      schema: AppSchema,
      // The SDK keys its process-wide sync locks by dbFilename (not the full path): every client
      // in this process needs its own file name, or a second client waits for the first one's lock.
      database: { dbFilename: `${label}-${randomUUID().slice(0, 8)}.db`, dbLocation: this.#dir },
      logger: { log: (record) => this.#log(record) },
    });
    /** @type {import('@powersync/node').PowerSyncBackendConnector} */
    this.connector = {
      fetchCredentials: async () => {
        if (this.tokens) this.token = await this.tokens();
        return { endpoint: this.server.syncEndpoint(this.endpointKind), token: this.token };
      },
      uploadData: async (database) => {
        const tx = await database.getNextCrudTransaction();
        if (!tx) return;
        if (this.tokens) this.token = await this.tokens();
        const operations = tx.crud.map((op) => ({ table: op.table, op: op.op, id: op.id, data: op.opData }));
        const res = await fetch(`${this.server.apiBase}/api/v1/sync/upload`, {
          method: 'POST',
          headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ operations }),
          signal: AbortSignal.timeout(15_000),
        });
        const text = await res.text();
        /** @type {any} */
        let body = null;
        try {
          body = JSON.parse(text);
        } catch {
          body = text;
        }
        this.uploads.push({ status: res.status, body, operations, at: Date.now() });
        // An expired token: the next attempt (the SDK retries the batch) gets a fresh one.
        if (res.status === 401 && this.tokens) await this.tokens({ force: true }).catch(() => undefined);
        if (!res.ok) throw new Error(`upload answered ${res.status}: ${text.slice(0, 300)}`);
        await tx.complete();
      },
    };
  }

  /** @param {import('@powersync/node').LogRecord} record */
  #log(record) {
    this.#noteSyncRequest(record.message);
    const error = record.error ? ` | ${record.error instanceof Error ? record.error.message : String(record.error)}` : '';
    const message = `${record.message}${error}`.slice(0, 4_000);
    this.logs.push({ at: Date.now(), level: record.level, message });
    if (this.logs.length > 5_000) this.logs.splice(0, 1_000);
    if (VERBOSE && record.level >= 40) process.stderr.write(`[${this.label} ${LEVEL_NAMES[record.level]}] ${message}\n`);
  }

  /**
   * Keeps the body of every `/sync/stream` request the client makes (read from the core extension's
   * `EstablishSyncStream` instruction in the trace log), to see which positions it resumes from.
   * @param {string} message
   */
  #noteSyncRequest(message) {
    if (!message.startsWith('powersync_control(') || !message.includes('"EstablishSyncStream"')) return;
    try {
      const instructions = JSON.parse(message.slice(message.lastIndexOf(') -> ') + 5));
      for (const i of instructions) if (i.EstablishSyncStream) this.syncRequests.push(i.EstablishSyncStream.request);
    } catch {
      // not the shape this SDK version logs; resume checks then fail with an empty list
    }
  }

  async open() {
    await withTimeout(this.db.init(), 20_000, `${this.label}: PowerSync init`);
  }

  async connect() {
    await withTimeout(
      this.db.connect(this.connector, {
        connectionMethod: SyncStreamConnectionMethod.HTTP,
        ...(this.retryDelayMs === undefined ? {} : { retryDelayMs: this.retryDelayMs }),
      }),
      20_000,
      `${this.label}: connect`,
    );
  }

  /** Waits until the client has completed a full checkpoint. */
  async waitForFirstSync(timeoutMs = 15_000) {
    await this.db.waitForFirstSync(AbortSignal.timeout(timeoutMs));
    if (!this.db.currentStatus.hasSynced) {
      throw new Error(`${this.label}: no complete sync within ${timeoutMs} ms\n${this.diagnostics()}`);
    }
  }

  /**
   * @param {string} sql
   * @param {any[]} [params]
   * @returns {Promise<any[]>}
   */
  query(sql, params = []) {
    return this.db.getAll(sql, params);
  }

  /**
   * Polls a local query until `predicate(rows)` holds; returns the rows.
   * @param {string} sql
   * @param {any[]} params
   * @param {(rows: any[]) => boolean} predicate
   * @param {number} [timeoutMs]
   * @param {string} [what]
   * @returns {Promise<any[]>}
   */
  async waitForRows(sql, params, predicate, timeoutMs = 10_000, what = sql) {
    /** @type {any[]} */
    let last = [];
    try {
      return await waitFor(
        async () => {
          last = await this.query(sql, params);
          return predicate(last) ? last : undefined;
        },
        timeoutMs,
        `${this.label}: ${what}`,
      );
    } catch (e) {
      throw new Error(
        `${e instanceof Error ? e.message : e}\nlast rows: ${JSON.stringify(last).slice(0, 1_000)}\n${this.diagnostics()}`,
      );
    }
  }

  /** Client log lines (debug level and above) that report a checksum failure or a rejected checkpoint. */
  checksumFailures() {
    return this.logs.filter((l) => l.level >= 20 && CHECKSUM_FAILURE.test(l.message)).map((l) => l.message);
  }

  /** How often a checkpoint waited for the client's own uploads (normal; reported, not asserted). */
  deferredCheckpoints() {
    return this.logs.filter((l) => l.level >= 20 && APPLY_DEFERRED.test(l.message)).length;
  }

  /** Client log lines at warning level or above. */
  warnings() {
    return this.logs.filter((l) => l.level >= 40).map((l) => l.message);
  }

  /** A readable summary for failure messages: status, warnings, recent log, server stderr. */
  diagnostics() {
    const status = this.db?.currentStatus;
    const recent = this.logs
      .filter((l) => l.level >= 20)
      .slice(-25)
      .map((l) => `  [${LEVEL_NAMES[l.level] ?? l.level}] ${l.message.slice(0, 600)}`);
    return [
      `--- ${this.label} status: connected=${status?.connected} hasSynced=${status?.hasSynced} downloadError=${status?.downloadError?.message} uploadError=${status?.uploadError?.message}`,
      `--- ${this.label} uploads: ${JSON.stringify(this.uploads.slice(-3)).slice(0, 1_000)}`,
      `--- ${this.label} recent log:`,
      ...recent,
      '--- server stderr (tail):',
      this.server.logTail(15),
    ].join('\n');
  }

  async close() {
    if (this.#closed) return;
    this.#closed = true;
    this.server.clients.delete(this);
    try {
      await withTimeout(this.db.close(), 10_000, `${this.label}: close`);
    } catch (e) {
      process.stderr.write(`${String(e)}\n`);
    }
    await rm(this.#dir, { recursive: true, force: true });
  }
}

/**
 * Reads a raw `POST /sync/stream` response for `ms` milliseconds and returns the NDJSON lines.
 * @param {string} endpoint sync base URL
 * @param {string} token
 * @param {object} request the request body
 * @param {number} [ms]
 * @returns {Promise<{ status: number, contentType: string | null, lines: string[], text: string }>}
 */
export async function readSyncStream(endpoint, token, request, ms = 2_000) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), ms);
  let text = '';
  let status = 0;
  /** @type {string | null} */
  let contentType = null;
  try {
    const res = await fetch(`${endpoint}/sync/stream`, {
      method: 'POST',
      headers: {
        authorization: `Token ${token}`,
        'content-type': 'application/json',
        accept: 'application/x-ndjson',
      },
      body: JSON.stringify(request),
      signal: controller.signal,
    });
    status = res.status;
    contentType = res.headers.get('content-type');
    if (res.body) {
      const decoder = new TextDecoder();
      for await (const chunk of res.body) text += decoder.decode(chunk, { stream: true });
    }
  } catch (e) {
    if (!controller.signal.aborted) throw e;
  } finally {
    clearTimeout(timer);
  }
  // A partial last line (cut by the abort) is dropped.
  const complete = text.endsWith('\n') ? text : text.slice(0, text.lastIndexOf('\n') + 1);
  const lines = complete.split('\n');
  lines.pop();
  return { status, contentType, lines, text };
}
