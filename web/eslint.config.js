import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'artifacts/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.{ts,tsx}'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-console': ['error', { allow: ['warn', 'error'] }],
    },
  },
  {
    files: ['e2e/**/*.mjs'],
    languageOptions: {
      globals: {
        process: 'readonly', console: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly',
        fetch: 'readonly', URL: 'readonly', Buffer: 'readonly', performance: 'readonly', AbortSignal: 'readonly',
        document: 'readonly', window: 'readonly', navigator: 'readonly', localStorage: 'readonly',
        NodeFilter: 'readonly', getComputedStyle: 'readonly', PerformanceObserver: 'readonly', DataTransfer: 'readonly', File: 'readonly', DragEvent: 'readonly', atob: 'readonly', requestAnimationFrame: 'readonly', history: 'readonly', dispatchEvent: 'readonly', PopStateEvent: 'readonly',
      },
    },
    rules: { 'no-console': 'off' },
  },
);
