// PDF through pdf.js: one page at a time on a canvas, a text layer for selection, highlights
// drawn over the text of their page.
import { getDocument, GlobalWorkerOptions, TextLayer, type PDFDocumentProxy } from 'pdfjs-dist';
import workerUrl from 'pdfjs-dist/build/pdf.worker.min.mjs?url';
import 'pdfjs-dist/web/pdf_viewer.css';
import type { Engine, EngineEvents, Flow, Look, Mark, Target, TocItem } from './engine';
import { MARK_FILL } from './engine';

GlobalWorkerOptions.workerSrc = workerUrl;

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

export async function openPdf(el: HTMLElement, data: ArrayBuffer, start: Target, look: Look, flow: Flow, events: EngineEvents): Promise<Engine> {
  const doc = await getDocument({ data: new Uint8Array(data) }).promise;
  const total = doc.numPages;
  const toc = await outlineToc(doc);
  el.innerHTML = '';
  const pageBox = document.createElement('div');
  pageBox.className = 'pdf-page';
  el.appendChild(pageBox);
  let current = Math.min(total, Math.max(1, start.page ?? 1));
  let marks: Mark[] = [];
  let renderId = 0;
  let currentLook = look;
  // PDF pages are shown one at a time in both layouts; "scrolled" fits the page to the width and scrolls.
  const fitWidth = flow === 'scrolled';
  el.style.overflowY = fitWidth ? 'auto' : 'hidden';

  const paintMarks = () => {
    for (const old of pageBox.querySelectorAll('.pdf-mark')) old.classList.remove('pdf-mark');
    const spans = [...pageBox.querySelectorAll<HTMLElement>('.textLayer span')];
    for (const m of marks) {
      if (m.page !== current || !m.text) continue;
      const needle = m.text.replace(/\s+/g, ' ').trim();
      for (const s of spans) {
        const t = (s.textContent ?? '').replace(/\s+/g, ' ').trim();
        if (t && (needle.includes(t) || t.includes(needle))) {
          s.classList.add('pdf-mark');
          s.style.setProperty('--mark', MARK_FILL[m.color] ?? MARK_FILL.yellow ?? '#ff0');
        }
      }
    }
  };

  const render = async () => {
    const id = ++renderId;
    const page = await doc.getPage(current);
    const base = page.getViewport({ scale: 1 });
    const width = Math.max(200, el.clientWidth - 16);
    const height = Math.max(200, el.clientHeight - 16);
    const fit = fitWidth ? width / base.width : Math.min(width / base.width, height / base.height);
    const scale = fit * (currentLook.fontSize / 18);
    const viewport = page.getViewport({ scale });
    const canvas = document.createElement('canvas');
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.floor(viewport.width * ratio);
    canvas.height = Math.floor(viewport.height * ratio);
    canvas.style.width = `${Math.floor(viewport.width)}px`;
    canvas.style.height = `${Math.floor(viewport.height)}px`;
    await page.render({ canvas, viewport, transform: ratio === 1 ? undefined : [ratio, 0, 0, ratio, 0, 0] }).promise;
    if (id !== renderId) return;
    const text = document.createElement('div');
    text.className = 'textLayer';
    pageBox.replaceChildren(canvas, text);
    pageBox.style.width = canvas.style.width;
    pageBox.style.height = canvas.style.height;
    pageBox.style.setProperty('--scale-factor', String(scale));
    pageBox.style.setProperty('--total-scale-factor', String(scale));
    await new TextLayer({ textContentSource: page.streamTextContent(), container: text, viewport }).render();
    if (id !== renderId) return;
    paintMarks();
    events.onLocation({ progress: total > 1 ? (current - 1) / (total - 1) : 1, cfi: null, page: current, total, label: `${current}/${total}` });
  };

  const onMouseUp = () => {
    const sel = window.getSelection();
    const text = sel?.toString().trim() ?? '';
    if (text && sel?.anchorNode && pageBox.contains(sel.anchorNode)) events.onSelection({ text, cfiStart: null, cfiEnd: null, page: current });
  };
  pageBox.addEventListener('mouseup', onMouseUp);
  pageBox.addEventListener('keyup', onMouseUp);
  el.style.background = look.background;
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
      const n = t.page ?? (t.href ? Number(t.href) : NaN);
      if (Number.isFinite(n)) await go(n);
    },
    toc: () => toc,
    setMarks: (m) => {
      marks = m;
      paintMarks();
    },
    setLook: (l) => {
      const rerender = l.fontSize !== currentLook.fontSize;
      currentLook = l;
      el.style.background = l.background;
      if (rerender) void render();
    },
    clearSelection: () => window.getSelection()?.removeAllRanges(),
    destroy: () => {
      pageBox.removeEventListener('mouseup', onMouseUp);
      void doc.destroy();
      el.innerHTML = '';
    },
  };
}
