import { describe, expect, it } from 'vitest';
import { format, langFromNavigator } from './i18n';
import { en } from './i18n/en';
import { zh } from './i18n/zh';
import { challengeProof, sameOriginIfAthena, sha256Hex } from './upload';
import { readerUrlForHit, snippetParts } from './screens/Search';
import { statusKey } from './screens/Library';
import { tokenExpiresAt } from './api';
import { ocrMessage } from './screens/BookDetails';

describe('i18n', () => {
  it('follows the browser language', () => {
    expect(langFromNavigator(['zh-TW', 'en'])).toBe('zh');
    expect(langFromNavigator(['en-GB'])).toBe('en');
    expect(langFromNavigator(['fr-FR', 'zh-CN'])).toBe('zh');
    expect(langFromNavigator([])).toBe('en');
  });

  it('both catalogs have every key, none empty, with the same placeholders', () => {
    const placeholders = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
    for (const key of Object.keys(en) as Array<keyof typeof en>) {
      expect(zh[key], key).toBeTruthy();
      expect(placeholders(zh[key]), key).toEqual(placeholders(en[key]));
    }
    expect(Object.keys(zh).sort()).toEqual(Object.keys(en).sort());
  });

  it('fills placeholders', () => {
    expect(format('en', 'library.progress', { percent: 42 })).toBe('42% read');
    expect(format('zh', 'library.progress', { percent: 42 })).toBe('已读 42%');
  });
});

describe('upload helpers', () => {
  it('hashes like sha256sum', async () => {
    expect(await sha256Hex(new TextEncoder().encode('abc'))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('proves possession with the SHA-256 of the challenged ranges, concatenated', async () => {
    const bytes = new TextEncoder().encode('0123456789');
    expect(await challengeProof(bytes, [[1, 3], [7, 10]])).toBe(await sha256Hex(new TextEncoder().encode('12789')));
  });

  it('uses signed Athena upload URLs on the page origin, leaves S3 URLs alone', () => {
    expect(sameOriginIfAthena('http://127.0.0.1:48000/api/v1/books/upload/users/u/k/a.epub?expires=1&signature=x', 'http://localhost:48000')).toBe(
      '/api/v1/books/upload/users/u/k/a.epub?expires=1&signature=x',
    );
    expect(sameOriginIfAthena('https://s3.example/athena/users/u/k?X-Amz-Signature=1', 'http://localhost')).toBe('https://s3.example/athena/users/u/k?X-Amz-Signature=1');
  });
});

describe('search helpers', () => {
  it('opens the reader at a CFI or a page', () => {
    expect(readerUrlForHit({ book_id: 'b', location: 'page:7' })).toBe('/reader/b?page=7');
    expect(readerUrlForHit({ book_id: 'b', location: 'epubcfi(/6/4!/2)' })).toBe(`/reader/b?cfi=${encodeURIComponent('epubcfi(/6/4!/2)')}`);
    expect(readerUrlForHit({ book_id: 'b', location: null })).toBe('/reader/b');
  });

  it('splits snippets into marked and plain text, decoding the escaped HTML', () => {
    expect(snippetParts('a &lt;b&gt; <mark>word</mark> &amp; c')).toEqual([
      { text: 'a <b> ', mark: false },
      { text: 'word', mark: true },
      { text: ' & c', mark: false },
    ]);
  });
});

describe('library status', () => {
  it('names the processing state shown on a card', () => {
    const base = { conversion_status: null, ocr_status: null, is_digitalized: 1, file_type: 'epub' };
    expect(statusKey(base)).toBeNull();
    expect(statusKey({ ...base, conversion_status: 'processing' })).toBe('status.converting');
    expect(statusKey({ ...base, conversion_status: 'failed' })).toBe('status.conversionFailed');
    expect(statusKey({ ...base, file_type: 'pdf', is_digitalized: 0 })).toBe('status.ocrSuggested');
    expect(statusKey({ ...base, file_type: 'pdf', is_digitalized: 0, ocr_status: 'pending' })).toBe('status.ocrRunning');
  });
});

describe('tokens', () => {
  it('reads the expiry of a JWT', () => {
    const payload = btoa(JSON.stringify({ exp: 1234 })).replace(/=+$/, '');
    expect(tokenExpiresAt(`x.${payload}.y`)).toBe(1_234_000);
    expect(tokenExpiresAt('garbage')).toBe(0);
  });
});

describe('OCR request messages', () => {
  it('shows the queue position and quota, or the refusal of CONTRACTS.md', () => {
    expect(ocrMessage({ status: 'queued', queue_position: 2, estimated_minutes: 5, units: 1, units_left: 2 })).toEqual({
      key: 'ocr.queued',
      params: { position: 2, minutes: 5, units: 1, left: 2 },
    });
    expect(ocrMessage({ status: 'instant_completed', units: 2, units_left: 1 }).key).toBe('ocr.instant');
    expect(ocrMessage({ error: 'ocr_quota_exceeded' }).key).toBe('ocr.quota');
    expect(ocrMessage({ error: 'ocr_max_pages_exceeded' }).key).toBe('ocr.tooLong');
    expect(ocrMessage({ error: 'weird' })).toEqual({ key: 'ocr.failed', params: { message: 'weird' } });
  });
});

import { columnsFor, visibleRange } from './virtual';

describe('windowed library', () => {
  it('renders only the rows near the viewport, with padding for the rest', () => {
    // 2,000 books, 5 per row, 100 px rows, scrolled 5,000 px down a 800 px viewport.
    const r = visibleRange(2000, 5, 100, -5000, 800, 2);
    expect(r.start).toBe(48 * 5);
    expect(r.end).toBe(60 * 5);
    expect(r.padTop).toBe(4800);
    expect(r.padBottom).toBe((400 - 60) * 100);
    expect(r.end - r.start).toBeLessThan(100);
  });

  it('starts at the top and stops at the end', () => {
    expect(visibleRange(7, 3, 100, 200, 800, 1)).toEqual({ start: 0, end: 7, padTop: 0, padBottom: 0 });
    const bottom = visibleRange(100, 1, 50, -4900, 600, 0);
    expect(bottom.end).toBe(100);
    expect(bottom.padBottom).toBe(0);
    expect(visibleRange(0, 4, 100, 0, 800)).toEqual({ start: 0, end: 0, padTop: 0, padBottom: 0 });
  });

  it('fits columns to the width', () => {
    expect(columnsFor(1000, 160, 16)).toBe(5);
    expect(columnsFor(100, 160, 16)).toBe(1);
  });
});

describe('search modes', () => {
  it('asks the server for the chosen ranking', async () => {
    const { searchUrl } = await import('./screens/Search');
    expect(searchUrl(' 学而 时习 ', 'hybrid')).toBe('/api/v1/search?q=%E5%AD%A6%E8%80%8C%20%E6%97%B6%E4%B9%A0&limit=50&mode=hybrid');
    expect(searchUrl('whale', 'semantic')).toContain('mode=semantic');
  });
});
