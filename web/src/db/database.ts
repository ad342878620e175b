// The local database (wa-sqlite through @powersync/web) of the signed-in user, and its sync
// connection. The UI reads only from here; every change to a synced table is a local write.
import { PowerSyncDatabase, SyncStreamConnectionMethod } from '@powersync/web';
import { AppSchema } from './schema';
import { AthenaConnector, type Rejection } from './connector';
import { tokens } from '../api';

export type Db = PowerSyncDatabase;

let current: { db: PowerSyncDatabase; userId: string; connector: AthenaConnector } | null = null;

const REJECTED_KEY = 'athena.rejected';

function remember(r: Rejection[]): void {
  console.warn('sync upload: operations refused by the server', r);
  const kept = JSON.parse(localStorage.getItem(REJECTED_KEY) ?? '[]') as Rejection[];
  localStorage.setItem(REJECTED_KEY, JSON.stringify([...kept, ...r].slice(-100)));
}

/** Opens (once) the user's database and starts syncing over the HTTP (NDJSON) stream. */
export async function openDatabase(userId: string): Promise<PowerSyncDatabase> {
  if (current?.userId === userId) return current.db;
  if (current) await closeDatabase();
  const db = new PowerSyncDatabase({
    schema: AppSchema,
    database: { dbFilename: `athena-${userId}.sqlite` },
  });
  const connector = new AthenaConnector({ tokens, onRejected: remember });
  current = { db, userId, connector };
  performance.mark('athena:db-open');
  await db.init();
  performance.mark('athena:db-ready');
  // Diagnostics (the e2e suite's performance checks): the local database on `window` when asked for.
  if (localStorage.getItem('athena.debug') === '1') (window as unknown as { athenaDebug: unknown }).athenaDebug = { db };
  return db;
}

/**
 * Starts syncing (once the first screen has issued its queries: the database has one connection,
 * and the sync client's start-up statements would otherwise run ahead of them).
 * HTTP streaming of NDJSON lines (`SyncStreamConnectionMethod.HTTP`), as the server speaks it.
 */
export function startSync(): void {
  const c = current;
  if (!c || c.db.connected || c.db.currentStatus.connecting) return;
  void c.db.connect(c.connector, {
    connectionMethod: SyncStreamConnectionMethod.HTTP,
    retryDelayMs: 2_000,
    crudUploadThrottleMs: 300,
  });
}

export function database(): PowerSyncDatabase {
  if (!current) throw new Error('database not open');
  return current.db;
}

export async function closeDatabase(clear = false): Promise<void> {
  const c = current;
  current = null;
  if (!c) return;
  await c.db.disconnect();
  if (clear) await c.db.disconnectAndClear();
  await c.db.close();
}
