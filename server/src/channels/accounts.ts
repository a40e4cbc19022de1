import { ApiError } from '../api/errors.ts';
import type { DbClient, Queryable } from '../storage/database.ts';
import type { ChannelKind } from './contract.ts';
import type { AccountBody, AccountView } from './schemas.ts';
import { openSecrets, sealSecrets } from './secrets.ts';

/** What each provider needs: settings (plain) and secrets (sealed), by name. */
export const PROVIDERS: Record<ChannelKind, Record<string, { settings: string[]; secrets: string[] }>> = {
  email: { smtp: { settings: ['host', 'port', 'from'], secrets: [] } },
  sms: {
    twilio: { settings: ['accountSid', 'from'], secrets: ['authToken'] },
    aliyun: { settings: ['accessKeyId', 'signName'], secrets: ['accessKeySecret'] },
  },
  wechat: { wechat: { settings: ['appId'], secrets: ['appSecret'] } },
  wecom: { wecom: { settings: ['corpId', 'agentId'], secrets: ['corpSecret'] } },
  push: { fcm: { settings: ['projectId', 'clientEmail'], secrets: ['privateKey'] } },
  webhook: { webhook: { settings: ['url'], secrets: ['signingSecret'] } },
};

export type Settings = Record<string, string | number | boolean>;

export interface ChannelAccount {
  workspaceId: string;
  key: string;
  kind: ChannelKind;
  provider: string;
  settings: Settings;
  secrets: Record<string, string>;
}

/** 400 naming the field when a provider is unknown for the kind or a required value is missing. */
export function validateAccount(body: AccountBody): void {
  const providers = PROVIDERS[body.kind];
  const spec = providers[body.provider];
  if (!spec) throw new ApiError(400, 'invalid_request', `provider must be one of ${Object.keys(providers).join(', ')} for ${body.kind}`, 'provider');
  for (const name of spec.settings) {
    if (body.settings?.[name] === undefined || body.settings[name] === '') throw new ApiError(400, 'invalid_request', `${body.provider} needs settings.${name}`, `settings.${name}`);
  }
  for (const name of spec.secrets) {
    if (!body.secrets?.[name]) throw new ApiError(400, 'invalid_request', `${body.provider} needs secrets.${name}`, `secrets.${name}`);
  }
  const rate = body.settings?.ratePerSecond;
  if (rate !== undefined && (typeof rate !== 'number' || !(rate > 0))) {
    throw new ApiError(400, 'invalid_request', 'settings.ratePerSecond must be a positive number', 'settings.ratePerSecond');
  }
}

interface AccountRow {
  key: string;
  kind: ChannelKind;
  provider: string;
  settings: Settings;
  secrets_sealed: string | null;
  is_default: boolean;
  created_at: Date;
  updated_at: Date;
}

function view(row: AccountRow, secretNames: string[]): AccountView {
  return {
    key: row.key,
    kind: row.kind,
    provider: row.provider,
    settings: row.settings,
    secretNames,
    isDefault: row.is_default,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

/** Creates or replaces an account; the first account of a kind becomes its default. */
export async function putAccount(client: DbClient, secretsKey: Buffer, workspaceId: string, body: AccountBody): Promise<AccountView> {
  validateAccount(body);
  const sealed = body.secrets && Object.keys(body.secrets).length > 0 ? sealSecrets(secretsKey, body.secrets) : null;
  if (body.isDefault) {
    await client.query('update channel_accounts set is_default = false where workspace_id = $1 and kind = $2 and key <> $3 and is_default', [
      workspaceId,
      body.kind,
      body.key,
    ]);
  }
  const { rows } = await client.query<AccountRow>(
    `insert into channel_accounts (workspace_id, key, kind, provider, settings, secrets_sealed, is_default)
     values ($1, $2, $3, $4, $5, $6,
             coalesce($7, not exists (select 1 from channel_accounts where workspace_id = $1 and kind = $3 and is_default and key <> $2)))
     on conflict (workspace_id, key) do update
       set kind = excluded.kind, provider = excluded.provider, settings = excluded.settings,
           secrets_sealed = excluded.secrets_sealed, is_default = coalesce($7, channel_accounts.is_default), updated_at = now()
     returning key, kind, provider, settings, secrets_sealed, is_default, created_at, updated_at`,
    [workspaceId, body.key, body.kind, body.provider, JSON.stringify(body.settings ?? {}), sealed, body.isDefault ?? null],
  );
  return view(rows[0]!, Object.keys(body.secrets ?? {}).sort());
}

const COLUMNS = 'key, kind, provider, settings, secrets_sealed, is_default, created_at, updated_at';

export async function listAccounts(db: Queryable, secretsKey: Buffer, workspaceId: string): Promise<AccountView[]> {
  const { rows } = await db.query<AccountRow>(`select ${COLUMNS} from channel_accounts where workspace_id = $1 order by kind, key`, [workspaceId]);
  return rows.map((row) => view(row, secretNamesOf(secretsKey, row)));
}

export async function getAccountView(db: Queryable, secretsKey: Buffer, workspaceId: string, key: string): Promise<AccountView> {
  const { rows } = await db.query<AccountRow>(`select ${COLUMNS} from channel_accounts where workspace_id = $1 and key = $2`, [workspaceId, key]);
  if (!rows[0]) throw new ApiError(404, 'not_found', `No channel account "${key}"`);
  return view(rows[0], secretNamesOf(secretsKey, rows[0]));
}

export async function deleteAccount(db: Queryable, workspaceId: string, key: string): Promise<void> {
  const { rowCount } = await db.query('delete from channel_accounts where workspace_id = $1 and key = $2', [workspaceId, key]);
  if (!rowCount) throw new ApiError(404, 'not_found', `No channel account "${key}"`);
}

function secretNamesOf(secretsKey: Buffer, row: AccountRow): string[] {
  return row.secrets_sealed ? Object.keys(openSecrets(secretsKey, row.secrets_sealed)).sort() : [];
}

/** Accounts with their opened secrets, for the dispatcher: by (workspace, key). */
export async function loadAccounts(db: Queryable, secretsKey: Buffer, refs: readonly { workspaceId: string; key: string }[]): Promise<Map<string, ChannelAccount>> {
  const accounts = new Map<string, ChannelAccount>();
  if (refs.length === 0) return accounts;
  const { rows } = await db.query<AccountRow & { workspace_id: string }>(
    `select a.workspace_id, ${COLUMNS.split(', ').map((c) => `a.${c}`).join(', ')}
       from unnest($1::uuid[], $2::text[]) as r(workspace_id, key)
       join channel_accounts a on a.workspace_id = r.workspace_id and a.key = r.key`,
    [refs.map((r) => r.workspaceId), refs.map((r) => r.key)],
  );
  for (const row of rows) {
    accounts.set(`${row.workspace_id}/${row.key}`, {
      workspaceId: row.workspace_id,
      key: row.key,
      kind: row.kind,
      provider: row.provider,
      settings: row.settings,
      secrets: row.secrets_sealed ? openSecrets(secretsKey, row.secrets_sealed) : {},
    });
  }
  return accounts;
}
