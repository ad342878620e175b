// PDF through pdf.js. Paginated: one page at a time on a canvas. Scrolled: the whole document as one
// vertical scroll of pages, rendered lazily (only the pages near the viewport have a canvas; the others
// are placeholders sized from their page's viewport). Each rendered page has a text layer for selection,
// and highlights drawn over the text of their page.
import { getDocument, GlobalWorkerOptions, TextLayer, type PDFDocumentProxy, type PDFPageProxy, type PageViewport } from 'pdfjs-dist';
import workerUrl from 'pdfjs-dist/build/pdf.worker.min.mjs?url';
import 'pdfjs-dist/web/pdf_viewer.css';
import type { Engine, EngineEvents, Flow, Look, Mark, Target, TocItem } from './engine';
import { MARK_FILL } from './engine';
import { pageTops, pageWindow, scrollProgress } from './pagewindow';

GlobalWorkerOptions.workerSrc = workerUrl;

/** The page a jump target names (its page, or a TOC href holding the page number); null when none. */
function pageOf(t: Target): number | null {
  const n = t.page ?? (t.href ? Number(t.href) : NaN);
  return Number.isFinite(n) ? n : null;
}

interface OutlineNode {
  title: string;
  dest: string | unknown[] | null;
  items: OutlineNode[];
}

async function outlineToc(doc: PDFDocumentProxy): Promise<TocItem[]> {
  const out: TocItem[] = [];
  const outline = ((await doc.getOutline()) ?? []) as OutlineNode[];
  const walk = async (nodes: OutlineNode[], depth: number) => {
    for (const n of nodes) {
      try {
        const dest = typeof n.dest === 'string' ? await doc.getDestination(n.dest) : n.dest;
        const ref = Array.isArray(dest) ? dest[0] : null;
        const index = ref && typeof ref === 'object' ? await doc.getPageIndex(ref as never) : typeof ref === 'number' ? ref : null;
        if (index !== null) out.push({ label: n.title, target: String(index + 1), depth });
      } catch {
        // an outline entry without a usable destination is left out
      }
      if (n.items?.length) await walk(n.items, depth + 1);
    }
  };
  await walk(outline, 0);
  return out;
}

/** Marks the text-layer spans of `box` (page `n`) that belong to a highlight of that page. */
function paintMarksIn(box: HTMLElement, n: number, marks: Mark[]): void {
  for (const old of box.querySelectorAll('.pdf-mark')) old.classList.remove('pdf-mark');
  const spans = [...box.querySelectorAll<HTMLElement>('.textLayer span')];
  for (const m of marks) {
    if (m.page !== n || !m.text) continue;
    const needle = m.text.replace(/\s+/g, ' ').trim();
    for (const s of spans) {
      const t = (s.textContent ?? '').replace(/\s+/g, ' ').trim();
      if (t && (needle.includes(t) || t.includes(needle))) {
        s.classList.add('pdf-mark');
        s.style.setProperty('--mark', MARK_FILL[m.color] ?? MARK_FILL.yellow ?? '#ff0');
      }
    }
  }
}

/** Draws `page` at `viewport` into `box` (canvas + text layer); false when `stale()` turned true meanwhile. */
async function drawPage(box: HTMLElement, page: PDFPageProxy, viewport: PageViewport, stale: () => boolean): Promise<boolean> {
  const canvas = document.createElement('canvas');
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.floor(viewport.width * ratio);
  canvas.height = Math.floor(viewport.height * ratio);
  canvas.style.width = `${Math.floor(viewport.width)}px`;
  canvas.style.height = `${Math.floor(viewport.height)}px`;
  await page.render({ canvas, viewport, transform: ratio === 1 ? undefined : [ratio, 0, 0, ratio, 0, 0] }).promise;
  if (stale()) return false;
  const text = document.createElement('div');
  text.className = 'textLayer';
  box.replaceChildren(canvas, text);
  box.style.width = canvas.style.width;
  box.style.height = canvas.style.height;
  box.style.setProperty('--scale-factor', String(viewport.scale));
  box.style.setProperty('--total-scale-factor', String(viewport.scale));
  await new TextLayer({ textContentSource: page.streamTextContent(), container: text, viewport }).render();
  return !stale();
}

