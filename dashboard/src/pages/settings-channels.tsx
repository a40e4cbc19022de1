import { useEffect, useState, type FormEvent } from 'react';
import { api } from '../api/endpoints.ts';
import type { Policy } from '../api/types.ts';
import { Card, Empty, ErrorNotice, Loading } from '../components/common.tsx';
import { FieldError, RoleHint, UnplacedError } from '../components/forms.tsx';
import { useApi } from '../components/use-api.ts';
import { useI18n } from '../i18n/index.tsx';
import { may } from '../permissions.ts';
import { CHANNEL_KIND_NAMES, type ChannelKind } from '../vocabulary.ts';
import { SettingsHeader } from './settings.tsx';

/** `name=value` lines → a record (blank lines skipped; the first = splits). */
export function parsePairs(text: string): Record<string, string> {
  const pairs: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const at = line.indexOf('=');
    if (at <= 0) continue;
    pairs[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return pairs;
}

/** Channel accounts with their provider credentials (write-only: the API never returns a secret) and subscription groups. */
export function ChannelsPage() {
  const { t, format } = useI18n();
  const accounts = useApi((signal) => api.channelAccounts(signal), []);
  const groups = useApi((signal) => api.subscriptionGroups(signal), []);
  const canWrite = may('channels.write');
  const [key, setKey] = useState('');
  const [kind, setKind] = useState<ChannelKind>('email');
  const [provider, setProvider] = useState('smtp');
  const [settings, setSettings] = useState('');
  const [secrets, setSecrets] = useState('');
  const [isDefault, setIsDefault] = useState(true);
  const [error, setError] = useState<unknown>();
  const [saved, setSaved] = useState(false);
  const [group, setGroup] = useState({ key: '', name: '', channel: '' as ChannelKind | '', mode: 'opt_out' as 'opt_in' | 'opt_out' });
  const [groupError, setGroupError] = useState<unknown>();

  const saveAccount = async (event: FormEvent) => {
    event.preventDefault();
    setError(undefined);
    setSaved(false);
    try {
      const secretValues = parsePairs(secrets);
      await api.putChannelAccount({
        key: key.trim(),
        kind,
        provider: provider.trim(),
        settings: parsePairs(settings),
        ...(Object.keys(secretValues).length ? { secrets: secretValues } : {}),
        isDefault,
      });
      // The secrets leave the page once stored.
      setSecrets('');
      setSaved(true);
      accounts.reload();
    } catch (caught) {
      setError(caught);
    }
  };
  const saveGroup = async (event: FormEvent) => {
    event.preventDefault();
    setGroupError(undefined);
    try {
      await api.putSubscriptionGroup({ key: group.key.trim(), name: group.name.trim(), mode: group.mode, ...(group.channel ? { channel: group.channel } : {}) });
      setGroup({ key: '', name: '', channel: '', mode: 'opt_out' });
      groups.reload();
    } catch (caught) {
      setGroupError(caught);
    }
  };

  return (
    <>
      <SettingsHeader />
      <Card title={t('channels.accounts')}>
        <ErrorNotice error={accounts.error} onRetry={accounts.reload} />
        {accounts.loading && !accounts.data && <Loading />}
        {accounts.data && accounts.data.items.length === 0 && <Empty>{t('channels.emptyAccounts')}</Empty>}
        {accounts.data && accounts.data.items.length > 0 && (
          <table className="table compact" data-testid="account-list">
            <thead>
              <tr>
                <th scope="col">{t('common.key')}</th>
                <th scope="col">{t('channels.kind')}</th>
                <th scope="col">{t('channels.provider')}</th>
                <th scope="col">{t('channels.settings')}</th>
                <th scope="col">{t('channels.credentials')}</th>
                <th scope="col">{t('segments.updated')}</th>
              </tr>
            </thead>
            <tbody>
              {accounts.data.items.map((account) => (
                <tr key={account.key}>
                  <td>
                    {account.key} {account.isDefault && <span className="chip">{t('channels.default')}</span>}
                  </td>
                  <td>{account.kind}</td>
                  <td>{account.provider}</td>
                  <td>
                    {Object.entries(account.settings).map(([name, value]) => (
                      <div key={name}>
                        <code>{name}</code> = {String(value)}
                      </div>
                    ))}
                  </td>
                  <td data-testid="account-secrets">
                    {account.secretNames.length === 0
                      ? '—'
                      : account.secretNames.map((name) => (
                          <div key={name}>
                            <code>{name}</code> = <span className="subtle">{t('channels.secretSet')}</span>
                          </div>
                        ))}
                  </td>
                  <td>{format.dateTime(account.updatedAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Card>
      <Card title={t('channels.newAccount')}>
        <p className="help">{t('channels.help')}</p>
        <form onSubmit={(event) => void saveAccount(event)}>
          <div className="form-row">
            <label>
              {t('common.key')}
              <input value={key} onChange={(event) => setKey(event.target.value)} placeholder="email-main" disabled={!canWrite} />
              <FieldError error={error} field="key" />
            </label>
            <label>
              {t('channels.kind')}
              <select value={kind} onChange={(event) => setKind(event.target.value as ChannelKind)} disabled={!canWrite}>
                {CHANNEL_KIND_NAMES.map((value) => (
                  <option key={value} value={value}>
                    {value}
                  </option>
                ))}
              </select>
            </label>
            <label>
              {t('channels.provider')}
              <input value={provider} onChange={(event) => setProvider(event.target.value)} placeholder="smtp, twilio, aliyun, wechat, wecom, fcm, webhook" disabled={!canWrite} />
              <FieldError error={error} field="provider" />
            </label>
            <label className="inline">
              <input type="checkbox" checked={isDefault} onChange={(event) => setIsDefault(event.target.checked)} disabled={!canWrite} />
              {t('channels.makeDefault')}
            </label>
          </div>
          <div className="grid-2">
            <label className="wide">
              {t('channels.settingsLines')}
              <textarea rows={4} value={settings} onChange={(event) => setSettings(event.target.value)} placeholder={'host=smtp.example.com\nport=587\nfrom=news@example.com'} disabled={!canWrite} />
              <FieldError error={error} field="settings" />
            </label>
            <label className="wide">
              {t('channels.secretLines')}
              <textarea rows={4} value={secrets} autoComplete="off" spellCheck={false} onChange={(event) => setSecrets(event.target.value)} placeholder="password=…" disabled={!canWrite} />
              <FieldError error={error} field="secrets" />
            </label>
          </div>
          <div className="form-actions">
            <button type="submit" className="primary" disabled={!canWrite || !key.trim()}>
              {t('common.save')}
            </button>
            <RoleHint allowed={canWrite} />
            {saved && <span className="notice-inline" role="status">{t('channels.savedSecrets')}</span>}
          </div>
        </form>
        <UnplacedError error={error} fields={['key', 'provider', 'settings', 'secrets']} />
      </Card>
      <Card title={t('channels.groups')}>
        <ErrorNotice error={groups.error} onRetry={groups.reload} />
        {groups.data && groups.data.items.length === 0 && <Empty>{t('channels.emptyGroups')}</Empty>}
        {groups.data && groups.data.items.length > 0 && (
          <table className="table compact" data-testid="group-list">
            <tbody>
              {groups.data.items.map((item) => (
                <tr key={item.key}>
                  <th scope="row">{item.name}</th>
                  <td>
                    <code>{item.key}</code>
                  </td>
                  <td>{item.channel ?? t('channels.anyChannel')}</td>
                  <td>{item.mode === 'opt_in' ? t('channels.optIn') : t('channels.optOut')}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        <form className="form-row" onSubmit={(event) => void saveGroup(event)}>
          <label>
            {t('common.key')}
            <input value={group.key} onChange={(event) => setGroup({ ...group, key: event.target.value })} placeholder="newsletter" disabled={!canWrite} />
            <FieldError error={groupError} field="key" />
          </label>
          <label>
            {t('common.name')}
            <input value={group.name} onChange={(event) => setGroup({ ...group, name: event.target.value })} disabled={!canWrite} />
            <FieldError error={groupError} field="name" />
          </label>
          <label>
            {t('channels.kind')}
            <select value={group.channel} onChange={(event) => setGroup({ ...group, channel: event.target.value as ChannelKind | '' })} disabled={!canWrite}>
              <option value="">{t('channels.anyChannel')}</option>
              {CHANNEL_KIND_NAMES.map((value) => (
                <option key={value} value={value}>
                  {value}
                </option>
              ))}
            </select>
          </label>
          <label>
            {t('channels.mode')}
            <select value={group.mode} onChange={(event) => setGroup({ ...group, mode: event.target.value as 'opt_in' | 'opt_out' })} disabled={!canWrite}>
              <option value="opt_out">{t('channels.optOut')}</option>
              <option value="opt_in">{t('channels.optIn')}</option>
            </select>
          </label>
          <button type="submit" className="primary" disabled={!canWrite || !group.key.trim() || !group.name.trim()}>
            {t('channels.saveGroup')}
          </button>
        </form>
        <UnplacedError error={groupError} fields={['key', 'name']} />
      </Card>
    </>
  );
}

const WINDOW_UNITS = [
  { seconds: 3600, label: 'messaging.hours' },
  { seconds: 86_400, label: 'messaging.days' },
  { seconds: 7 * 86_400, label: 'messaging.weeks' },
] as const;

/** Frequency caps, quiet hours and the channels that need opt-in. */
export function MessagingPolicyPage() {
  const { t } = useI18n();
  const policy = useApi((signal) => api.policy(signal), []);
  const [draft, setDraft] = useState<Policy | null>(null);
  const [error, setError] = useState<unknown>();
  const [saved, setSaved] = useState(false);
  const canWrite = may('channels.write');
  useEffect(() => {
    if (policy.data) setDraft(policy.data);
  }, [policy.data]);
  if (policy.error) return (<><SettingsHeader /><ErrorNotice error={policy.error} onRetry={policy.reload} /></>);
  if (!draft) return (<><SettingsHeader /><Loading /></>);

  const setCap = (index: number, cap: Policy['frequencyCaps'][number]) => {
    setSaved(false);
    setDraft({ ...draft, frequencyCaps: draft.frequencyCaps.map((current, i) => (i === index ? cap : current)) });
  };
  const save = async (event: FormEvent) => {
    event.preventDefault();
    setError(undefined);
    setSaved(false);
    try {
      setDraft(await api.putPolicy(draft));
      setSaved(true);
    } catch (caught) {
      setError(caught);
    }
  };
  const unitOf = (seconds: number) => [...WINDOW_UNITS].reverse().find((unit) => seconds % unit.seconds === 0) ?? WINDOW_UNITS[0];

  return (
    <>
      <SettingsHeader />
      <form onSubmit={(event) => void save(event)}>
        <Card title={t('messaging.caps')}>
          <p className="help">{t('messaging.capsHelp')}</p>
          {draft.frequencyCaps.length === 0 && <Empty>{t('messaging.noCaps')}</Empty>}
          {draft.frequencyCaps.map((cap, index) => {
            const unit = unitOf(cap.windowSeconds);
            return (
              <div className="form-row" key={index} data-testid="cap-row">
                <label>
                  {t('channels.kind')}
                  <select value={cap.channel ?? ''} disabled={!canWrite} onChange={(event) => setCap(index, { ...cap, channel: (event.target.value || undefined) as ChannelKind | undefined })}>
                    <option value="">{t('channels.anyChannel')}</option>
                    {CHANNEL_KIND_NAMES.map((value) => (
                      <option key={value} value={value}>
                        {value}
                      </option>
                    ))}
                  </select>
                </label>
                <label>
                  {t('messaging.atMost')}
                  <input type="number" className="narrow" value={cap.maxMessages} disabled={!canWrite} onChange={(event) => setCap(index, { ...cap, maxMessages: Number(event.target.value) })} />
                  <FieldError error={error} field={`frequencyCaps.${index}.maxMessages`} />
                </label>
                <label>
                  {t('messaging.per')}
                  <input
                    type="number"
                    className="narrow"
                    value={cap.windowSeconds / unit.seconds}
                    disabled={!canWrite}
                    onChange={(event) => setCap(index, { ...cap, windowSeconds: Math.round(Number(event.target.value) * unit.seconds) })}
                  />
                  <FieldError error={error} field={`frequencyCaps.${index}.windowSeconds`} />
                </label>
                <label>
                  {t('messaging.unit')}
                  <select value={unit.seconds} disabled={!canWrite} onChange={(event) => setCap(index, { ...cap, windowSeconds: (cap.windowSeconds / unit.seconds) * Number(event.target.value) })}>
                    {WINDOW_UNITS.map((choice) => (
                      <option key={choice.seconds} value={choice.seconds}>
                        {t(choice.label)}
                      </option>
                    ))}
                  </select>
                </label>
                <button type="button" disabled={!canWrite} onClick={() => setDraft({ ...draft, frequencyCaps: draft.frequencyCaps.filter((_, i) => i !== index) })}>
                  {t('builder.remove')}
                </button>
              </div>
            );
          })}
          <button type="button" disabled={!canWrite} onClick={() => setDraft({ ...draft, frequencyCaps: [...draft.frequencyCaps, { maxMessages: 3, windowSeconds: 7 * 86_400 }] })}>
            {t('messaging.addCap')}
          </button>
        </Card>
        <Card title={t('messaging.quietHours')}>
          <p className="help">{t('messaging.quietHelp')}</p>
          <div className="form-row">
            <label className="inline">
              <input
                type="checkbox"
                checked={draft.quietHours !== null}
                disabled={!canWrite}
                onChange={(event) => setDraft({ ...draft, quietHours: event.target.checked ? { start: '22:00', end: '08:00' } : null })}
              />
              {t('messaging.quietOn')}
            </label>
            {draft.quietHours && (
              <>
                <label>
                  {t('messaging.from')}
                  <input type="time" value={draft.quietHours.start} disabled={!canWrite} onChange={(event) => setDraft({ ...draft, quietHours: { ...draft.quietHours!, start: event.target.value } })} />
                  <FieldError error={error} field="quietHours.start" />
                </label>
                <label>
                  {t('messaging.until')}
                  <input type="time" value={draft.quietHours.end} disabled={!canWrite} onChange={(event) => setDraft({ ...draft, quietHours: { ...draft.quietHours!, end: event.target.value } })} />
                  <FieldError error={error} field="quietHours.end" />
                </label>
              </>
            )}
          </div>
        </Card>
        <Card title={t('messaging.optIn')}>
          <fieldset className="scopes">
            <legend>{t('messaging.optInHelp')}</legend>
            {CHANNEL_KIND_NAMES.map((channel) => (
              <label key={channel} className="inline">
                <input
                  type="checkbox"
                  checked={draft.requireOptIn.includes(channel)}
                  disabled={!canWrite}
                  onChange={(event) =>
                    setDraft({ ...draft, requireOptIn: event.target.checked ? [...draft.requireOptIn, channel] : draft.requireOptIn.filter((value) => value !== channel) })
                  }
                />
                {channel}
              </label>
            ))}
          </fieldset>
        </Card>
        <UnplacedError error={error} fields={['frequencyCaps', 'quietHours']} />
        <div className="form-actions">
          <button type="submit" className="primary" disabled={!canWrite}>
            {t('common.save')}
          </button>
          <RoleHint allowed={canWrite} />
          {saved && <span className="notice-inline" role="status">{t('segments.saved')}</span>}
        </div>
      </form>
    </>
  );
}
