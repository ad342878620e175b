// `npm run dev` works: the Vite dev server (on a free port instead of 48173, so a developer's own
// instance never collides) proxies /api and /powersync to a real `athena serve`; Chromium signs in
// with the development code and the app reaches "Synced" over the proxied sync stream.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startServer } from './server.mjs';

const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.resolve(process.env.ATHENA_BIN ?? path.join(WEB, '../target/debug/athena'));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitFor(what, check, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const started = Date.now();
const server = await startServer({ bin: BIN, webDir: path.join(WEB, 'dist') });
const port = await freePort();
const viteLog = [];
// Its own process group, so the whole `npx vite` tree goes away at the end.
const vite = spawn('npx', ['vite', '--port', String(port), '--strictPort', '--host', '127.0.0.1'], {
  cwd: WEB,
  env: { ...process.env, ATHENA_DEV_API: server.base },
  stdio: ['ignore', 'pipe', 'pipe'],
  detached: true,
});
vite.stdout.on('data', (d) => viteLog.push(String(d)));
vite.stderr.on('data', (d) => viteLog.push(String(d)));
let browser;
let failed = false;
try {
  const base = `http://127.0.0.1:${port}`;
  await waitFor('the Vite dev server', async () => (await fetch(`${base}/`)).ok, 60_000);
  const liveness = await fetch(`${base}/powersync/probes/liveness`);
  if (!liveness.ok) throw new Error(`/powersync through the dev proxy answered ${liveness.status}`);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  const page = await browser.newPage({ locale: 'en-US' });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(base, { waitUntil: 'domcontentloaded' });
  await page.fill('input[type=email]', `dev-smoke-${Date.now()}@example.com`);
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => /code is \d{6}/.test(document.body.innerText), null, { timeout: 30_000 });
  const code = /code is (\d{6})/.exec(await page.innerText('body'))[1];
  await page.fill('input[autocomplete=one-time-code], input[inputmode=numeric]', code);
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.body.innerText.includes('Synced'), null, { timeout: 60_000 });
  if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
  console.log(`ok   npm run dev: the dev server proxies the API and sync; sign-in reaches "Synced" (${Date.now() - started} ms)`);
} catch (e) {
  failed = true;
  console.error(`not ok npm run dev: ${e.message}\n--- vite ---\n${viteLog.join('').slice(-2000)}\n--- athena ---\n${server.logTail()}`);
} finally {
  await browser?.close();
  try {
    process.kill(-vite.pid, 'SIGTERM');
  } catch {
    // already gone
  }
  await server.stop();
}
process.exit(failed ? 1 : 0);
