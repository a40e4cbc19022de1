import { useEffect, useState, type FormEvent } from 'react';
import { api } from '../api/endpoints.ts';
import type { Member } from '../api/types.ts';
import { currentCredentials } from '../auth.ts';
import { Card, ConfirmDialog, Empty, ErrorNotice, Loading } from '../components/common.tsx';
import { FieldError, RoleHint, SecretOnce, SectionTabs, UnplacedError } from '../components/forms.tsx';
import { KeyTable } from '../components/keys.tsx';
import { useApi } from '../components/use-api.ts';
import { useI18n, type MessageKey } from '../i18n/index.tsx';
import { may } from '../permissions.ts';

export const SETTINGS_TABS: Array<{ to: string; label: MessageKey }> = [
  { to: '/settings/workspace', label: 'settings.workspace' },
  { to: '/settings/members', label: 'settings.members' },
  { to: '/settings/keys', label: 'settings.apiKeys' },
  { to: '/settings/channels', label: 'settings.channels' },
  { to: '/settings/messaging', label: 'settings.messaging' },
];

export function SettingsHeader() {
  const { t } = useI18n();
  return (
    <>
      <h1>{t('settings.title')}</h1>
      <SectionTabs tabs={SETTINGS_TABS} label={t('settings.title')} />
    </>
  );
}

/** Name, time zone and the collection consent requirement of the workspace. */
export function WorkspaceSettingsPage() {
  const { t } = useI18n();
  const workspace = useApi((signal) => api.workspace(signal), []);
  const collection = useApi((signal) => api.collectionSettings(signal), []);
  const [name, setName] = useState('');
  const [timeZone, setTimeZone] = useState('');
  const [requireConsent, setRequireConsent] = useState(false);
  const [categories, setCategories] = useState('');
  const [error, setError] = useState<unknown>();
  const [collectionError, setCollectionError] = useState<unknown>();
  const [saved, setSaved] = useState<'workspace' | 'collection' | null>(null);
  const canWrite = may('workspaces.write');
  useEffect(() => {
    if (workspace.data) {
      setName(workspace.data.name);
      setTimeZone(workspace.data.timeZone);
    }
  }, [workspace.data]);
  useEffect(() => {
    if (collection.data) {
      setRequireConsent(collection.data.requireConsent);
      setCategories(collection.data.consentCategories.join(', '));
    }
  }, [collection.data]);

  const saveWorkspace = async (event: FormEvent) => {
    event.preventDefault();
    setError(undefined);
    setSaved(null);
    try {
      await api.updateWorkspace({ name: name.trim(), timeZone: timeZone.trim() });
      setSaved('workspace');
    } catch (caught) {
      setError(caught);
    }
  };
  const saveCollection = async (event: FormEvent) => {
    event.preventDefault();
    setCollectionError(undefined);
    setSaved(null);
    try {
      const consentCategories = categories.split(',').map((value) => value.trim()).filter(Boolean);
      await api.putCollectionSettings({ requireConsent, consentCategories });
      setSaved('collection');
    } catch (caught) {
      setCollectionError(caught);
    }
  };

  return (
    <>
      <SettingsHeader />
      <Card title={t('settings.workspace')}>
        <ErrorNotice error={workspace.error} onRetry={workspace.reload} />
        {workspace.loading && !workspace.data && <Loading />}
        {workspace.data && (
          <form className="form-row" onSubmit={(event) => void saveWorkspace(event)}>
            <label>
              {t('common.name')}
              <input value={name} onChange={(event) => setName(event.target.value)} disabled={!canWrite} />
              <FieldError error={error} field="name" />
            </label>
            <label>
              {t('settings.timeZone')}
              <input value={timeZone} onChange={(event) => setTimeZone(event.target.value)} disabled={!canWrite} />
              <FieldError error={error} field="timeZone" />
            </label>
            <span className="subtle">
              {t('settings.slug')}: <code>{workspace.data.slug}</code>
            </span>
            <button type="submit" className="primary" disabled={!canWrite}>
              {t('common.save')}
            </button>
            <RoleHint allowed={canWrite} />
            {saved === 'workspace' && <span className="notice-inline" role="status">{t('segments.saved')}</span>}
          </form>
        )}
        <UnplacedError error={error} fields={['name', 'timeZone']} />
      </Card>
      <Card title={t('settings.collection')}>
        <p className="help">{t('settings.collectionHelp')}</p>
        <ErrorNotice error={collection.error} onRetry={collection.reload} />
        {collection.data && (
          <form className="form-row" onSubmit={(event) => void saveCollection(event)}>
            <label className="inline">
              <input type="checkbox" checked={requireConsent} onChange={(event) => setRequireConsent(event.target.checked)} disabled={!canWrite} />
              {t('settings.requireConsent')}
            </label>
            <label>
              {t('settings.consentCategories')}
              <input value={categories} onChange={(event) => setCategories(event.target.value)} placeholder="analytics, marketing" disabled={!canWrite} />
              <FieldError error={collectionError} field="consentCategories" />
            </label>
            <button type="submit" className="primary" disabled={!canWrite}>
              {t('common.save')}
            </button>
            {saved === 'collection' && <span className="notice-inline" role="status">{t('segments.saved')}</span>}
          </form>
        )}
        <UnplacedError error={collectionError} fields={['consentCategories']} />
      </Card>
    </>
  );
}

