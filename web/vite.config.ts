import { defineConfig } from 'vite';

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
  server: {
    port: 48173,
    proxy: {
      '/api': 'http://127.0.0.1:48000',
      '/powersync': 'http://127.0.0.1:48000',
    },
  },
});
