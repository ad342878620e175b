// Windowing for long lists: only the rows near the viewport are rendered, so a library of
// thousands of books scrolls without long main-thread tasks.
import type { RefObject } from 'preact';
import { useEffect, useState } from 'preact/hooks';

export interface Range {
  /** first and one-past-last item index rendered */
  start: number;
  end: number;
  padTop: number;
  padBottom: number;
}

/**
 * The items to render for a list of `count` items laid out `columns` per row, each row
 * `rowHeight` px tall, when the list's top is `listTop` px relative to the viewport (negative once
 * scrolled past) and the viewport is `viewportHeight` px tall.
 */
export function visibleRange(count: number, columns: number, rowHeight: number, listTop: number, viewportHeight: number, overscanRows = 3): Range {
  const cols = Math.max(1, columns);
  const rows = Math.ceil(count / cols);
  const first = Math.max(0, Math.floor(-listTop / rowHeight) - overscanRows);
  const last = Math.min(rows, Math.ceil((viewportHeight - listTop) / rowHeight) + overscanRows);
  const startRow = Math.min(first, rows);
  const endRow = Math.max(startRow, last);
  return {
    start: startRow * cols,
    end: Math.min(count, endRow * cols),
    padTop: startRow * rowHeight,
    padBottom: Math.max(0, rows - endRow) * rowHeight,
  };
}

/** Columns that fit `width` with items `itemWidth` wide and `gap` apart. */
export function columnsFor(width: number, itemWidth: number, gap: number): number {
  return Math.max(1, Math.floor((width + gap) / (itemWidth + gap)));
}

/** The range of `count` items to render in the element `ref`, following window scroll and resize. */
export function useWindowed(ref: RefObject<HTMLElement>, count: number, layout: { itemWidth: number | null; rowHeight: number; gap: number }): Range & { columns: number } {
  const measure = () => {
    const el = ref.current;
    const width = el?.clientWidth ?? 1024;
    const columns = layout.itemWidth ? columnsFor(width, layout.itemWidth, layout.gap) : 1;
    const top = el?.getBoundingClientRect().top ?? 0;
    return { ...visibleRange(count, columns, layout.rowHeight, top, window.innerHeight), columns };
  };
  const [range, setRange] = useState(measure);
  useEffect(() => {
    let frame = 0;
    const update = () => {
      cancelAnimationFrame(frame);
      frame = requestAnimationFrame(() => {
        const next = measure();
        setRange((cur) => (cur.start === next.start && cur.end === next.end && cur.columns === next.columns && cur.padTop === next.padTop && cur.padBottom === next.padBottom ? cur : next));
      });
    };
    update();
    window.addEventListener('scroll', update, { passive: true });
    window.addEventListener('resize', update);
    return () => {
      cancelAnimationFrame(frame);
      window.removeEventListener('scroll', update);
      window.removeEventListener('resize', update);
    };
  }, [count, layout.itemWidth, layout.rowHeight, layout.gap]);
  return range;
}