export async function openPdf(el: HTMLElement, data: ArrayBuffer, start: Target, look: Look, flow: Flow, events: EngineEvents): Promise<Engine> {
  const doc = await getDocument({ data: new Uint8Array(data) }).promise;
  const toc = await outlineToc(doc);
  el.innerHTML = '';
  el.style.background = look.background;
  return flow === 'scrolled' ? openScrolled(el, doc, toc, start, look, events) : openPaginated(el, doc, toc, start, look, events);
}

function selectionHandler(container: HTMLElement, events: EngineEvents, pageOf: (node: Node) => number) {
  return () => {
    const sel = window.getSelection();
    const text = sel?.toString().trim() ?? '';
    if (text && sel?.anchorNode && container.contains(sel.anchorNode)) events.onSelection({ text, cfiStart: null, cfiEnd: null, page: pageOf(sel.anchorNode) });
  };
}

async function openPaginated(el: HTMLElement, doc: PDFDocumentProxy, toc: TocItem[], start: Target, look: Look, events: EngineEvents): Promise<Engine> {
  const total = doc.numPages;
  const pageBox = document.createElement('div');
  pageBox.className = 'pdf-page';
  el.appendChild(pageBox);
  let current = Math.min(total, Math.max(1, start.page ?? 1));
  let marks: Mark[] = [];
  let renderId = 0;
  let currentLook = look;
  el.style.overflowY = 'hidden';

  const render = async () => {
    const id = ++renderId;
    const page = await doc.getPage(current);
    const base = page.getViewport({ scale: 1 });
    const width = Math.max(200, el.clientWidth - 16);
    const height = Math.max(200, el.clientHeight - 16);
    const scale = Math.min(width / base.width, height / base.height) * (currentLook.fontSize / 18);
    pageBox.dataset.page = String(current);
    if (!(await drawPage(pageBox, page, page.getViewport({ scale }), () => id !== renderId))) return;
    paintMarksIn(pageBox, current, marks);
    events.onLocation({ progress: total > 1 ? (current - 1) / (total - 1) : 1, cfi: null, page: current, total, label: `${current}/${total}` });
  };

  const onMouseUp = selectionHandler(pageBox, events, () => current);
  pageBox.addEventListener('mouseup', onMouseUp);
  pageBox.addEventListener('keyup', onMouseUp);
  await render();

  const go = async (n: number) => {
    const next = Math.min(total, Math.max(1, n));
    if (next === current) return;
    current = next;
    await render();
  };

  return {
    next: () => go(current + 1),
    prev: () => go(current - 1),
    goTo: async (t) => {
      const n = pageOf(t);
      if (n !== null) await go(n);
    },
    toc: () => toc,
    setMarks: (m) => {
      marks = m;
      paintMarksIn(pageBox, current, marks);
    },
    setLook: (l) => {
      const rerender = l.fontSize !== currentLook.fontSize;
      currentLook = l;
      el.style.background = l.background;
      if (rerender) void render();
    },
    clearSelection: () => window.getSelection()?.removeAllRanges(),
    destroy: () => {
      renderId++;
      pageBox.removeEventListener('mouseup', onMouseUp);
      pageBox.removeEventListener('keyup', onMouseUp);
      void doc.destroy();
      el.innerHTML = '';
    },
  };
}

/** Gap between pages and padding above the first one (px); the layout arithmetic of pagewindow.ts. */
const GAP = 12;
const PAD = 8;
/** Pages rendered beyond the viewport on each side; rendered pages further than KEEP pages away are released. */
const OVERSCAN = 1;
const KEEP = 3;

