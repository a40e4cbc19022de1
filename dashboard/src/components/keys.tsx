import { useState } from 'react';
import { api } from '../api/endpoints.ts';
import type { ApiKey, Source } from '../api/types.ts';
import { useI18n } from '../i18n/index.tsx';
import { may } from '../permissions.ts';
import { ConfirmDialog, Empty, ErrorNotice } from './common.tsx';
import { SecretOnce } from './forms.tsx';

/** Grace periods offered when a key is rotated (the API allows up to 30 days). */
export const GRACE_CHOICES = [0, 3600, 86_400, 7 * 86_400, 30 * 86_400] as const;

/**
 * Keys of one kind: prefix, scope, status, last use, grace end; rotate (with a grace period for
 * the old key) and disable/enable. A new key's secret is shown once.
 */
export function KeyTable({ keys, sources, onChanged }: { keys: ApiKey[]; sources?: Source[]; onChanged(): void }) {
  const { t, format } = useI18n();
  const [secret, setSecret] = useState<string | null>(null);
  const [error, setError] = useState<unknown>();
  const [grace, setGrace] = useState<Record<string, number>>({});
  const [confirm, setConfirm] = useState<ApiKey | null>(null);
  const canWrite = may('keys.write');
  const sourceName = (id: string | null) => sources?.find((source) => source.id === id)?.name ?? '—';

  const rotate = async (key: ApiKey) => {
    setError(undefined);
    try {
      const rotated = await api.rotateKey(key.id, grace[key.id] ?? 0);
      setSecret(rotated.key.key);
      onChanged();
    } catch (caught) {
      setError(caught);
    }
  };
  const toggle = async (key: ApiKey) => {
    setError(undefined);
    try {
      await api.setKeyStatus(key.id, key.status === 'active' ? 'disabled' : 'active');
      setConfirm(null);
      onChanged();
    } catch (caught) {
      setError(caught);
      setConfirm(null);
    }
  };

  const graceLabel = (seconds: number) =>
    seconds === 0 ? t('keys.graceNone') : seconds < 86_400 ? t('keys.graceHours', { n: seconds / 3600 }) : t('keys.graceDays', { n: seconds / 86_400 });

  return (
    <>
      {secret && <SecretOnce secret={secret} onDone={() => setSecret(null)} />}
      <ErrorNotice error={error} />
      {keys.length === 0 ? (
        <Empty>{t('keys.empty')}</Empty>
      ) : (
        <table className="table compact" data-testid="key-table">
          <thead>
            <tr>
              <th scope="col">{t('keys.prefix')}</th>
              {sources && <th scope="col">{t('common.source')}</th>}
              <th scope="col">{t('keys.scope')}</th>
              <th scope="col">{t('common.status')}</th>
              <th scope="col">{t('keys.lastUsed')}</th>
              <th scope="col">{t('keys.actions')}</th>
            </tr>
          </thead>
          <tbody>
            {keys.map((key) => (
              <tr key={key.id}>
                <td>
                  <code>{key.prefix}…</code>
                  <br />
                  <small className="subtle">{format.dateTime(key.createdAt)}</small>
                </td>
                {sources && <td>{sourceName(key.sourceId)}</td>}
                <td>{key.permissions ? key.permissions.map((p) => <span key={p} className="chip">{p}</span>) : <span className="subtle">{t('keys.defaultScope')}</span>}</td>
                <td>
                  <span className={`status ${key.status}`}>{key.status === 'active' ? t('status.active') : t('status.disabled')}</span>
                  {key.expiresAt && (
                    <>
                      <br />
                      <small className="subtle">{t('keys.expires', { time: format.dateTime(key.expiresAt) })}</small>
                    </>
                  )}
                </td>
                <td>{key.lastUsedAt ? format.dateTime(key.lastUsedAt) : t('keys.neverUsed')}</td>
                <td>
                  <div className="row-actions">
                    <label className="inline">
                      <span className="visually-hidden">{t('keys.grace')}</span>
                      <select
                        aria-label={t('keys.grace')}
                        value={grace[key.id] ?? 0}
                        disabled={!canWrite || key.status !== 'active'}
                        onChange={(event) => setGrace({ ...grace, [key.id]: Number(event.target.value) })}
                      >
                        {GRACE_CHOICES.map((seconds) => (
                          <option key={seconds} value={seconds}>
                            {graceLabel(seconds)}
                          </option>
                        ))}
                      </select>
                    </label>
                    <button type="button" disabled={!canWrite || key.status !== 'active'} onClick={() => void rotate(key)}>
                      {t('keys.rotate')}
                    </button>
                    <button type="button" disabled={!canWrite} onClick={() => (key.status === 'active' ? setConfirm(key) : void toggle(key))}>
                      {key.status === 'active' ? t('keys.revoke') : t('keys.enable')}
                    </button>
                  </div>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <ConfirmDialog
        open={confirm !== null}
        message={confirm ? t('keys.revokeConfirm', { prefix: confirm.prefix }) : ''}
        onCancel={() => setConfirm(null)}
        onConfirm={() => confirm && void toggle(confirm)}
      />
    </>
  );
}
