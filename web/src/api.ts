// REST calls the app makes (login, uploads, OCR requests, search) and the session's tokens.
// Everything else goes through the local database and the sync connector.
import { clearSnapshotUnlessFor } from './snapshot';

export interface User {
  id: string;
  email: string;
  [key: string]: unknown;
}

export interface Session {
  accessToken: string;
  refreshToken: string;
  sessionId: string | null;
  user: User;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const SESSION_KEY = 'athena.session';
const DEVICE_KEY = 'athena.device';

/** This browser's device id: client-chosen text of at most 64 characters. */
export function deviceId(): string {
  let id = localStorage.getItem(DEVICE_KEY);
  if (!id) {
    id = `web-${crypto.randomUUID().slice(0, 13)}`;
    localStorage.setItem(DEVICE_KEY, id);
  }
  return id;
}

export function loadSession(): Session | null {
  const raw = localStorage.getItem(SESSION_KEY);
  if (!raw) return null;
  try {
    const s = JSON.parse(raw) as Session;
    return s.accessToken && s.refreshToken && s.user?.id ? s : null;
  } catch {
    return null;
  }
}

export function saveSession(s: Session | null): void {
  if (s) localStorage.setItem(SESSION_KEY, JSON.stringify(s));
  else localStorage.removeItem(SESSION_KEY);
  // The library's paint cache is the signed-in user's only: gone at sign-out or a change of user.
  clearSnapshotUnlessFor(s?.user.id ?? null);
  if (typeof window !== 'undefined') window.dispatchEvent(new Event('athena-session'));
}

/** When a JWT expires, in ms since the epoch (0 when unreadable). */
export function tokenExpiresAt(token: string): number {
  try {
    const part = token.split('.')[1] ?? '';
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/'));
    const exp = (JSON.parse(json) as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp * 1000 : 0;
  } catch {
    return 0;
  }
}

interface Envelope<T> {
  status: string;
  data?: T;
  code?: string;
  message?: string;
}

async function parse<T>(res: Response): Promise<T> {
  const text = await res.text();
  let body: Envelope<T> | null = null;
  try {
    body = text ? (JSON.parse(text) as Envelope<T>) : null;
  } catch {
    body = null;
  }
  if (!res.ok) throw new ApiError(res.status, body?.code ?? 'http_error', body?.message ?? `HTTP ${res.status}`);
  return body?.data as T;
}

/** A JSON request without a token. */
export async function publicJson<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return parse<T>(res);
}

type Fetch = typeof fetch;

/**
 * Hands out access tokens for the signed-in session, refreshing them (rotating the refresh token)
 * shortly before they expire or when the server said 401. Refreshes are serialised — across tabs
 * too, through a Web Lock — so a spent refresh token is never presented twice.
 */
export class TokenSource {
  private inFlight: Promise<string> | null = null;
  constructor(
    private readonly store: { load(): Session | null; save(s: Session | null): void },
    private readonly fetchImpl: Fetch = (...args) => fetch(...args),
    private readonly now: () => number = Date.now,
    private readonly minValidMs = 60_000,
  ) {}

  /** A token valid for at least `minValidMs` (or a fresh one when `force`). */
  async token(force = false): Promise<string> {
    const s = this.store.load();
    if (!s) throw new ApiError(401, 'unauthorized', 'not signed in');
    if (!force && tokenExpiresAt(s.accessToken) - this.now() > this.minValidMs) return s.accessToken;
    this.inFlight ??= this.refresh(s.accessToken).finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }

  private async refresh(staleToken: string): Promise<string> {
    const run = async (): Promise<string> => {
      // Another tab may have refreshed while this one waited for the lock.
      const s = this.store.load();
      if (!s) throw new ApiError(401, 'unauthorized', 'not signed in');
      if (s.accessToken !== staleToken && tokenExpiresAt(s.accessToken) - this.now() > this.minValidMs) return s.accessToken;
      const res = await this.fetchImpl('/api/v1/auth/refresh', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ refresh_token: s.refreshToken }),
      });
      if (res.status === 401) {
        // The refresh token is spent or revoked: the session is over.
        this.store.save(null);
        throw new ApiError(401, 'invalid_refresh', 'session expired');
      }
      const data = await parse<{ tokens: { access_token: string; refresh_token: string } }>(res);
      this.store.save({ ...s, accessToken: data.tokens.access_token, refreshToken: data.tokens.refresh_token });
      return data.tokens.access_token;
    };
    const locks = typeof navigator !== 'undefined' ? navigator.locks : undefined;
    return locks ? locks.request('athena-token-refresh', run) : run();
  }
}

export const tokens = new TokenSource({ load: loadSession, save: saveSession });

/** A request with the session's token; one retry with a fresh token after a 401. */
export async function authFetch(path: string, init: RequestInit = {}): Promise<Response> {
  const send = async (force: boolean) => {
    const token = await tokens.token(force);
    const headers = new Headers(init.headers);
    headers.set('authorization', `Bearer ${token}`);
    return fetch(path, { ...init, headers });
  };
  const res = await send(false);
  if (res.status !== 401) return res;
  return send(true);
}

export async function authJson<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
  const res = await authFetch(path, {
    method,
    headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return parse<T>(res);
}

export interface SendCodeResult {
  dev_code?: string;
  [key: string]: unknown;
}

export function sendCode(email: string): Promise<SendCodeResult> {
  return publicJson<SendCodeResult>('POST', '/api/v1/auth/email/send-code', { email });
}

export async function verifyCode(email: string, code: string): Promise<Session> {
  const data = await publicJson<{
    user: User;
    tokens: { access_token: string; refresh_token: string };
    session?: { id?: string };
  }>('POST', '/api/v1/auth/email/verify-code', { email, code });
  const session: Session = {
    accessToken: data.tokens.access_token,
    refreshToken: data.tokens.refresh_token,
    sessionId: data.session?.id ?? null,
    user: data.user,
  };
  saveSession(session);
  return session;
}

export async function logout(): Promise<void> {
  const s = loadSession();
  try {
    if (s) await authJson('POST', '/api/v1/auth/logout', s.sessionId ? { session_id: s.sessionId } : {});
  } finally {
    saveSession(null);
  }
}

/** A media URL usable by `<img>` and readers (`?token=`). */
export function mediaUrl(path: string): string {
  const s = loadSession();
  return s ? `${path}${path.includes('?') ? '&' : '?'}token=${encodeURIComponent(s.accessToken)}` : path;
}