async function openScrolled(el: HTMLElement, doc: PDFDocumentProxy, toc: TocItem[], start: Target, look: Look, events: EngineEvents): Promise<Engine> {
  const total = doc.numPages;
  let currentLook = look;
  let marks: Mark[] = [];
  let destroyed = false;
  // Page sizes at scale 1: the first page's for every page until a page's own is known (on render).
  const firstPage = await doc.getPage(1);
  const base1 = firstPage.getViewport({ scale: 1 });
  const baseSizes = Array.from({ length: total }, () => ({ w: base1.width, h: base1.height }));
  const known = new Set<number>([0]);

  el.style.overflowY = 'auto';
  el.style.overflowX = 'auto';
  el.style.display = 'block';
  // A scrolling region is reachable by keyboard (arrow keys and Page Up/Down scroll it once focused).
  el.tabIndex = 0;
  const scroller = document.createElement('div');
  scroller.className = 'pdf-scroll';
  scroller.style.paddingTop = `${PAD}px`;
  // Size corrections above the viewport are compensated here, not by the browser's scroll anchoring.
  scroller.style.overflowAnchor = 'none';
  el.appendChild(scroller);
  const boxes = baseSizes.map((_, i) => {
    const b = document.createElement('div');
    b.className = 'pdf-page placeholder';
    b.dataset.page = String(i + 1);
    b.style.margin = `0 auto ${GAP}px`;
    scroller.appendChild(b);
    return b;
  });

  // Scale: the first page fitted to the width, times the font-size setting (18 = 100%).
  let scale = 1;
  let heights: number[] = [];
  let tops: number[] = [];
  /** Pages drawn (index → scale they were drawn at), and the draw generation (bumped by a relayout). */
  const drawn = new Map<number, number>();
  let generation = 0;

  const layout = () => {
    const width = Math.max(200, el.clientWidth - 32);
    scale = (width / base1.width) * (currentLook.fontSize / 18);
    heights = baseSizes.map((s) => Math.floor(s.h * scale));
    baseSizes.forEach((s, i) => {
      const b = boxes[i];
      if (!b) return;
      b.style.width = `${Math.floor(s.w * scale)}px`;
      b.style.height = `${heights[i]}px`;
    });
    tops = pageTops(heights, GAP, PAD);
  };
  layout();

  let lastPage = 0;
  let lastProgress = -1;
  const report = (force = false) => {
    const w = pageWindow(tops, heights, el.scrollTop, el.clientHeight, OVERSCAN);
    const page = w.current + 1;
    const progress = total > 1 ? scrollProgress(el.scrollTop, el.scrollHeight, el.clientHeight) : 1;
    if (!force && page === lastPage && Math.abs(progress - lastProgress) < 0.01) return;
    lastPage = page;
    lastProgress = progress;
    events.onLocation({ progress, cfi: null, page, total, label: `${page}/${total}` });
  };

  const release = (i: number) => {
    const b = boxes[i];
    if (!b) return;
    b.replaceChildren();
    b.classList.add('placeholder');
    drawn.delete(i);
  };

  let pumping = false;
  /** Renders the wanted pages one at a time, nearest to the current page first; releases far ones. */
  const pump = async () => {
    if (pumping || destroyed) return;
    pumping = true;
    try {
      for (;;) {
        if (destroyed) return;
        const w = pageWindow(tops, heights, el.scrollTop, el.clientHeight, OVERSCAN);
        for (const i of [...drawn.keys()]) if (i < w.current - KEEP || i > w.current + KEEP) release(i);
        const wanted: number[] = [];
        for (let i = w.first; i <= w.last; i++) if (drawn.get(i) !== scale) wanted.push(i);
        if (!wanted.length) return;
        wanted.sort((a, b) => Math.abs(a - w.current) - Math.abs(b - w.current));
        const i = wanted[0] as number;
        const gen = generation;
        const page = i === 0 ? firstPage : await doc.getPage(i + 1);
        if (destroyed || gen !== generation) continue;
        if (!known.has(i)) {
          // The page's own size: correct its placeholder (keeping the reading position when it is above).
          known.add(i);
          const v = page.getViewport({ scale: 1 });
          const size = baseSizes[i];
          if (size && (size.w !== v.width || size.h !== v.height)) {
            const before = heights[i] ?? 0;
            baseSizes[i] = { w: v.width, h: v.height };
            const above = (tops[i] ?? 0) + before <= el.scrollTop;
            layout();
            if (above) el.scrollTop += (heights[i] ?? 0) - before;
          }
        }
        const box = boxes[i];
        if (!box) return;
        const drawnAt = scale;
        const ok = await drawPage(box, page, page.getViewport({ scale: drawnAt }), () => destroyed || gen !== generation);
        if (!ok) continue;
        box.classList.remove('placeholder');
        drawn.set(i, drawnAt);
        paintMarksIn(box, i + 1, marks);
      }
    } catch (e) {
      // Closing the book cancels its renders; any other failure leaves the page a placeholder.
      if (!destroyed) console.warn('pdf: a page could not be rendered', e);
    } finally {
      pumping = false;
    }
  };

  let frame = 0;
  const onScroll = () => {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      report();
      void pump();
    });
  };
  el.addEventListener('scroll', onScroll, { passive: true });
  // Page Up/Down on the focused scroll scroll it by a screen (the browser's own); they do not also jump a page.
  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === 'PageDown' || e.key === 'PageUp') e.stopPropagation();
  };
  el.addEventListener('keydown', onKeyDown);

  const scrollToPage = (n: number) => {
    const i = Math.min(total, Math.max(1, n)) - 1;
    el.scrollTop = Math.max(0, (tops[i] ?? 0) - PAD);
  };

  const pageOfNode = (node: Node) => {
    const elNode = node instanceof Element ? node : node.parentElement;
    return Number(elNode?.closest<HTMLElement>('.pdf-page')?.dataset.page ?? lastPage) || lastPage;
  };
  const onMouseUp = selectionHandler(scroller, events, pageOfNode);
  scroller.addEventListener('mouseup', onMouseUp);
  scroller.addEventListener('keyup', onMouseUp);

  scrollToPage(start.page ?? 1);
  report(true);
  await pump();
  // pump() may stop early when a page turned out to be another size: let the scroll handler go on.
  onScroll();

  const go = async (n: number) => {
    scrollToPage(n);
    report();
    await pump();
  };

  return {
    next: () => go(lastPage + 1),
    prev: () => go(lastPage - 1),
    goTo: async (t) => {
      const n = pageOf(t);
      if (n !== null) await go(n);
    },
    toc: () => toc,
    setMarks: (m) => {
      marks = m;
      for (const i of drawn.keys()) {
        const b = boxes[i];
        if (b) paintMarksIn(b, i + 1, marks);
      }
    },
    setLook: (l) => {
      const relayout = l.fontSize !== currentLook.fontSize;
      currentLook = l;
      el.style.background = l.background;
      if (!relayout) return;
      const page = lastPage || 1;
      generation++;
      for (const i of [...drawn.keys()]) release(i);
      layout();
      scrollToPage(page);
      report(true);
      void pump();
    },
    clearSelection: () => window.getSelection()?.removeAllRanges(),
    destroy: () => {
      destroyed = true;
      if (frame) cancelAnimationFrame(frame);
      el.removeEventListener('scroll', onScroll);
      el.removeEventListener('keydown', onKeyDown);
      scroller.removeEventListener('mouseup', onMouseUp);
      scroller.removeEventListener('keyup', onMouseUp);
      el.style.display = '';
      el.style.overflowY = '';
      el.style.overflowX = '';
      el.removeAttribute('tabindex');
      void doc.destroy();
      el.innerHTML = '';
    },
  };
}
