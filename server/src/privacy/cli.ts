import type { Command } from 'commander';
import type { Db } from '../storage/database.ts';
import { verifyAuditChain } from './audit.ts';

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
}
