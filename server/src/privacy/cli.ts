import type { Command } from 'commander';
import type { Db } from '../storage/database.ts';
import { verifyAuditChain } from './audit.ts';
import { rotateDataKey, rotateMasterKey } from './data-keys.ts';
import { getWorkspace } from '../workspaces/store.ts';
import { allWorkspaceIds, describeBackfillCounts, encryptExistingPii, reencryptPii } from './pii-backfill.ts';

type OpenDb = () => Promise<{ db: Db; close(): Promise<void> }>;

/** `touchpoint audit verify`: recompute the audit log's hash chain; exit status 1 when it is broken. */
export function registerPrivacyCommands(program: Command, openDb: OpenDb): void {
  const audit = program.command('audit').description('The tamper-evident audit log');
  audit
    .command('verify')
    .description('Recompute every entry\'s hash; report the first entry changed, removed or inserted')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const { db, close } = await openDb();
      try {
        const result = await verifyAuditChain(db);
        if (options.json) console.log(JSON.stringify(result, null, 2));
        else if (result.ok) console.log(`Audit log intact: ${result.entries} entries verified`);
        else console.log(`Audit log BROKEN at entry ${result.broken!.seq}: ${result.broken!.reason} (${result.entries} entries verified before it)`);
        await close();
        if (!result.ok) process.exit(1);
      } catch (error) {
        await close();
        throw error;
      }
    });

  const privacy = program.command('privacy').description('Encryption keys of personal data at rest');
  privacy
    .command('rotate-master-key')
    .description('Re-seal every workspace data key and hash key under TOUCHPOINT_MASTER_KEY (keys sealed by an older one need it in TOUCHPOINT_MASTER_KEY_PREVIOUS)')
    .option('--all', 'also re-seal data keys already sealed by the current master key')
    .action(async (options: { all?: boolean }) => {
      const { db, close } = await openDb();
      try {
        const result = await rotateMasterKey(db, { all: options.all });
        console.log(
          `Re-sealed ${result.resealed} data key(s) and ${result.hashKeysResealed + result.hashKeysSealed} hash key(s) under master key ${result.masterKeyId}; ` +
            'the previous master key is no longer needed',
        );
      } finally {
        await close();
      }
    });
  privacy
    .command('rotate-data-key')
    .description("Start a new data key for a workspace: new values are sealed with it, older ones keep opening with theirs")
    .requiredOption('--workspace <slug-or-id>', 'the workspace')
    .action(async (options: { workspace: string }) => {
      const { db, close } = await openDb();
      try {
        const workspace = await getWorkspace(db, options.workspace);
        console.log(`Workspace ${workspace.slug} now seals new values with data key ${await rotateDataKey(db, workspace.id)}`);
      } finally {
        await close();
      }
    });
  privacy
    .command('encrypt-existing')
    .description('Encrypt personal data stored before field-level encryption: PII identifiers and traits become keyed-hash tokens, PII event fields are sealed (idempotent)')
    .option('--workspace <slug-or-id>', 'one workspace (default: all)')
    .action(async (options: { workspace?: string }) => {
      const { db, close } = await openDb();
      try {
        const ids = options.workspace ? [(await getWorkspace(db, options.workspace)).id] : await allWorkspaceIds(db);
        for (const id of ids) {
          const counts = await encryptExistingPii(db, id);
          console.log(`Workspace ${id}: ${describeBackfillCounts(counts)} encrypted`);
        }
      } finally {
        await close();
      }
    });
  privacy
    .command('reencrypt')
    .description('Seal again with the current data key every value sealed by an older one (run after rotate-data-key)')
    .requiredOption('--workspace <slug-or-id>', 'the workspace')
    .action(async (options: { workspace: string }) => {
      const { db, close } = await openDb();
      try {
        const workspace = await getWorkspace(db, options.workspace);
        const counts = await reencryptPii(db, workspace.id);
        console.log(
          `Workspace ${workspace.slug}: ${counts.vault} vault value(s), ${counts.events} event(s), ${counts.quarantine} quarantined item(s) re-sealed with data key ${counts.keyNumber}`,
        );
      } finally {
        await close();
      }
    });
}
