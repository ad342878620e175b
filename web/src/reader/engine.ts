// What the Reader screen needs from a format engine (EPUB through epub.js, PDF through pdf.js).
// Engines are loaded lazily so their code is not part of the initial bundle.

export interface Location {
  /** 0..1 through the whole book */
  progress: number;
  cfi: string | null;
  /** PDF page (1-based) or EPUB page within the current chapter */
  page: number | null;
  total: number | null;
  label: string;
}

export interface Selection {
  text: string;
  cfiStart: string | null;
  cfiEnd: string | null;
  page: number | null;
}

export interface TocItem {
  label: string;
  target: string;
  depth: number;
}

export interface Mark {
  id: string;
  cfiStart: string | null;
  cfiEnd: string | null;
  page: number | null;
  text: string | null;
  color: string;
}

export interface Look {
  background: string;
  color: string;
  fontFamily: string;
  fontSize: number;
  lineHeight: number;
  paragraphSpacing: number;
  marginPercent: number;
  textAlign: string;
}

export interface Target {
  cfi?: string | null;
  page?: number | null;
  href?: string | null;
}

export type Flow = 'paginated' | 'scrolled';

export interface Engine {
  next(): Promise<void>;
  prev(): Promise<void>;
  goTo(target: Target): Promise<void>;
  toc(): TocItem[];
  setMarks(marks: Mark[]): void;
  setLook(look: Look): void;
  clearSelection(): void;
  destroy(): void;
}

export interface EngineEvents {
  onLocation(loc: Location): void;
  onSelection(sel: Selection | null): void;
  onKey(key: string): void;
}

export const MARK_FILL: Record<string, string> = {
  yellow: '#f7d84a',
  green: '#7ed492',
  blue: '#7fb6f5',
  pink: '#f59fc3',
  purple: '#b89cf0',
};

/** Opens a book; a change of `flow` opens it again at the current position (a fresh layout). */
export async function openEngine(kind: 'epub' | 'pdf', el: HTMLElement, data: ArrayBuffer, start: Target, look: Look, flow: Flow, events: EngineEvents): Promise<Engine> {
  if (kind === 'epub') {
    const { openEpub } = await import('./epub');
    return openEpub(el, data, start, look, flow, events);
  }
  const { openPdf } = await import('./pdf');
  return openPdf(el, data, start, look, flow, events);
}
