// Preact hooks over the local database: live queries and the sync status.
import { useEffect, useState } from 'preact/hooks';
import type { SyncStatus } from '@powersync/common';
import { database } from './database';

/** Rows of `sql`, re-run whenever a table it reads changes (locally or through sync). */
export function useQuery<T>(sql: string, params: readonly unknown[] = []): { rows: T[]; loading: boolean } {
  const [state, setState] = useState<{ rows: T[]; loading: boolean }>({ rows: [], loading: true });
  const key = JSON.stringify(params);
  useEffect(() => {
    const abort = new AbortController();
    database().watch(
      sql,
      [...params],
      {
        onResult: (r) => setState({ rows: (r.rows?._array ?? []) as T[], loading: false }),
        onError: (e) => console.error('query failed', sql, e),
      },
      { signal: abort.signal, throttleMs: 30 },
    );
    return () => abort.abort();
  }, [sql, key]);
  return state;
}

export function useSyncStatus(): SyncStatus {
  const db = database();
  const [status, setStatus] = useState<SyncStatus>(db.currentStatus);
  useEffect(() => db.registerListener({ statusChanged: (s) => setStatus(s) }), [db]);
  return status;
}
