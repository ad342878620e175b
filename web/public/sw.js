// Athena's service worker: keeps the app shell (index.html and the hashed build assets) so the app
// opens with the network off. API, sync and book requests are never cached here (book files have
// their own cache, filled by the reader).
const SHELL = 'athena-shell-v1';

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(SHELL).then((c) => c.add('/')).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(self.clients.claim());
});

function isServerPath(path) {
  return path.startsWith('/api/') || path.startsWith('/powersync/') || path.startsWith('/docs') || path === '/health' || path === '/metrics' || path === '/openapi.json';
}

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin || isServerPath(url.pathname)) return;
  if (req.mode === 'navigate') {
    // Network first, so a new build is picked up; the cached shell when offline.
    event.respondWith(
      fetch(req)
        .then((res) => {
          if (res.ok) {
            const copy = res.clone();
            void caches.open(SHELL).then((c) => c.put('/', copy));
          }
          return res;
        })
        .catch(() => caches.open(SHELL).then((c) => c.match('/')).then((hit) => hit || Response.error())),
    );
    return;
  }
  if (url.pathname.startsWith('/assets/')) {
    // Hashed names never change: cache first.
    event.respondWith(
      caches.open(SHELL).then(async (c) => {
        const hit = await c.match(req);
        if (hit) return hit;
        const res = await fetch(req);
        if (res.ok) void c.put(req, res.clone());
        return res;
      }),
    );
  }
});
