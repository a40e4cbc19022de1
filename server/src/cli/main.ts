import { Command, CommanderError } from 'commander';
import { loadConfig } from '../config.ts';
import { StartupError } from '../storage/embedded.ts';
import { openStorage } from '../storage/connect.ts';
import { ConflictError, NotFoundError } from '../workspaces/store.ts';
import { registerAdminCommands } from './admin-commands.ts';
import { registerDemoCommand } from './demo-command.ts';
import { registerImportCommand } from './import-command.ts';
import { registerProfileCommand } from './profile-command.ts';
import { registerPrivacyCommands } from '../privacy/cli.ts';

const program = new Command()
  .name('touchpoint')
  .description('Touchpoint customer data platform')
  .showHelpAfterError()
  .exitOverride();

/** Opens the configured database (attaching to a running embedded server if there is one). */
async function openDb() {
  const storage = await openStorage(loadConfig());
  return { db: storage.db, close: storage.close };
}

program
  .command('start')
  .description('Run the API and the background worker (embedded PostgreSQL unless DATABASE_URL is set)')
  .action(async () => {
    // The server's modules are loaded only to run it: `--help` and the other commands start in a fraction of the time.
    const { startTouchpoint } = await import('./start.ts');
    await startTouchpoint(loadConfig());
  });

program
  .command('migrate')
  .description('Apply pending database migrations and exit')
  .action(async () => {
    const { db, close } = await openDb();
    const { rows } = await db.query<{ name: string }>('select name from schema_migrations order by version');
    console.log(`Database schema is up to date (${rows.length} migrations: ${rows.map((row) => row.name).join(', ')})`);
    await close();
  });

registerAdminCommands(program, openDb);

registerImportCommand(program, openDb);

registerProfileCommand(program, openDb);

registerDemoCommand(program, openDb);

registerPrivacyCommands(program, openDb);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) process.exit(error.exitCode);
  // Expected failures (bad input, port in use, unknown workspace) get one line, not a stack.
  if (error instanceof StartupError || error instanceof NotFoundError || error instanceof ConflictError || error instanceof RangeError) {
    console.error(`touchpoint: ${error.message}`);
    process.exit(1);
  }
  throw error;
}
