import { InvalidArgumentError, type Command } from 'commander';
import { ApiError } from '../api/errors.ts';
import { formatProfile } from '../profiles/format.ts';
import { openPii } from '../privacy/pii-codec.ts';
import { getProfile, locateProfile } from '../profiles/queries.ts';
import type { Db } from '../storage/database.ts';
import { getWorkspace } from '../workspaces/store.ts';

type OpenDb = () => Promise<{ db: Db; close(): Promise<void> }>;

function eventCount(value: string): number {
  const count = Number(value);
  if (!Number.isInteger(count) || count < 0 || count > 500) throw new InvalidArgumentError('--events must be an integer from 0 to 500');
  return count;
}

/** `touchpoint profile show <type:value|profileId>`: the single customer view without a running server. */
export function registerProfileCommand(program: Command, openDb: OpenDb): void {
  const profile = program.command('profile').description('Look at customer profiles');
  profile
    .command('show')
    .description('Print a profile: traits, identifiers and latest events')
    .argument('<profile>', 'an identifier as <type>:<value> (e.g. phone:13800138000) or a profile id')
    .requiredOption('--workspace <slug-or-id>', 'workspace')
    .option('--events <n>', 'how many latest events to show (0-500)', eventCount, 20)
    .option('--verbose', 'traits with their source, event and time')
    .option('--json', 'print JSON (the API\'s profile body)')
    .action(async (ref: string, options: { workspace: string; events: number; verbose?: boolean; json?: boolean }) => {
      const { db, close } = await openDb();
      try {
        const workspace = await getWorkspace(db, options.workspace);
        const located = await locateProfile(db, workspace.id, ref);
        // PII is stored as keyed-hash tokens and sealed fields (privacy/pii-codec.ts); the operator at the
        // database's console sees the values, as an API caller with pii.read does.
        const view = await openPii(db, workspace.id, await getProfile(db, workspace.id, located, { verbose: !!options.verbose, events: options.events }));
        console.log(options.json ? JSON.stringify(view, null, 2) : formatProfile(view));
      } catch (error) {
        // Not found or a malformed reference is a one-line answer like the other expected failures.
        if (error instanceof ApiError) throw new RangeError(error.message);
        throw error;
      } finally {
        await close();
      }
    });
}
