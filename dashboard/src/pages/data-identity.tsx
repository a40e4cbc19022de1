import { useEffect, useState, type FormEvent } from 'react';
import { api } from '../api/endpoints.ts';
import type { IdentitySettings, IdentitySettingsView } from '../api/types.ts';
import { Card, ErrorNotice, Loading } from '../components/common.tsx';
import { errorOnField, FieldError, RoleHint, UnplacedError } from '../components/forms.tsx';
import { useApi } from '../components/use-api.ts';
import { useI18n } from '../i18n/index.tsx';
import { may } from '../permissions.ts';
import { DataHeader } from './data.tsx';

type TypeOverride = NonNullable<IdentitySettings['types']>[string];

const list = (text: string) =>
  text
    .split(',')
    .map((value) => value.trim())
    .filter(Boolean);

/** The overrides with one type's field set (undefined removes the override, so the default applies). */
export function withTypeField(settings: IdentitySettings, type: string, field: keyof TypeOverride, value: TypeOverride[keyof TypeOverride] | undefined): IdentitySettings {
  const types = { ...(settings.types ?? {}) };
  const current: Record<string, unknown> = { ...(types[type] ?? {}) };
  if (value === undefined) delete current[field];
  else current[field] = value;
  types[type] = current as TypeOverride;
  return { ...settings, types };
}

