// Why a book's conversion or OCR failed. The reason is not a synced column (DATA-MODEL.md): it is read
// by REST from GET /api/v1/books/{id}/processing/status (`errors.conversion_error` / `errors.ocr_error`,
// each `{code, message}` written by the worker when it gave up), only for books whose synced status is
// `failed`, and shown in the user's language from its stable code.
import { useEffect, useState } from 'preact/hooks';
import { authJson } from './api';
import type { MessageKey } from './i18n';

export interface ProcessingError {
  code: string;
  message: string | null;
}

/** Reason codes with a message of their own; any other code is shown as it is. */
const REASON_KEYS: Record<string, MessageKey> = {
  calibre_missing: 'reason.calibreMissing',
  libreoffice_missing: 'reason.libreofficeMissing',
  poppler_missing: 'reason.toolMissing',
  tool_missing: 'reason.toolMissing',
  ocr_tool_missing: 'reason.toolMissing',
  ocr_runtime_missing: 'reason.toolMissing',
  ocr_model_missing: 'reason.toolMissing',
  unsupported_format: 'reason.unsupported',
  not_convertible: 'reason.unsupported',
  input_too_large: 'reason.tooLarge',
  ocr_image_too_large: 'reason.tooLarge',
  pdf_text_too_large: 'reason.tooLarge',
  convert_timeout: 'reason.timeout',
  ocr_timeout: 'reason.timeout',
  timeout: 'reason.timeout',
  convert_out_of_memory: 'reason.memory',
  convert_failed: 'reason.convertFailed',
  invalid_output: 'reason.convertFailed',
  djvu_no_text: 'reason.noText',
  no_text: 'reason.noText',
  pdf_unreadable: 'reason.unreadable',
  not_a_pdf: 'reason.unreadable',
  ocr_bad_pdf: 'reason.unreadable',
  ocr_bad_image: 'reason.unreadable',
  ocr_disabled: 'reason.ocrOff',
};

/** The message key for a reason code, or null when the code has none (then the code itself is shown). */
export function reasonKey(code: string): MessageKey | null {
  return REASON_KEYS[code] ?? null;
}

/** The failed step's error out of a processing-status answer. */
export function errorOf(status: { errors?: Record<string, unknown> } | null | undefined, step: 'conversion' | 'ocr'): ProcessingError | null {
  const e = status?.errors?.[step === 'conversion' ? 'conversion_error' : 'ocr_error'];
  if (!e || typeof e !== 'object') return null;
  const { code, message } = e as { code?: unknown; message?: unknown };
  if (typeof code !== 'string' || !code) return null;
  return { code, message: typeof message === 'string' ? message : null };
}

const cache = new Map<string, Promise<ProcessingError | null>>();

/**
 * The reason of a failed step of book `id`, fetched once per book, step and `stamp` (the book's
 * `updated_at`: a retry that fails again is fetched anew); null while loading, when not failed, or offline.
 */
export function useProcessingError(id: string, step: 'conversion' | 'ocr' | null, stamp: string | null): ProcessingError | null {
  const [error, setError] = useState<ProcessingError | null>(null);
  useEffect(() => {
    setError(null);
    if (!step) return;
    const key = `${id}:${step}:${stamp ?? ''}`;
    let p = cache.get(key);
    if (!p) {
      p = authJson<{ errors?: Record<string, unknown> }>('GET', `/api/v1/books/${id}/processing/status`)
        .then((s) => errorOf(s, step))
        .catch(() => {
          cache.delete(key);
          return null;
        });
      cache.set(key, p);
    }
    let live = true;
    void p.then((e) => live && setError(e));
    return () => {
      live = false;
    };
  }, [id, step, stamp]);
  return error;
}
