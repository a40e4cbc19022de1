import { useState, type FormEvent } from 'react';
import { apiRequest } from '../api/client.ts';
import { rememberCredentials } from '../auth.ts';
import { ErrorNotice } from '../components/common.tsx';
import { useI18n } from '../i18n/index.tsx';

/** Sign in with a workspace server key: checked with one cheap API call before it is kept. */
export function LoginPage() {
  const { t } = useI18n();
  const [key, setKey] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await apiRequest('GET', '/v1/segments', { query: { limit: 1 }, headers: { authorization: `Bearer ${key.trim()}` } });
      rememberCredentials({ kind: 'server-key', key: key.trim() });
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="login">
      <h1>{t('login.title')}</h1>
      <form onSubmit={submit}>
        <label htmlFor="server-key">{t('login.serverKey')}</label>
        <input
          id="server-key"
          name="serverKey"
          type="password"
          autoComplete="off"
          required
          value={key}
          onChange={(event) => setKey(event.target.value)}
          aria-describedby="server-key-help"
        />
        <p id="server-key-help" className="help">
          {t('login.serverKeyHelp')}
        </p>
        <button type="submit" className="primary" disabled={busy || !key.trim()}>
          {busy ? t('login.checking') : t('login.submit')}
        </button>
      </form>
      <ErrorNotice error={error} />
    </main>
  );
}
