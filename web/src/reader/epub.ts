// EPUB through epub.js: paginated rendition, CFI positions, highlights as annotations.
import ePub from 'epubjs';
import type { Engine, EngineEvents, Flow, Look, Mark, Target, TocItem } from './engine';
import { MARK_FILL } from './engine';

interface RelocatedLocation {
  start: { cfi: string; index: number; href: string; displayed: { page: number; total: number } };
}

interface NavItem {
  label: string;
  href: string;
  subitems?: NavItem[];
}

export async function openEpub(el: HTMLElement, data: ArrayBuffer, start: Target, look: Look, flow: Flow, events: EngineEvents): Promise<Engine> {
  const book = ePub(data);
  const rendition = book.renderTo(el, { width: '100%', height: '100%', flow: flow === 'scrolled' ? 'scrolled-doc' : 'paginated', spread: 'none', allowScriptedContent: false } as never);
  await book.ready;
  const spineLength = Math.max(1, (book.spine as unknown as { length: number }).length || 1);
  const toc: TocItem[] = [];
  const walk = (items: NavItem[], depth: number) => {
    for (const i of items) {
      toc.push({ label: i.label.trim(), target: i.href, depth });
      if (i.subitems?.length) walk(i.subitems, depth + 1);
    }
  };
  walk((book.navigation?.toc ?? []) as NavItem[], 0);

  // Where the reader means to be: the position it was opened at, or the page start after the user
  // moved. A change of look re-lays the book out; showing this again keeps the same text in view.
  let anchor: string | null = start.cfi ?? null;
  let moving = false;
  let displayed = false;
  const move = async (go: () => Promise<void>) => {
    moving = true;
    await go();
  };

  const applyLook = (l: Look) => {
    rendition.themes.default({
      body: {
        background: `${l.background} !important`,
        color: `${l.color} !important`,
        'font-family': `${l.fontFamily} !important`,
        'line-height': `${l.lineHeight} !important`,
        'padding-left': `${l.marginPercent}% !important`,
        'padding-right': `${l.marginPercent}% !important`,
      },
      'p, div, li, span': { 'font-family': `${l.fontFamily} !important`, 'line-height': `${l.lineHeight} !important`, color: `${l.color} !important` },
      p: { 'margin-bottom': `${l.paragraphSpacing}em !important`, 'text-align': `${l.textAlign} !important` },
      a: { color: `${l.color} !important` },
    });
    rendition.themes.fontSize(`${l.fontSize}px`);
    el.style.background = l.background;
    if (displayed && anchor) void rendition.display(anchor);
  };
  applyLook(look);

  rendition.on('relocated', (loc: RelocatedLocation) => {
    const s = loc.start;
    if (moving || !anchor) anchor = s.cfi;
    moving = false;
    const within = s.displayed.total > 0 ? (s.displayed.page - 1) / s.displayed.total : 0;
    const progress = Math.min(1, (s.index + within) / spineLength);
    events.onLocation({ progress, cfi: s.cfi, page: s.displayed.page, total: s.displayed.total, label: `${s.displayed.page}/${s.displayed.total}` });
  });
  rendition.on('selected', (cfiRange: string) => {
    const range = rendition.getRange(cfiRange);
    const text = range?.toString().trim() ?? '';
    if (!text) return;
    const [startCfi, endCfi] = [cfiRange, cfiRange];
    events.onSelection({ text, cfiStart: startCfi, cfiEnd: endCfi, page: null });
  });
  rendition.on('keyup', (e: KeyboardEvent) => events.onKey(e.key));

  let shown = new Map<string, string>();
  const setMarks = (marks: Mark[]) => {
    const next = new Map<string, string>();
    for (const m of marks) if (m.cfiStart) next.set(m.cfiStart, m.color);
    for (const [cfi, color] of shown) {
      if (next.get(cfi) !== color) rendition.annotations.remove(cfi, 'highlight');
    }
    for (const [cfi, color] of next) {
      if (shown.get(cfi) === color) continue;
      rendition.annotations.add('highlight', cfi, {}, undefined, 'athena-hl', {
        fill: MARK_FILL[color] ?? MARK_FILL.yellow,
        'fill-opacity': '0.4',
        'mix-blend-mode': 'multiply',
      });
    }
    shown = next;
  };

  const clearSelection = () => {
    for (const c of rendition.getContents() as unknown as Array<{ window: Window }>) c.window.getSelection()?.removeAllRanges();
  };

  await rendition.display(start.cfi || undefined);
  displayed = true;

  return {
    next: () => move(() => rendition.next()),
    prev: () => move(() => rendition.prev()),
    goTo: async (t) => {
      const where = t.cfi ?? t.href ?? undefined;
      if (where) await move(() => rendition.display(where));
    },
    toc: () => toc,
    setMarks,
    setLook: applyLook,
    clearSelection,
    destroy: () => {
      rendition.destroy();
      book.destroy();
    },
  };
}
