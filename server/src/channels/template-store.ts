import { ApiError } from '../api/errors.ts';
import type { DbClient, Queryable } from '../storage/database.ts';
import type { ChannelKind, CheckTemplate, TemplateProblem } from './contract.ts';
import type { TemplateBody, TemplateVersionBody, TemplateView } from './schemas.ts';
import { checkTemplateContent, type TemplateContent } from './templates.ts';

export interface StoredTemplate {
  key: string;
  channel: ChannelKind;
  name: string;
  version: number;
  latestVersion: number;
  defaultLocale: string;
  content: TemplateContent;
  createdAt: Date;
}

function invalid(problems: TemplateProblem[]): ApiError {
  const first = problems[0]!;
  return new ApiError(400, 'invalid_template', `${first.path}: ${first.message}`, 'content', {}, { problems });
}

export async function createTemplate(client: DbClient, workspaceId: string, body: TemplateBody): Promise<StoredTemplate> {
  const problems = checkTemplateContent(body.channel, body.defaultLocale, body.content);
  if (problems.length > 0) throw invalid(problems);
  const { rowCount } = await client.query(
    `insert into message_templates (workspace_id, key, channel, name, latest_version) values ($1, $2, $3, $4, 1) on conflict do nothing`,
    [workspaceId, body.key, body.channel, body.name],
  );
  if (!rowCount) throw new ApiError(409, 'conflict', `A template "${body.key}" exists; add a version instead`, 'key');
  await client.query(
    'insert into message_template_versions (workspace_id, template_key, version, default_locale, content) values ($1, $2, 1, $3, $4)',
    [workspaceId, body.key, body.defaultLocale, JSON.stringify(body.content)],
  );
  return getTemplate(client, workspaceId, body.key, 1);
}

/** A new immutable version; journeys keep the version they were published with. */
export async function addTemplateVersion(client: DbClient, workspaceId: string, key: string, body: TemplateVersionBody): Promise<StoredTemplate> {
  const { rows } = await client.query<{ channel: ChannelKind; latest_version: number }>(
    `update message_templates set latest_version = latest_version + 1, updated_at = now()
      where workspace_id = $1 and key = $2 returning channel, latest_version`,
    [workspaceId, key],
  );
  const row = rows[0];
  if (!row) throw new ApiError(404, 'not_found', `No template "${key}"`);
  const problems = checkTemplateContent(row.channel, body.defaultLocale, body.content);
  if (problems.length > 0) throw invalid(problems);
  await client.query(
    'insert into message_template_versions (workspace_id, template_key, version, default_locale, content) values ($1, $2, $3, $4, $5)',
    [workspaceId, key, row.latest_version, body.defaultLocale, JSON.stringify(body.content)],
  );
  return getTemplate(client, workspaceId, key, row.latest_version);
}

export async function findTemplate(db: Queryable, workspaceId: string, key: string, version?: number): Promise<StoredTemplate | undefined> {
  const { rows } = await db.query<{
    key: string;
    channel: ChannelKind;
    name: string;
    version: number;
    latest_version: number;
    default_locale: string;
    content: TemplateContent;
    created_at: Date;
  }>(
    `select t.key, t.channel, t.name, v.version, t.latest_version, v.default_locale, v.content, v.created_at
       from message_templates t
       join message_template_versions v on v.workspace_id = t.workspace_id and v.template_key = t.key and v.version = coalesce($3, t.latest_version)
      where t.workspace_id = $1 and t.key = $2`,
    [workspaceId, key, version ?? null],
  );
  const row = rows[0];
  if (!row) return undefined;
  return {
    key: row.key,
    channel: row.channel,
    name: row.name,
    version: row.version,
    latestVersion: row.latest_version,
    defaultLocale: row.default_locale,
    content: row.content,
    createdAt: row.created_at,
  };
}

export async function getTemplate(db: Queryable, workspaceId: string, key: string, version?: number): Promise<StoredTemplate> {
  const template = await findTemplate(db, workspaceId, key, version);
  if (!template) throw new ApiError(404, 'not_found', version ? `No version ${version} of template "${key}"` : `No template "${key}"`);
  return template;
}

export async function listTemplates(db: Queryable, workspaceId: string) {
  const { rows } = await db.query<{ key: string; channel: ChannelKind; name: string; latest_version: number; updated_at: Date }>(
    'select key, channel, name, latest_version, updated_at from message_templates where workspace_id = $1 order by key',
    [workspaceId],
  );
  return rows.map((row) => ({ key: row.key, channel: row.channel, name: row.name, latestVersion: row.latest_version, updatedAt: row.updated_at.toISOString() }));
}

export function toTemplateView(template: StoredTemplate): TemplateView {
  return { ...template, createdAt: template.createdAt.toISOString() };
}

/** The journey publish check (contract.ts): exists for the channel, parses, reads only what the send will have. */
export const checkTemplate: CheckTemplate = async (db, workspaceId, request) => {
  const template = await findTemplate(db, workspaceId, request.templateKey, request.templateVersion);
  const name = request.templateVersion ? `${request.templateKey} v${request.templateVersion}` : request.templateKey;
  if (!template) return [{ path: request.templateKey, message: `no template "${name}"` }];
  if (template.channel !== request.channel) return [{ path: request.templateKey, message: `"${request.templateKey}" is a ${template.channel} template, not ${request.channel}` }];
  return checkTemplateContent(template.channel, template.defaultLocale, template.content, {
    eventProperties: request.eventProperties ?? [],
    journeyVariables: request.journeyVariables ?? [],
    ...(request.traits ? { traits: request.traits } : {}),
  });
};

