// Geometry of the continuous-scroll PDF layout, kept pure (no DOM, no pdf.js) so it can be unit-tested:
// pages stacked vertically, `pad` above the first, `gap` after each page.

/** The top (px from the start of the scroll area) of each page. */
export function pageTops(heights: readonly number[], gap: number, pad: number): number[] {
  const tops: number[] = [];
  let y = pad;
  for (const h of heights) {
    tops.push(y);
    y += h + gap;
  }
  return tops;
}

/** The scroll height of the whole layout. */
export function layoutHeight(heights: readonly number[], gap: number, pad: number): number {
  let y = pad;
  for (const h of heights) y += h + gap;
  return y;
}

/** The index of the page at `y` (the page whose box, or the gap after it, contains y), clamped. */
export function pageAt(tops: readonly number[], y: number): number {
  if (tops.length === 0) return -1;
  let lo = 0;
  let hi = tops.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((tops[mid] ?? 0) <= y) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

export interface PageWindow {
  /** 0-based index of the first page to have rendered (overscan included). */
  first: number;
  /** 0-based index of the last page to have rendered (overscan included). */
  last: number;
  /** 0-based index of the page being read: the one at the top of the viewport (the last one at the very end). */
  current: number;
}

/**
 * Which pages to render for a viewport: those intersecting [scrollTop, scrollTop + viewHeight], plus
 * `overscan` pages on each side. `current` is the page at the top edge, except when the view is scrolled
 * to the end, where it is the last page (a short last page can never reach the top edge).
 */
export function pageWindow(tops: readonly number[], heights: readonly number[], scrollTop: number, viewHeight: number, overscan = 1): PageWindow {
  const n = tops.length;
  if (n === 0) return { first: 0, last: -1, current: -1 };
  const end = (tops[n - 1] ?? 0) + (heights[n - 1] ?? 0);
  const top = pageAt(tops, scrollTop);
  const bottom = pageAt(tops, scrollTop + Math.max(0, viewHeight - 1));
  // The top edge may sit in the gap after a page: the page being read is then the next one.
  const topIdx = top < n - 1 && (tops[top] ?? 0) + (heights[top] ?? 0) <= scrollTop ? top + 1 : top;
  const atEnd = scrollTop + viewHeight >= end - 1 && scrollTop > 0;
  return {
    first: Math.max(0, top - overscan),
    last: Math.min(n - 1, bottom + overscan),
    current: atEnd ? n - 1 : topIdx,
  };
}

/** 0..1 through the document from the scroll position (1 for a layout that does not scroll). */
export function scrollProgress(scrollTop: number, scrollHeight: number, viewHeight: number): number {
  const max = scrollHeight - viewHeight;
  if (max <= 0) return 1;
  return Math.min(1, Math.max(0, scrollTop / max));
}
