// The PowerSync backend connector: credentials for the sync stream (the session's access token,
// refreshed when it expires) and the upload of the local CRUD queue to POST /api/v1/sync/upload.
//
// Error handling follows CONTRACTS.md / DATA-MODEL.md: a 2xx answer completes the batch (operations
// refused for good come back per operation in `errors` and are recorded here, not retried); 401
// refreshes the token and retries; network failures, 408, 429 and 5xx are retried by the SDK
// (uploadData throws); any other 4xx means the batch itself can never be accepted: it is recorded
// and completed so the queue moves on (the server's state then flows back over sync).
import type { AbstractPowerSyncDatabase, CrudEntry, PowerSyncBackendConnector, PowerSyncCredentials } from '@powersync/common';

/** At most this many operations per request (the server takes 10,000 and 16 MiB). */
export const MAX_BATCH = 500;

export interface TokenProvider {
  token(force?: boolean): Promise<string>;
}

export interface UploadOperation {
  table: string;
  op: string;
  id: string;
  data?: Record<string, unknown>;
}

export interface Rejection {
  id: string;
  table: string;
  code: string;
  message: string;
  at: string;
}

export type UploadOutcome = 'complete' | 'retry' | 'drop' | 'reauth';

/** How the connector treats an answer of `POST /sync/upload` with this status (0: no answer). */
export function classifyUploadStatus(status: number): UploadOutcome {
  if (status >= 200 && status < 300) return 'complete';
  if (status === 401) return 'reauth';
  if (status === 0 || status === 408 || status === 425 || status === 429 || status >= 500) return 'retry';
  return 'drop';
}

/** The request body for a batch of CRUD entries: `{operations: [{table, op, id, data?}]}`. */
export function toOperations(entries: readonly CrudEntry[]): UploadOperation[] {
  return entries.map((e) => {
    const op: UploadOperation = { table: e.table, op: e.op, id: e.id };
    if (e.opData !== undefined) op.data = e.opData;
    return op;
  });
}

export class UploadError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export interface ConnectorOptions {
  tokens: TokenProvider;
  /** Base URL of the API ('' for the page's own origin). */
  apiBase?: string;
  /** The sync endpoint as `fetchCredentials` returns it; default: `<origin>/powersync`. */
  syncEndpoint?: string;
  fetchImpl?: typeof fetch;
  onRejected?: (r: Rejection[]) => void;
  batchSize?: number;
}

export class AthenaConnector implements PowerSyncBackendConnector {
  readonly rejected: Rejection[] = [];
  private readonly fetchImpl: typeof fetch;

  constructor(private readonly options: ConnectorOptions) {
    this.fetchImpl = options.fetchImpl ?? ((...args) => fetch(...args));
  }

  private endpoint(): string {
    if (this.options.syncEndpoint) return this.options.syncEndpoint;
    const base = this.options.apiBase || (typeof location !== 'undefined' ? location.origin : '');
    return `${base}/powersync`;
  }

  async fetchCredentials(): Promise<PowerSyncCredentials> {
    const token = await this.options.tokens.token();
    return { endpoint: this.endpoint(), token };
  }

  async uploadData(database: AbstractPowerSyncDatabase): Promise<void> {
    const batch = await database.getCrudBatch(this.options.batchSize ?? MAX_BATCH);
    if (!batch || batch.crud.length === 0) return;
    const operations = toOperations(batch.crud);
    let res: Response | null = null;
    let token = await this.options.tokens.token();
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        res = await this.fetchImpl(`${this.options.apiBase ?? ''}/api/v1/sync/upload`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ operations }),
        });
      } catch (e) {
        throw new UploadError(`upload failed: ${e instanceof Error ? e.message : String(e)}`, 0);
      }
      if (classifyUploadStatus(res.status) !== 'reauth') break;
      token = await this.options.tokens.token(true);
    }
    if (!res) throw new UploadError('no answer', 0);
    const text = await res.text();
    const outcome = classifyUploadStatus(res.status);
    if (outcome === 'retry' || outcome === 'reauth') {
      throw new UploadError(`upload answered ${res.status}: ${text.slice(0, 200)}`, res.status);
    }
    const at = new Date().toISOString();
    const tableOf = new Map(operations.map((o) => [o.id, o.table]));
    const rejections: Rejection[] = [];
    if (outcome === 'drop') {
      for (const o of operations) rejections.push({ id: o.id, table: o.table, code: `http_${res.status}`, message: text.slice(0, 200), at });
    } else {
      const body = parseJson(text) as { data?: { errors?: Array<{ id: string; code: string; message: string }> } } | null;
      for (const e of body?.data?.errors ?? []) {
        rejections.push({ id: e.id, table: tableOf.get(e.id) ?? '', code: e.code, message: e.message, at });
      }
    }
    if (rejections.length) {
      this.rejected.push(...rejections);
      this.options.onRejected?.(rejections);
    }
    await batch.complete();
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
