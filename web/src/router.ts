// A small history-API router: paths are routed on the client (the server answers index.html).
import { useEffect, useState } from 'preact/hooks';

const listeners = new Set<() => void>();

export function navigate(path: string, replace = false): void {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  for (const l of listeners) l();
}

export function usePath(): string {
  const [path, setPath] = useState(location.pathname + location.search);
  useEffect(() => {
    const update = () => setPath(location.pathname + location.search);
    listeners.add(update);
    window.addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      window.removeEventListener('popstate', update);
    };
  }, []);
  return path;
}

/** `{id}` from `/reader/{id}`-style paths. */
export function match(pattern: string, path: string): Record<string, string> | null {
  const [pathname, query = ''] = path.split('?');
  const a = pattern.split('/').filter(Boolean);
  const b = (pathname ?? '').split('/').filter(Boolean);
  if (a.length !== b.length) return null;
  const out: Record<string, string> = {};
  for (let i = 0; i < a.length; i++) {
    const p = a[i] ?? '';
    const v = b[i] ?? '';
    if (p.startsWith(':')) out[p.slice(1)] = decodeURIComponent(v);
    else if (p !== v) return null;
  }
  for (const [k, v] of new URLSearchParams(query)) out[`?${k}`] = v;
  return out;
}
