import { useState, type FormEvent } from 'react';
import { api } from '../api/endpoints.ts';
import type { Source } from '../api/types.ts';
import { Card, Empty, ErrorNotice, Loading } from '../components/common.tsx';
import { FieldError, RoleHint, SecretOnce, SectionTabs, UnplacedError } from '../components/forms.tsx';
import { KeyTable } from '../components/keys.tsx';
import { useApi } from '../components/use-api.ts';
import { useI18n, type MessageKey } from '../i18n/index.tsx';
import { may } from '../permissions.ts';
import { SOURCE_KIND_NAMES, type SourceKind } from '../vocabulary.ts';

export const DATA_TABS: Array<{ to: string; label: MessageKey }> = [
  { to: '/data/sources', label: 'data.sources' },
  { to: '/data/imports', label: 'data.imports' },
  { to: '/data/quarantine', label: 'data.quarantine' },
  { to: '/data/identity', label: 'data.identity' },
];

export function DataHeader() {
  const { t } = useI18n();
  return (
    <>
      <h1>{t('data.title')}</h1>
      <SectionTabs tabs={DATA_TABS} label={t('data.title')} />
    </>
  );
}

/** Sources and their write keys: create (the key is shown once), rotate with a grace period, disable. */
export function SourcesPage() {
  const { t, format } = useI18n();
  const sources = useApi((signal) => api.sources(signal), []);
  const canReadKeys = may('keys.read');
  const keys = useApi((signal) => (canReadKeys ? api.keys(signal) : Promise.resolve({ items: [] })), [canReadKeys]);
  const [name, setName] = useState('');
  const [kind, setKind] = useState<SourceKind>('web');
  const [createError, setCreateError] = useState<unknown>();
  const [rowError, setRowError] = useState<unknown>();
  const [secret, setSecret] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const canWrite = may('sources.write');

  const create = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setCreateError(undefined);
    try {
      const created = await api.createSource({ name: name.trim(), kind });
      setSecret(created.writeKey.key);
      setName('');
      sources.reload();
      keys.reload();
    } catch (error) {
      setCreateError(error);
    } finally {
      setBusy(false);
    }
  };
  const toggle = async (source: Source) => {
    setRowError(undefined);
    try {
      await api.updateSource(source.id, { status: source.status === 'active' ? 'disabled' : 'active' });
      sources.reload();
    } catch (error) {
      setRowError(error);
    }
  };
  const newKey = async (source: Source) => {
    setRowError(undefined);
    try {
      setSecret((await api.createKey({ kind: 'write', sourceId: source.id })).key);
      keys.reload();
    } catch (error) {
      setRowError(error);
    }
  };

  return (
    <>
      <DataHeader />
      <Card title={t('sources.new')}>
        <form className="form-row" onSubmit={(event) => void create(event)}>
          <label>
            {t('common.name')}
            <input value={name} required onChange={(event) => setName(event.target.value)} disabled={!canWrite} aria-describedby="source-name-error" />
            <FieldError error={createError} field="name" id="source-name-error" />
          </label>
          <label>
            {t('sources.kind')}
            <select value={kind} onChange={(event) => setKind(event.target.value as SourceKind)} disabled={!canWrite}>
              {SOURCE_KIND_NAMES.map((value) => (
                <option key={value} value={value}>
                  {value}
                </option>
              ))}
            </select>
          </label>
          <button type="submit" className="primary" disabled={!canWrite || busy || !name.trim()}>
            {t('sources.create')}
          </button>
          <RoleHint allowed={canWrite} />
        </form>
        <UnplacedError error={createError} fields={['name']} />
        <p className="help">{t('sources.help')}</p>
      </Card>
      {secret && <SecretOnce secret={secret} onDone={() => setSecret(null)} />}
      <ErrorNotice error={rowError} />
      <Card title={t('data.sources')}>
        <ErrorNotice error={sources.error} onRetry={sources.reload} />
        {sources.loading && !sources.data && <Loading />}
        {sources.data && sources.data.items.length === 0 && <Empty>{t('sources.empty')}</Empty>}
        {sources.data && sources.data.items.length > 0 && (
          <table className="table" data-testid="source-list">
            <thead>
              <tr>
                <th scope="col">{t('common.name')}</th>
                <th scope="col">{t('sources.kind')}</th>
                <th scope="col">{t('common.status')}</th>
                <th scope="col">{t('sources.rateLimit')}</th>
                <th scope="col">{t('keys.actions')}</th>
              </tr>
            </thead>
            <tbody>
              {sources.data.items.map((source) => (
                <tr key={source.id}>
                  <td>
                    {source.name}
                    <br />
                    <small className="subtle">{format.dateTime(source.createdAt)}</small>
                  </td>
                  <td>
                    {source.kind} · {source.party} · {source.mode}
                  </td>
                  <td>
                    <span className={`status ${source.status}`}>{source.status === 'active' ? t('status.active') : t('status.disabled')}</span>
                  </td>
                  <td>{source.rateLimitPerSecond === null ? '—' : t('sources.perSecond', { n: format.number(source.rateLimitPerSecond) })}</td>
                  <td>
                    <div className="row-actions">
                      <button type="button" disabled={!may('keys.write') || source.status !== 'active'} onClick={() => void newKey(source)}>
                        {t('sources.newKey')}
                      </button>
                      <button type="button" disabled={!canWrite} onClick={() => void toggle(source)}>
                        {source.status === 'active' ? t('sources.disable') : t('sources.enable')}
                      </button>
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Card>
      <Card title={t('keys.writeKeys')}>
        {!canReadKeys ? (
          <Empty>{t('keys.roleCannotRead')}</Empty>
        ) : (
          <>
            <ErrorNotice error={keys.error} onRetry={keys.reload} />
            {keys.data && <KeyTable keys={keys.data.items.filter((key) => key.kind === 'write')} sources={sources.data?.items} onChanged={keys.reload} />}
          </>
        )}
      </Card>
    </>
  );
}
