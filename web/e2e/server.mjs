// Starts a real `athena serve` for the browser tests: development mode, a temp data dir, free
// ports (read back from its "listening" log lines), ATHENA_WEB_DIR pointing at the app build.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';

export async function startServer({ bin, webDir }) {
  const root = await mkdtemp(path.join(tmpdir(), 'athena-web-e2e-'));
  const env = { ...process.env };
  for (const key of Object.keys(env)) {
    if (key.startsWith('ATHENA_') || key.startsWith('POWERSYNC_') || key === 'DATABASE_URL' || key.startsWith('MINIO_') || key.startsWith('SMTP_')) delete env[key];
  }
  Object.assign(env, {
    ATHENA_MODE: 'development',
    ATHENA_BIND: '127.0.0.1',
    ATHENA_DATA_DIR: path.join(root, 'data'),
    ATHENA_BACKUP_DIR: path.join(root, 'backups'),
    ATHENA_API_PORT: '0',
    POWERSYNC_PORT: '0',
    ATHENA_METRICS_PORT: '0',
    ATHENA_WEB_DIR: webDir,
    ATHENA_OCR_ENGINE: 'off',
    // Embedding the uploaded books would take minutes of CPU; search falls back to keywords without it.
    ATHENA_SEMANTIC: 'off',
  });
  const child = spawn(bin, ['serve'], { env, cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
  const tail = [];
  let apiPort = 0;
  let exited = null;
  child.on('exit', (code, signal) => (exited = `exited with ${code ?? signal}`));
  child.on('error', (e) => (exited = `could not start ${bin}: ${e.message}`));
  createInterface({ input: child.stderr }).on('line', (line) => {
    tail.push(line);
    if (tail.length > 300) tail.shift();
    if (process.env.ATHENA_E2E_VERBOSE) process.stderr.write(`[athena] ${line}\n`);
    try {
      const e = JSON.parse(line);
      if (e.message === 'listening' && e.role === 'api') apiPort = Number(String(e.addr).split(':').pop());
    } catch {
      // not a JSON log line
    }
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const done = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await done;
      clearTimeout(timer);
    }
    await rm(root, { recursive: true, force: true });
  };
  process.on('exit', () => child.kill('SIGKILL'));
  const deadline = Date.now() + 60_000;
  while (!apiPort) {
    if (exited) throw new Error(`athena ${exited}\n${tail.slice(-30).join('\n')}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`athena did not log its API address\n${tail.slice(-30).join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const base = `http://127.0.0.1:${apiPort}`;
  for (;;) {
    try {
      const res = await fetch(`${base}/health`);
      if (res.status < 500) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error('athena /health never answered');
    await new Promise((r) => setTimeout(r, 100));
  }
  return { base, stop, logTail: (n = 40) => tail.filter((l) => !l.includes('finished processing request')).slice(-n).join('\n') };
}
