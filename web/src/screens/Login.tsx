import { useState } from 'preact/hooks';
import { sendCode, verifyCode, type Session } from '../api';
import { t } from '../i18n';

export function Login({ onSignedIn }: { onSignedIn: (s: Session) => void }) {
  const [email, setEmail] = useState('');
  const [code, setCode] = useState('');
  const [sent, setSent] = useState(false);
  const [devCode, setDevCode] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submitEmail = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const r = await sendCode(email.trim());
      // The server returns the code only in development mode; the hint is shown only then.
      setDevCode(typeof r?.dev_code === 'string' ? r.dev_code : null);
      setSent(true);
    } catch (err) {
      setError(t('login.failed', { message: err instanceof Error ? err.message : String(err) }));
    } finally {
      setBusy(false);
    }
  };

  const submitCode = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      onSignedIn(await verifyCode(email.trim(), code.trim()));
    } catch (err) {
      setError(t('login.failed', { message: err instanceof Error ? err.message : String(err) }));
      setBusy(false);
    }
  };

  return (
    <main class="login" id="main">
      <h1>{t('login.title')}</h1>
      {!sent ? (
        <form onSubmit={submitEmail}>
          <label for="login-email">{t('login.email')}</label>
          <input id="login-email" type="email" required autocomplete="email" value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
          <button type="submit" disabled={busy}>{t('login.sendCode')}</button>
        </form>
      ) : (
        <form onSubmit={submitCode}>
          <p>{t('login.codeSent', { email })}</p>
          {devCode && <p class="hint" data-testid="dev-code">{t('login.devCode', { code: devCode })}</p>}
          <label for="login-code">{t('login.code')}</label>
          <input id="login-code" inputMode="numeric" autocomplete="one-time-code" required pattern="[0-9]{6}" value={code} onInput={(e) => setCode(e.currentTarget.value)} />
          <button type="submit" disabled={busy}>{t('login.verify')}</button>
          <button type="button" class="link" onClick={() => { setSent(false); setCode(''); setDevCode(null); }}>{t('login.changeEmail')}</button>
        </form>
      )}
      {error && <p class="error" role="alert">{error}</p>}
    </main>
  );
}
