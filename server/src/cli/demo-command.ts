import { InvalidArgumentError, type Command } from 'commander';
import type { RetailDataResult } from '../../../bench/segments-data.ts';
import type { Db } from '../storage/database.ts';
import { createKey, createWorkspace } from '../workspaces/store.ts';

type OpenDb = () => Promise<{ db: Db; close(): Promise<void> }>;

interface DemoOptions {
  workspace: string;
  profiles: number;
  events?: number;
  seed: number;
  segments: boolean;
  json?: boolean;
}

function count(name: string, minimum: number) {
  return (value: string): number => {
    const number = Number(value.replaceAll('_', ''));
    if (!Number.isInteger(number) || number < minimum) throw new InvalidArgumentError(`${name} must be an integer ≥ ${minimum}`);
    return number;
  };
}

const formatCount = (value: number) => value.toLocaleString('en');

/**
 * `touchpoint demo`: a workspace filled with the benchmark's realistic retail data (the same
 * generator, bench/segments-data.ts, at a small size) and, unless --no-segments, the benchmark's
 * 20 example segments computed on it; prints the write keys and a server key to explore it with.
 */
export function registerDemoCommand(program: Command, openDb: OpenDb): void {
  program
    .command('demo')
    .description('Create a demo workspace with generated retail customers, events and example segments, and print its keys')
    .option('--workspace <slug>', 'slug of the new workspace', 'demo')
    .option('--profiles <n>', 'customer profiles to generate', count('--profiles', 1), 5000)
    .option('--events <n>', 'events to generate (default: 20 per profile)', count('--events', 0))
    .option('--seed <n>', 'random seed: the same seed gives the same data', count('--seed', 0), 20261123)
    .option('--no-segments', 'do not create the example segments')
    .option('--json', 'print JSON')
    .action(async (options: DemoOptions) => {
      const { db, close } = await openDb();
      try {
        const events = options.events ?? options.profiles * 20;
        const workspace = await createWorkspace(db, { slug: options.workspace, name: `Demo retail (${options.workspace})`, timeZone: 'Asia/Shanghai' });
        if (!options.json) process.stderr.write(`Generating ${formatCount(options.profiles)} profiles and ${formatCount(events)} events in workspace ${workspace.slug} …\n`);
        // Loaded when used: the generator and the segment compiler are most of the CLI's start-up time.
        const { generateRetailData } = await import('../../../bench/segments-data.ts');
        const { segmentCatalogue } = await import('../../../bench/segments-catalogue.ts');
        const { createSegment } = await import('../segments/lifecycle.ts');
        const data = await generateRetailData(db, { workspaceId: workspace.id, profiles: options.profiles, events, seed: options.seed });
        const serverKey = await createKey(db, workspace.id, { kind: 'server' });
        const segments: Array<{ key: string; name: string; members: number }> = [];
        if (options.segments) {
          const now = new Date();
          for (const example of segmentCatalogue(now)) {
            const saved = await createSegment(db, workspace.id, { key: example.key, name: example.name, kind: 'realtime', text: example.text }, now);
            segments.push({ key: example.key, name: example.name, members: saved.segment.memberCount });
          }
        }
        const { rows } = await db.query<{ value: string }>(
          `select value from profile_identifiers where workspace_id = $1 and type = 'user_id' order by value limit 1`,
          [workspace.id],
        );
        const member = rows[0]?.value ?? null;
        const result = { workspace: { id: workspace.id, slug: workspace.slug }, data: { ...data, sources: undefined }, sources: data.sources, serverKey: serverKey.key, segments };
        console.log(options.json ? JSON.stringify(result, null, 2) : describe(workspace.slug, workspace.id, data, serverKey.key, segments, member));
      } finally {
        await close();
      }
    });
}

function describe(
  slug: string,
  id: string,
  data: RetailDataResult,
  serverKey: string,
  segments: Array<{ key: string; name: string; members: number }>,
  member: string | null,
): string {
  const width = Math.max(...Object.values(data.sources).map((s) => s.name.length));
  return [
    `Demo workspace ${slug} (${id}) seeded in ${data.seconds} s: ${formatCount(data.profiles)} profiles, ${formatCount(data.events)} events ` +
      `over the 400 days before ${data.now}, ${formatCount(data.identifiers)} identifiers, ${formatCount(data.traits)} traits, ` +
      `${formatCount(data.consents)} consents (seed ${data.seed}).`,
    '',
    'Write keys, one per source (shown once):',
    ...Object.entries(data.sources).map(([kind, s]) => `  ${s.name.padEnd(width)}  ${kind.padEnd(12)}  ${s.writeKey}`),
    '',
    `Server key (shown once): ${serverKey}`,
    ...(segments.length > 0
      ? ['', `${segments.length} example segments (real-time):`, ...segments.map((s) => `  ${s.key.padEnd(24)} ${formatCount(s.members).padStart(8)}  ${s.name}`)]
      : []),
    '',
    'Try, with `touchpoint start` running:',
    `  curl -H 'authorization: Bearer ${serverKey}' http://127.0.0.1:8080/v1/segments`,
    `  curl -H 'authorization: Bearer ${serverKey}' -H 'content-type: application/json' http://127.0.0.1:8080/v1/segments/preview \\`,
    `    -d '{"text": "trait.city = \\"上海\\" and event(\\"Order Completed\\").count(within 90d) >= 3"}'`,
    ...(member ? [`  touchpoint profile show user_id:${member} --workspace ${slug}`] : []),
  ].join('\n');
}
