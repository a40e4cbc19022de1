import { useState, type FormEvent } from 'react';
import { ApiRequestError, apiRequest } from '../api/client.ts';
import type { LoginAnswer } from '../api/types.ts';
import { rememberCredentials } from '../auth.ts';
import { ErrorNotice } from '../components/common.tsx';
import { useI18n } from '../i18n/index.tsx';

/** Sign in as a user (email and password), or with a workspace server key. */
export function LoginPage() {
  const { t } = useI18n();
  const [method, setMethod] = useState<'user' | 'key'>('user');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [key, setKey] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      if (method === 'key') {
        // One cheap call checks the key before it is kept.
        await apiRequest('GET', '/v1/segments', { query: { limit: 1 }, headers: { authorization: `Bearer ${key.trim()}` } });
        rememberCredentials({ kind: 'server-key', key: key.trim() });
      } else {
        const answer = await apiRequest<LoginAnswer>('POST', '/v1/auth/login', { body: { email: email.trim(), password }, headers: {} });
        if (!answer.user || !answer.csrfToken) throw new ApiRequestError(500, 'unexpected_answer', 'The login answer had no session');
        if (answer.workspaces.length === 0 && !answer.user.superuser) {
          throw new ApiRequestError(403, 'no_workspace', t('login.noWorkspace'));
        }
        rememberCredentials({
          kind: 'session',
          email: answer.user.email,
          name: answer.user.name,
          csrfToken: answer.csrfToken,
          superuser: answer.user.superuser,
          workspaces: answer.workspaces,
          workspace: answer.workspaces[0]?.id ?? null,
        });
      }
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="login">
      <h1>{t('login.title')}</h1>
      <div className="tabs" role="radiogroup" aria-label={t('login.method')}>
        {(['user', 'key'] as const).map((value) => (
          <label key={value} className={method === value ? 'tab active' : 'tab'}>
            <input type="radio" name="method" value={value} checked={method === value} onChange={() => setMethod(value)} />
            {t(value === 'user' ? 'login.withUser' : 'login.withKey')}
          </label>
        ))}
      </div>
      <form onSubmit={submit}>
        {method === 'user' ? (
          <>
            <label htmlFor="login-email">{t('login.email')}</label>
            <input id="login-email" name="email" type="email" autoComplete="username" required value={email} onChange={(event) => setEmail(event.target.value)} />
            <label htmlFor="login-password">{t('login.password')}</label>
            <input
              id="login-password"
              name="password"
              type="password"
              autoComplete="current-password"
              required
              value={password}
              onChange={(event) => setPassword(event.target.value)}
            />
          </>
        ) : (
          <>
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
          </>
        )}
        <button type="submit" className="primary" disabled={busy}>
          {busy ? t('login.checking') : t('login.submit')}
        </button>
      </form>
      <ErrorNotice error={error} />
    </main>
  );
}
