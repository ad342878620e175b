import { defineConfig } from 'vite';

// This file runs in Node; the app's types do not include Node's, hence the narrow cast.
const devApi =
  (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env.ATHENA_DEV_API ??
  'http://127.0.0.1:48000';

// The PowerSync web SDK starts its SQLite/sync worker with `new URL('./worker.js', import.meta.url)`;
// excluding it from dependency pre-bundling keeps that URL (and the wa-sqlite WASM next to it) intact.
export default defineConfig({
  base: '/',
  oxc: {
    jsx: { runtime: 'automatic', importSource: 'preact' },
  },
  optimizeDeps: {
    exclude: ['@powersync/web', '@journeyapps/wa-sqlite'],
  },
  worker: {
    format: 'es',
  },
  build: {
    target: 'es2022',
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 2048,
  },
  // `npm run dev`: the app on 48173 (the seed's port), the API and sync on `athena serve` (48000 unless
  // ATHENA_DEV_API names another; web/e2e/dev-smoke.mjs points it at a test server).
  server: {
    port: 48173,
    proxy: {
      '/api': devApi,
      '/powersync': devApi,
    },
  },
});