const ROLE_CHOICES = ['owner', 'admin', 'marketer', 'analyst', 'viewer'] as const;

/** Members and their roles; roles with their permissions; a superuser also creates users here. */
export function MembersPage() {
  const { t, format } = useI18n();
  const canRead = may('members.read');
  const members = useApi((signal) => (canRead ? api.members(signal) : Promise.resolve({ items: [] as Member[] })), [canRead]);
  const roles = useApi((signal) => (may('roles.read') ? api.roles(signal) : Promise.resolve({ items: [] })), []);
  const [error, setError] = useState<unknown>();
  const [removing, setRemoving] = useState<Member | null>(null);
  const canWrite = may('members.write');
  const credentials = currentCredentials();
  const superuser = credentials?.kind === 'session' && credentials.superuser;
  const roleNames = roles.data?.items.map((role) => role.key) ?? [...ROLE_CHOICES];

  const setRole = async (member: Member, role: string) => {
    setError(undefined);
    try {
      await api.putMember(member.userId, role);
      members.reload();
    } catch (caught) {
      setError(caught);
    }
  };
  const remove = async () => {
    if (!removing) return;
    setError(undefined);
    try {
      await api.removeMember(removing.userId);
      members.reload();
    } catch (caught) {
      setError(caught);
    } finally {
      setRemoving(null);
    }
  };

  return (
    <>
      <SettingsHeader />
      <Card title={t('settings.members')}>
        {!canRead && <Empty>{t('settings.roleCannotReadMembers')}</Empty>}
        <ErrorNotice error={members.error} onRetry={members.reload} />
        <ErrorNotice error={error} />
        {members.data && members.data.items.length > 0 && (
          <table className="table" data-testid="member-list">
            <thead>
              <tr>
                <th scope="col">{t('common.name')}</th>
                <th scope="col">{t('login.email')}</th>
                <th scope="col">{t('settings.role')}</th>
                <th scope="col">{t('settings.since')}</th>
                <th scope="col">{t('keys.actions')}</th>
              </tr>
            </thead>
            <tbody>
              {members.data.items.map((member) => (
                <tr key={member.userId}>
                  <td>{member.name || '—'}</td>
                  <td>{member.email}</td>
                  <td>
                    <select aria-label={t('settings.roleOf', { name: member.email })} value={member.role} disabled={!canWrite} onChange={(event) => void setRole(member, event.target.value)}>
                      {[...new Set([...roleNames, member.role])].map((role) => (
                        <option key={role} value={role}>
                          {role}
                        </option>
                      ))}
                    </select>
                  </td>
                  <td>{format.date(member.createdAt)}</td>
                  <td>
                    <button type="button" disabled={!canWrite} onClick={() => setRemoving(member)}>
                      {t('settings.remove')}
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        <RoleHint allowed={canWrite} />
      </Card>
      {(superuser || canWrite) && <AddMember superuser={!!superuser} roles={roleNames} onAdded={members.reload} />}
      <Card title={t('settings.roles')}>
        <p className="help">{t('settings.rolesHelp')}</p>
        <ErrorNotice error={roles.error} />
        {roles.data && roles.data.items.length > 0 ? (
          <table className="table compact" data-testid="role-list">
            <tbody>
              {roles.data.items.map((role) => (
                <tr key={role.key}>
                  <th scope="row">
                    {role.name} <code className="subtle">{role.key}</code>
                  </th>
                  <td>
                    {role.permissions.map((permission) => (
                      <span key={permission} className="chip">
                        {permission}
                      </span>
                    ))}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : (
          <ul>
            {ROLE_CHOICES.map((role) => (
              <li key={role}>
                <strong>{role}</strong>: {t(`settings.roleText.${role}`)}
              </li>
            ))}
          </ul>
        )}
      </Card>
      <ConfirmDialog open={removing !== null} message={removing ? t('settings.removeConfirm', { email: removing.email }) : ''} onCancel={() => setRemoving(null)} onConfirm={() => void remove()} />
    </>
  );
}

/** Adds a member: an existing user by id, or (superusers) a new user with a first password. */
function AddMember({ superuser, roles, onAdded }: { superuser: boolean; roles: string[]; onAdded(): void }) {
  const { t } = useI18n();
  const [email, setEmail] = useState('');
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [userId, setUserId] = useState('');
  const [role, setRole] = useState('viewer');
  const [error, setError] = useState<unknown>();
  const [done, setDone] = useState(false);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(undefined);
    setDone(false);
    try {
      const id = superuser && !userId.trim() ? (await api.createUser({ email: email.trim(), name: name.trim() || undefined, password })).id : userId.trim();
      await api.putMember(id, role);
      setDone(true);
      setEmail('');
      setPassword('');
      setUserId('');
      onAdded();
    } catch (caught) {
      setError(caught);
    }
  };
  return (
    <Card title={t('settings.addMember')}>
      <form className="form-row" onSubmit={(event) => void submit(event)}>
        {superuser && (
          <>
            <label>
              {t('login.email')}
              <input type="email" value={email} onChange={(event) => setEmail(event.target.value)} />
              <FieldError error={error} field="email" />
            </label>
            <label>
              {t('common.name')}
              <input value={name} onChange={(event) => setName(event.target.value)} />
            </label>
            <label>
              {t('settings.firstPassword')}
              <input type="password" autoComplete="new-password" value={password} onChange={(event) => setPassword(event.target.value)} />
              <FieldError error={error} field="password" />
            </label>
          </>
        )}
        <label>
          {superuser ? t('settings.orUserId') : t('settings.userId')}
          <input value={userId} onChange={(event) => setUserId(event.target.value)} />
          <FieldError error={error} field="userId" />
        </label>
        <label>
          {t('settings.role')}
          <select value={role} onChange={(event) => setRole(event.target.value)}>
            {roles.map((value) => (
              <option key={value} value={value}>
                {value}
              </option>
            ))}
          </select>
          <FieldError error={error} field="role" />
        </label>
        <button type="submit" className="primary">
          {t('settings.add')}
        </button>
        {done && <span className="notice-inline" role="status">{t('segments.saved')}</span>}
      </form>
      <UnplacedError error={error} fields={['email', 'password', 'userId', 'role']} />
    </Card>
  );
}

/** Ready-made scopes for a new server key; any other pattern can be typed. */
const SCOPE_CHOICES = ['*.read', 'profiles.read', 'segments.*', 'events.read', 'analytics.read', 'journeys.*', 'channels.send', '*'] as const;

/** Server API keys: scoped permissions, shown once, revoke, last used. */
export function ApiKeysPage() {
  const { t } = useI18n();
  const canRead = may('keys.read');
  const keys = useApi((signal) => (canRead ? api.keys(signal) : Promise.resolve({ items: [] })), [canRead]);
  const [scopes, setScopes] = useState<string[]>(['*.read']);
  const [extra, setExtra] = useState('');
  const [secret, setSecret] = useState<string | null>(null);
  const [error, setError] = useState<unknown>();
  const canWrite = may('keys.write');
  const create = async (event: FormEvent) => {
    event.preventDefault();
    setError(undefined);
    const permissions = [...new Set([...scopes, ...extra.split(',').map((value) => value.trim()).filter(Boolean)])];
    try {
      setSecret((await api.createKey({ kind: 'server', permissions })).key);
      keys.reload();
    } catch (caught) {
      setError(caught);
    }
  };
  return (
    <>
      <SettingsHeader />
      <Card title={t('keys.newServerKey')}>
        <p className="help">{t('keys.serverHelp')}</p>
        <form onSubmit={(event) => void create(event)}>
          <fieldset className="scopes">
            <legend>{t('keys.scope')}</legend>
            {SCOPE_CHOICES.map((scope) => (
              <label key={scope} className="inline">
                <input
                  type="checkbox"
                  checked={scopes.includes(scope)}
                  disabled={!canWrite}
                  onChange={(event) => setScopes(event.target.checked ? [...scopes, scope] : scopes.filter((value) => value !== scope))}
                />
                <code>{scope}</code>
              </label>
            ))}
          </fieldset>
          <div className="form-row">
            <label>
              {t('keys.otherScopes')}
              <input value={extra} onChange={(event) => setExtra(event.target.value)} placeholder="models.read, decisioning.*" disabled={!canWrite} />
              <FieldError error={error} field="permissions" />
            </label>
            <button type="submit" className="primary" disabled={!canWrite}>
              {t('keys.create')}
            </button>
            <RoleHint allowed={canWrite} />
          </div>
        </form>
        <UnplacedError error={error} fields={['permissions']} />
      </Card>
      {secret && <SecretOnce secret={secret} onDone={() => setSecret(null)} />}
      <Card title={t('keys.serverKeys')}>
        {!canRead ? (
          <Empty>{t('keys.roleCannotRead')}</Empty>
        ) : (
          <>
            <ErrorNotice error={keys.error} onRetry={keys.reload} />
            {keys.data && <KeyTable keys={keys.data.items.filter((key) => key.kind === 'server')} onChanged={keys.reload} />}
          </>
        )}
      </Card>
    </>
  );
}
