import { InvalidArgumentError, type Command } from 'commander';
import type { Db } from '../storage/database.ts';
import { SOURCE_KINDS, SOURCE_MODES, SOURCE_PARTIES, type CreateSource } from '../workspaces/schemas.ts';
import { getCollectionSettings, updateCollectionSettings } from '../workspaces/collection-settings.ts';
import { createKey, createSource, createWorkspace, getWorkspace, listSources, listWorkspaces } from '../workspaces/store.ts';

type OpenDb = () => Promise<{ db: Db; close(): Promise<void> }>;

function choice<T extends string>(values: readonly T[], name: string) {
  return (value: string): T => {
    if (!(values as readonly string[]).includes(value)) {
      throw new InvalidArgumentError(`${name} must be one of ${values.join(', ')}`);
    }
    return value as T;
  };
}

/** `--consent-categories analytics,ads`: trimmed, non-empty, each as the API accepts it. */
function categoryList(value: string): string[] {
  const categories = value.split(',').map((category) => category.trim()).filter(Boolean);
  const invalid = categories.find((category) => category.length > 64);
  if (invalid) throw new InvalidArgumentError(`consent category "${invalid.slice(0, 20)}…" is longer than 64 characters`);
  if (categories.length > 20) throw new InvalidArgumentError('at most 20 consent categories');
  return categories;
}

async function withDb<T>(openDb: OpenDb, work: (db: Db) => Promise<T>): Promise<T> {
  const { db, close } = await openDb();
  try {
    return await work(db);
  } finally {
    await close();
  }
}

function print(json: boolean, value: unknown, human: string): void {
  console.log(json ? JSON.stringify(value, null, 2) : human);
}

/** `workspace`, `source` and `key` commands: the admin API's essentials without a running server. */
export function registerAdminCommands(program: Command, openDb: OpenDb): void {
  const workspace = program.command('workspace').description('Manage workspaces (tenants)');
  workspace
    .command('create')
    .description('Create a workspace')
    .requiredOption('--slug <slug>', 'short unique name: lower-case letters, digits, dashes')
    .option('--name <name>', 'display name (defaults to the slug)')
    .option('--time-zone <zone>', 'IANA time zone, e.g. Asia/Shanghai', 'UTC')
    .option('--json', 'print JSON')
    .action(async (options: { slug: string; name?: string; timeZone: string; json?: boolean }) => {
      const created = await withDb(openDb, (db) =>
        createWorkspace(db, { slug: options.slug, name: options.name ?? options.slug, timeZone: options.timeZone }),
      );
      print(!!options.json, created, `Created workspace ${created.slug} (${created.id})`);
    });
  workspace
    .command('list')
    .description('List workspaces')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const all = await withDb(openDb, (db) => listWorkspaces(db));
      print(!!options.json, all, all.map((w) => `${w.slug}\t${w.id}\t${w.status}\t${w.timeZone}`).join('\n') || 'No workspaces yet');
    });

  workspace
    .command('settings')
    .description("Show or change a workspace's collection settings (whether events need consent, and which categories)")
    .requiredOption('--workspace <slug-or-id>', 'workspace')
    .option('--require-consent', 'store events only when their context.consent grants the consent categories')
    .option('--no-require-consent', 'store events without checking consent')
    .option('--consent-categories <list>', 'comma-separated categories that must all be granted ("" for any one category)', categoryList)
    .option('--json', 'print JSON')
    .action(async (options: { workspace: string; requireConsent?: boolean; consentCategories?: string[]; json?: boolean }) => {
      const settings = await withDb(openDb, async (db) => {
        const ws = await getWorkspace(db, options.workspace);
        const change = { requireConsent: options.requireConsent, consentCategories: options.consentCategories };
        if (change.requireConsent === undefined && change.consentCategories === undefined) return getCollectionSettings(db, ws.id);
        return updateCollectionSettings(db, ws.id, change);
      });
      const categories = settings.consentCategories.length > 0 ? settings.consentCategories.join(', ') : 'any one category';
      print(!!options.json, settings, settings.requireConsent ? `Consent required: ${categories}` : 'Consent not required');
    });

  const source = program.command('source').description('Manage sources (touchpoints that send data)');
  source
    .command('create')
    .description('Create a source and print its write key')
    .requiredOption('--workspace <slug-or-id>', 'workspace')
    .requiredOption('--name <name>', 'source name, unique in the workspace')
    .requiredOption('--kind <kind>', `one of ${SOURCE_KINDS.join(', ')}`, choice(SOURCE_KINDS, '--kind'))
    .option('--party <party>', `one of ${SOURCE_PARTIES.join(', ')}`, choice(SOURCE_PARTIES, '--party'))
    .option('--mode <mode>', `one of ${SOURCE_MODES.join(', ')}`, choice(SOURCE_MODES, '--mode'))
    .option('--json', 'print JSON')
    .action(async (options: { workspace: string; name: string; kind: CreateSource['kind']; party?: CreateSource['party']; mode?: CreateSource['mode']; json?: boolean }) => {
      const result = await withDb(openDb, async (db) => {
        const ws = await getWorkspace(db, options.workspace);
        return createSource(db, ws.id, { name: options.name, kind: options.kind, party: options.party, mode: options.mode });
      });
      print(
        !!options.json,
        result,
        `Created source "${result.source.name}" (${result.source.kind}, ${result.source.mode}) ${result.source.id}\n` +
          `Write key (shown once): ${result.writeKey.key}`,
      );
    });
  source
    .command('list')
    .description('List the sources of a workspace')
    .requiredOption('--workspace <slug-or-id>', 'workspace')
    .option('--json', 'print JSON')
    .action(async (options: { workspace: string; json?: boolean }) => {
      const all = await withDb(openDb, async (db) => listSources(db, (await getWorkspace(db, options.workspace)).id));
      print(!!options.json, all, all.map((s) => `${s.name}\t${s.id}\t${s.kind}\t${s.mode}\t${s.status}`).join('\n') || 'No sources yet');
    });

  const key = program.command('key').description('Manage API keys');
  key
    .command('create')
    .description('Create a server (secret, read) key for a workspace, or another write key for a source')
    .requiredOption('--workspace <slug-or-id>', 'workspace')
    .option('--source <name-or-id>', 'source, for a write key')
    .option('--json', 'print JSON')
    .action(async (options: { workspace: string; source?: string; json?: boolean }) => {
      const issued = await withDb(openDb, async (db) => {
        const ws = await getWorkspace(db, options.workspace);
        if (!options.source) return createKey(db, ws.id, { kind: 'server' });
        const sources = await listSources(db, ws.id);
        const match = sources.find((s) => s.id === options.source || s.name === options.source);
        if (!match) throw new Error(`Source "${options.source}" not found in workspace ${ws.slug}`);
        return createKey(db, ws.id, { kind: 'write', sourceId: match.id });
      });
      print(!!options.json, issued, `Created ${issued.kind} key ${issued.id}\nKey (shown once): ${issued.key}`);
    });
}
