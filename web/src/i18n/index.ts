// Message catalogs and the current language: the saved choice, else the browser's language.
import { en, type MessageKey } from './en';
import { zh } from './zh';

export type Lang = 'en' | 'zh';
export type { MessageKey };

const catalogs: Record<Lang, Record<MessageKey, string>> = { en, zh };
const STORAGE_KEY = 'athena.lang';
const listeners = new Set<() => void>();

/** `zh` for any Chinese browser language, `en` otherwise. */
export function langFromNavigator(languages: readonly string[]): Lang {
  for (const l of languages) {
    const tag = l.toLowerCase();
    if (tag.startsWith('zh')) return 'zh';
    if (tag.startsWith('en')) return 'en';
  }
  return 'en';
}

function initialLang(): Lang {
  const saved = typeof localStorage === 'undefined' ? null : localStorage.getItem(STORAGE_KEY);
  if (saved === 'en' || saved === 'zh') return saved;
  const langs = typeof navigator === 'undefined' ? [] : navigator.languages?.length ? navigator.languages : [navigator.language];
  return langFromNavigator(langs);
}

let current: Lang = initialLang();

export function lang(): Lang {
  return current;
}

/** Sets the language; `null` goes back to following the browser. */
export function setLang(next: Lang | null): void {
  if (next === null) localStorage.removeItem(STORAGE_KEY);
  else localStorage.setItem(STORAGE_KEY, next);
  current = initialLang();
  document.documentElement.lang = current === 'zh' ? 'zh-CN' : 'en';
  for (const l of listeners) l();
}

export function savedLang(): Lang | null {
  const saved = localStorage.getItem(STORAGE_KEY);
  return saved === 'en' || saved === 'zh' ? saved : null;
}

export function onLangChange(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** The message for `key` in `language` with `{name}` placeholders filled. */
export function format(language: Lang, key: MessageKey, params: Record<string, string | number> = {}): string {
  const template = catalogs[language][key] ?? catalogs.en[key] ?? key;
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => (name in params ? String(params[name]) : whole));
}

export function t(key: MessageKey, params?: Record<string, string | number>): string {
  return format(current, key, params);
}