/** Identifier types, their priorities, limits and blocked values; the API's validation errors beside each field. */
export function IdentitySettingsPage() {
  const { t, format } = useI18n();
  const view = useApi((signal) => api.identitySettings(signal), []);
  const stats = useApi((signal) => api.identityStats(signal), []);
  const [draft, setDraft] = useState<IdentitySettings | null>(null);
  const [newType, setNewType] = useState('');
  const [error, setError] = useState<unknown>();
  const [saved, setSaved] = useState(false);
  const [busy, setBusy] = useState(false);
  const canWrite = may('identity.write');
  useEffect(() => {
    if (view.data && !draft) setDraft(view.data.identity);
  }, [view.data]);

  if (view.error) return (<><DataHeader /><ErrorNotice error={view.error} onRetry={view.reload} /></>);
  if (!view.data || !draft) return (<><DataHeader /><Loading /></>);
  const effective = view.data.effective;
  const custom = Object.keys(draft.types ?? {}).filter((name) => !effective.types.some((type) => type.name === name));
  const rows: IdentitySettingsView['effective']['types'] = [
    ...effective.types,
    ...custom.map((name) => ({ name, builtIn: false, priority: 10, limit: 5, normalizer: 'id' as const, blockedValues: [], traitKeys: [] })),
  ];
  const override = (type: string) => draft.types?.[type] ?? {};
  const numberField = (type: string, field: 'priority' | 'limit', text: string) => {
    setSaved(false);
    setDraft(withTypeField(draft, type, field, text.trim() === '' ? undefined : Number(text)));
  };

  const save = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    setSaved(false);
    try {
      const result = await api.putIdentitySettings(draft);
      setDraft(result.identity);
      setSaved(true);
      view.reload();
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <DataHeader />
      <form onSubmit={(event) => void save(event)}>
        <Card title={t('identity.types')}>
          <p className="help">{t('identity.help')}</p>
          <table className="table compact" data-testid="identity-types">
            <thead>
              <tr>
                <th scope="col">{t('common.type')}</th>
                <th scope="col">{t('identity.priority')}</th>
                <th scope="col">{t('identity.limit')}</th>
                <th scope="col">{t('identity.normalizer')}</th>
                <th scope="col">{t('identity.blocked')}</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((type) => {
                const own = override(type.name);
                const base = `identity.types.${type.name}`;
                return (
                  <tr key={type.name}>
                    <th scope="row">
                      {type.name} {!type.builtIn && <span className="chip">{t('identity.custom')}</span>}
                    </th>
                    <td>
                      <input
                        type="number"
                        className="narrow"
                        aria-label={t('identity.priorityOf', { type: type.name })}
                        value={own.priority ?? type.priority}
                        disabled={!canWrite}
                        onChange={(event) => numberField(type.name, 'priority', event.target.value)}
                      />
                      <FieldError error={error} field={`${base}.priority`} />
                    </td>
                    <td>
                      <input
                        type="number"
                        className="narrow"
                        aria-label={t('identity.limitOf', { type: type.name })}
                        value={own.limit ?? type.limit}
                        disabled={!canWrite}
                        onChange={(event) => numberField(type.name, 'limit', event.target.value)}
                      />
                      <FieldError error={error} field={`${base}.limit`} />
                    </td>
                    <td>{type.normalizer}</td>
                    <td>
                      <input
                        aria-label={t('identity.blockedOf', { type: type.name })}
                        value={(own.blockedValues ?? []).join(', ')}
                        placeholder={t('identity.blockedPlaceholder')}
                        disabled={!canWrite}
                        onChange={(event) => {
                          setSaved(false);
                          const values = list(event.target.value);
                          setDraft(withTypeField(draft, type.name, 'blockedValues', values.length ? values : undefined));
                        }}
                      />
                      <FieldError error={error} field={`${base}.blockedValues`} />
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          <div className="form-row">
            <label>
              {t('identity.newType')}
              <input value={newType} onChange={(event) => setNewType(event.target.value)} placeholder="loyalty_id" disabled={!canWrite} />
            </label>
            <button
              type="button"
              disabled={!canWrite || !newType.trim()}
              onClick={() => {
                setDraft(withTypeField(draft, newType.trim(), 'priority', 10));
                setNewType('');
              }}
            >
              {t('identity.addType')}
            </button>
          </div>
          {/* A type-level error (e.g. a custom type's name) that no input above shows. */}
          {!rows.some((type) => ['priority', 'limit', 'blockedValues'].some((field) => errorOnField(error, `identity.types.${type.name}.${field}`))) && (
            <FieldError error={error} field="identity.types" />
          )}
        </Card>
        <Card title={t('identity.workspaceWide')}>
          <div className="form-row">
            <label>
              {t('identity.blockedAll')}
              <input
                value={(draft.blockedValues ?? []).join(', ')}
                disabled={!canWrite}
                onChange={(event) => {
                  const values = list(event.target.value);
                  setDraft({ ...draft, blockedValues: values.length ? values : undefined });
                }}
              />
              <FieldError error={error} field="identity.blockedValues" />
            </label>
            <label>
              {t('identity.phoneRegion')}
              <input
                className="narrow"
                value={draft.defaultPhoneRegion ?? ''}
                placeholder={effective.defaultPhoneRegion}
                disabled={!canWrite}
                onChange={(event) => setDraft({ ...draft, defaultPhoneRegion: event.target.value.trim() || undefined })}
              />
              <FieldError error={error} field="identity.defaultPhoneRegion" />
            </label>
          </div>
        </Card>
        <UnplacedError
          error={error}
          fields={['identity.types', 'identity.blockedValues', 'identity.defaultPhoneRegion']}
        />
        <div className="form-actions">
          <button type="submit" className="primary" disabled={!canWrite || busy}>
            {t('common.save')}
          </button>
          <RoleHint allowed={canWrite} />
          {saved && (
            <span className="notice-inline" role="status">
              {t('segments.saved')}
            </span>
          )}
        </div>
      </form>
      <Card title={t('identity.stats')}>
        <ErrorNotice error={stats.error} />
        {stats.data && (
          <div className="grid-2">
            <dl className="key-values">
              <div>
                <dt>{t('overview.profiles')}</dt>
                <dd>{format.number(stats.data.profiles.live)}</dd>
              </div>
              {stats.data.identifiers.map((row) => (
                <div key={row.type}>
                  <dt>{row.type}</dt>
                  <dd>{format.number(row.live)}</dd>
                </div>
              ))}
            </dl>
            <dl className="key-values">
              <div>
                <dt>{t('identity.merges')}</dt>
                <dd>{format.number(stats.data.merges.total)}</dd>
              </div>
              {stats.data.refusals.map((row) => (
                <div key={row.reason}>
                  <dt>{row.reason}</dt>
                  <dd>{format.number(row.count)}</dd>
                </div>
              ))}
              {stats.data.ignored.map((row) => (
                <div key={`${row.type}:${row.reason}`}>
                  <dt>
                    {row.type} · {row.reason}
                  </dt>
                  <dd>{format.number(row.count)}</dd>
                </div>
              ))}
            </dl>
          </div>
        )}
      </Card>
    </>
  );
}
