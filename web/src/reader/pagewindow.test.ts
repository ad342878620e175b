import { describe, expect, it } from 'vitest';
import { layoutHeight, pageAt, pageTops, pageWindow, scrollProgress } from './pagewindow';

describe('continuous-scroll page window', () => {
  // Six pages of 1000 px, a 10 px gap after each, 8 px above the first.
  const heights = [1000, 1000, 1000, 1000, 1000, 1000];
  const tops = pageTops(heights, 10, 8);

  it('stacks pages with the gap and padding', () => {
    expect(tops).toEqual([8, 1018, 2028, 3038, 4048, 5058]);
    expect(layoutHeight(heights, 10, 8)).toBe(6068);
    expect(pageTops([], 10, 8)).toEqual([]);
  });

  it('finds the page at a y', () => {
    expect(pageAt(tops, 0)).toBe(0);
    expect(pageAt(tops, 1017)).toBe(0);
    expect(pageAt(tops, 1018)).toBe(1);
    expect(pageAt(tops, 99_999)).toBe(5);
    expect(pageAt([], 5)).toBe(-1);
  });

  it('renders the visible pages and one more on each side', () => {
    expect(pageWindow(tops, heights, 0, 800, 1)).toEqual({ first: 0, last: 1, current: 0 });
    // Between pages 2 and 3 (0-based 1 and 2): both visible, plus one each side.
    expect(pageWindow(tops, heights, 1500, 800, 1)).toEqual({ first: 0, last: 3, current: 1 });
    expect(pageWindow(tops, heights, 2028, 800, 0)).toEqual({ first: 2, last: 2, current: 2 });
  });

  it('a top edge in the gap after a page reads the next page', () => {
    expect(pageWindow(tops, heights, 1012, 800, 0).current).toBe(1);
  });

  it('at the very end the last page is current, even when short', () => {
    const h = [1000, 1000, 200];
    const t = pageTops(h, 10, 8);
    const end = (t[2] ?? 0) + 200;
    expect(pageWindow(t, h, end - 800, 800, 1)).toEqual({ first: 0, last: 2, current: 2 });
  });

  it('an empty document has no window', () => {
    expect(pageWindow([], [], 0, 800)).toEqual({ first: 0, last: -1, current: -1 });
  });

  it('progress follows the scroll position', () => {
    expect(scrollProgress(0, 6068, 800)).toBe(0);
    expect(scrollProgress(5268, 6068, 800)).toBe(1);
    expect(scrollProgress(2634, 6068, 800)).toBeCloseTo(0.5);
    expect(scrollProgress(0, 500, 800)).toBe(1);
  });
});
