import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { durationMs, type Condition, type Duration } from '../src/segments/ast.ts';
import { digestSpec } from '../src/segments/digests.ts';
import { evaluateSegment } from '../src/segments/evaluate.ts';
import { printSegment } from '../src/segments/language/print.ts';
import type { ProfileEvent, ProfileSnapshot } from '../src/segments/snapshot.ts';
import { conditionReads, loadProfileSnapshots, snapshotNeeds } from '../src/segments/snapshots.ts';
import { uuidAtFraction } from '../src/segments/sample-estimate.ts';
import { compileSegmentQuery } from '../src/segments/sql/compile.ts';
import { createWorkspace, loadProfiles, type ProfileFixture, type TestWorkspace } from './segments-sql-support.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { createRng, randomCondition, VALUE_POOLS, type RandomSegmentOptions, type Rng } from './support/random-segments.ts';

/*
 * The proof that the two evaluators have one meaning: random segments over random profile
 * histories, and for every case the set of profiles the SQL compiler returns equals the set for
 * which the incremental evaluator says member. Histories are built to hit the language's edges:
 * values from the same small pools the conditions draw literals from (numeric strings, dates,
 * JSON null, arrays, objects), events exactly on window boundaries (now − d, ± 1 ms), ties in
 * timestamp ordered by seq, future events, unresolved events, merged profiles. `now` varies, also
 * onto an event's timestamp plus a duration.
 *
 * Each case also checks that recheckAt is honest (the evaluator's answer does not change before
 * it), and every few cases that snapshots loaded from the database (segments/snapshots.ts) give the
 * same answers as those built from the generated data.
 */

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const BASE_NOW = Date.UTC(2024, 5, 15, 12, 0, 0);

const VOCABULARY: RandomSegmentOptions = {
  events: ['Order Completed', 'Product Added', 'App Opened', '下单'],
  properties: ['revenue', 'category', 'when', 'tags', 'address.city'],
  traits: ['city', 'age', 'vip', 'tags', 'birthday', 'score', 'address'],
  identifierTypes: ['email', 'phone', 'wechat'],
  consentCategories: ['sms', 'email'],
  // 'ghost' has no id: a segment that does not exist has no members.
  segments: ['vip', 'churned', 'ghost'],
  maxDepth: 3,
};
const PROPERTY_KEYS = ['revenue', 'category', 'when', 'tags', 'address'];

const DATASETS = 4;
const CASES_PER_DATASET = 350;
const PROFILES_PER_DATASET = 40;

// Every duration the generator uses, for timestamps on window boundaries.
const DURATIONS_MS = [1, 30, 90].map((m) => m * MINUTE).concat([1, 2, 12, 24, 36].map((h) => h * HOUR), [1, 7, 30, 90, 365].map((d) => d * DAY), [14, 28].map((d) => d * DAY));
const POOL_INSTANTS = VALUE_POOLS.dates.map((d) => Date.parse(d.length === 10 ? `${d}T00:00:00Z` : d));

interface Dataset {
  workspace: TestWorkspace;
  segmentIds: Map<string, string>;
  snapshots: ProfileSnapshot[];
  /** Instants worth evaluating at: boundaries of the data. */
  moments: number[];
}

function uuid(rng: Rng): string {
  const hex = Array.from({ length: 32 }, () => rng.int(0, 15).toString(16)).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20)}`;
}

function chance(rng: Rng, p: number): boolean {
  return rng.next() < p;
}

// Dates in data beyond the literal pool: offsets that move the UTC day (and month-day) away from
// the written one, 29 February, shapes that need the general parser, times near the base now.
const DATA_DATES = [
  '2024-06-15T02:00:00+08:00', '2024-06-14T20:00:00-08:00', '2024-06-15T11:59:59.999Z', '2024-06-08T12:00:00Z', '2024-06-08T12:00:00.001Z',
  '2024-06-16T00:30:00+01:00', '2024-06-22T12:00:00Z', '2024-06-15 12:00', '2024-06-15T12:00:00.5+0000', '2000-02-29', '2024-02-29T23:30:00-01:00',
  '2023-03-01T00:30:00+01:00', '1990-06-16', '1990-06-30T23:00:00-02:00', '1985-07-01T01:00:00+02:00', '2024-06-31', '0099-06-16',
];

/** A JSON value as a property or trait: pool scalars, numeric strings, dates, null, arrays, objects. */
function randomValue(rng: Rng, depth = 0): unknown {
  const roll = rng.next();
  if (roll < 0.3) return rng.pick(VALUE_POOLS.numbers);
  if (roll < 0.55) return rng.pick(VALUE_POOLS.strings);
  if (roll < 0.7) return chance(rng, 0.5) ? rng.pick(VALUE_POOLS.dates) : rng.pick(DATA_DATES);
  if (roll < 0.75) return chance(rng, 0.5);
  if (roll < 0.8) return null;
  if (roll < 0.9) return Array.from({ length: rng.int(0, 3) }, () => (chance(rng, 0.8) ? rng.pick(VALUE_POOLS.strings) : rng.pick(VALUE_POOLS.numbers)));
  return depth < 2 ? randomObject(rng, depth + 1) : rng.pick(VALUE_POOLS.strings);
}

function randomObject(rng: Rng, depth = 0): Record<string, unknown> {
  const object: Record<string, unknown> = {};
  for (const key of PROPERTY_KEYS) {
    if (!chance(rng, 0.55)) continue;
    object[key] = key === 'address' ? { city: rng.pick(['上海', '北京', 'a', 10, null]) } : randomValue(rng, depth);
  }
  if (chance(rng, 0.15)) object.city = rng.pick(VALUE_POOLS.strings);
  return object;
}

function randomTimestamp(rng: Rng, used: number[]): number {
  const roll = rng.next();
  // Ties: a timestamp another event already has.
  if (roll < 0.15 && used.length > 0) return rng.pick(used);
  // Exactly on a window boundary at the base now, or 1 ms either side.
  if (roll < 0.5) return BASE_NOW - rng.pick(DURATIONS_MS) + rng.pick([-1, 0, 0, 1]);
  // On a range bound of the date pool.
  if (roll < 0.6) return rng.pick(POOL_INSTANTS) + rng.pick([-1, 0, 1]);
  // In the future.
  if (roll < 0.68) return BASE_NOW + rng.int(1, 10 * DAY);
  return BASE_NOW - rng.int(0, 400 * DAY);
}

function randomEvents(rng: Rng, count: number, nextSeq: () => number, used: number[]): ProfileEvent[] {
  const events: ProfileEvent[] = [];
  for (const event of randomSingleEvents(rng, count, nextSeq, used)) {
    events.push(event);
    // Bursts: the same event again at the same instant with other properties, so ties in
    // (timestamp, seq) decide first/last values and sequences.
    if (chance(rng, 0.2)) {
      for (let i = rng.int(1, 2); i > 0; i--) events.push({ ...event, seq: nextSeq(), properties: chance(rng, 0.9) ? randomObject(rng) : null });
    }
  }
  return events;
}

function randomSingleEvents(rng: Rng, count: number, nextSeq: () => number, used: number[]): ProfileEvent[] {
  const own: number[] = [];
  return Array.from({ length: count }, () => {
    const type = rng.pick(['track', 'track', 'track', 'track', 'page', 'screen', 'identify'] as const);
    // Ties inside one profile's history, where (timestamp, seq) order decides first/last values and sequences.
    const timestamp = own.length > 0 && chance(rng, 0.25) ? rng.pick(own) : randomTimestamp(rng, used);
    used.push(timestamp);
    own.push(timestamp);
    const named = chance(rng, 0.9) ? rng.pick([...VOCABULARY.events, 'Other']) : null;
    return {
      seq: nextSeq(),
      type,
      event: type === 'track' ? (named ?? 'Other') : null,
      name: type === 'page' || type === 'screen' ? named : null,
      timestamp,
      properties: chance(rng, 0.95) ? randomObject(rng) : null,
      context: chance(rng, 0.5) ? randomObject(rng) : null,
    };
  });
}

function generateDataset(rng: Rng): { profiles: ProfileFixture[]; unresolved: ProfileEvent[]; segmentIds: Map<string, string> } {
  const segmentIds = new Map([
    ['vip', uuid(rng)],
    ['churned', uuid(rng)],
  ]);
  // Sequence numbers unrelated to time order, so ties are broken by something other than insertion.
  const seqs = Array.from({ length: 5000 }, (_, i) => i + 1);
  for (let i = seqs.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [seqs[i], seqs[j]] = [seqs[j]!, seqs[i]!];
  }
  let seqIndex = 0;
  const nextSeq = () => seqs[seqIndex++]!;
  const used: number[] = [];
  const profiles: ProfileFixture[] = [];
  for (let i = 0; i < PROFILES_PER_DATASET; i++) {
    const traits: Record<string, unknown> = {};
    for (const key of VOCABULARY.traits) {
      if (!chance(rng, 0.6)) continue;
      traits[key] = key === 'birthday' && chance(rng, 0.7) ? rng.pick([...VALUE_POOLS.dates, ...DATA_DATES]) : randomValue(rng);
    }
    const identifiers = VOCABULARY.identifierTypes.filter(() => chance(rng, 0.4)).map((type) => ({ type, value: uuid(rng), unbound: chance(rng, 0.25) }));
    const consents: Record<string, boolean> = {};
    for (const category of VOCABULARY.consentCategories) if (chance(rng, 0.6)) consents[category] = chance(rng, 0.6);
    const memberships = [...segmentIds.values()].filter(() => chance(rng, 0.35));
    const events = chance(rng, 0.15) ? [] : randomEvents(rng, rng.int(1, 18), nextSeq, used);
    profiles.push({ id: uuid(rng), traits, identifiers, consents, memberships, events });
  }
  // Merged-away profiles keep rows that must never count.
  for (let i = 0; i < 3; i++) {
    profiles.push({
      id: uuid(rng),
      mergedInto: profiles[i]!.id,
      traits: { city: '上海', age: 10 },
      consents: { sms: true },
      memberships: [segmentIds.get('vip')!],
      events: randomEvents(rng, 5, nextSeq, used),
    });
  }
  const unresolved = randomEvents(rng, 10, nextSeq, used);
  return { profiles, unresolved, segmentIds };
}

function snapshotOf(profile: ProfileFixture, segmentKeys: Map<string, string>): ProfileSnapshot {
  return {
    profileId: profile.id,
    traits: profile.traits ?? {},
    identifierTypes: new Set((profile.identifiers ?? []).filter((i) => !i.unbound).map((i) => i.type)),
    consents: new Map(Object.entries(profile.consents ?? {})),
    memberships: new Set((profile.memberships ?? []).map((id) => segmentKeys.get(id)!)),
    events: profile.events ?? [],
  };
}

let t: TestDatabase;
const datasets: Dataset[] = [];

beforeAll(async () => {
  t = await createTestDatabase();
  for (let d = 0; d < DATASETS; d++) {
    const rng = createRng(1000 + d);
    const { profiles, unresolved, segmentIds } = generateDataset(rng);
    const workspace = await createWorkspace(t.db, `equivalence-${d}`);
    await loadProfiles(t.db, workspace, profiles, unresolved);
    // Segment rows, so the snapshot loader can name memberships by key.
    for (const [key, id] of segmentIds) {
      await t.db.query(`insert into segments (workspace_id, id, key, name, kind) values ($1, $2, $3, $3, 'static')`, [workspace.workspaceId, id, key]);
    }
    await t.db.query('analyze');
    const keysById = new Map([...segmentIds].map(([key, id]) => [id, key]));
    const moments = profiles.flatMap((p) => (p.events ?? []).map((e) => e.timestamp));
    datasets.push({ workspace, segmentIds, snapshots: profiles.filter((p) => !p.mergedInto).map((p) => snapshotOf(p, keysById)), moments });
  }
});

afterAll(async () => t?.drop());

/** Evaluation moments: the base, 1 ms around it, a day and a week off, and data instants plus durations. */
function randomNow(rng: Rng, dataset: Dataset, condition: Condition): number {
  const roll = rng.next();
  if (roll < 0.3) return BASE_NOW;
  if (roll < 0.4) return BASE_NOW + rng.pick([-1, 1]);
  if (roll < 0.5) return BASE_NOW + rng.pick([-DAY, 7 * DAY, 200 * DAY]);
  const durations = conditionDurations(condition);
  const span = durations.length > 0 && chance(rng, 0.8) ? rng.pick(durations) : rng.pick(DURATIONS_MS);
  return rng.pick(dataset.moments) + span + rng.pick([-1, 0, 0, 1]);
}

function conditionDurations(condition: Condition): number[] {
  const found: number[] = [];
  JSON.stringify(condition, (key, value: unknown) => {
    if ((key === 'duration' || key === 'within') && value !== null && typeof value === 'object') found.push(durationMs(value as Duration));
    return value;
  });
  return found;
}

interface Divergence {
  seed: string;
  text: string;
  now: string;
  sqlOnly: string[];
  evaluatorOnly: string[];
}

function describeCase(condition: Condition): string {
  try {
    return printSegment(condition);
  } catch {
    return JSON.stringify(condition);
  }
}

describe('SQL compiler and incremental evaluator', () => {
  it(`agree on ${DATASETS * CASES_PER_DATASET} random segments over random histories`, async () => {
    const divergences: Divergence[] = [];
    const dishonest: string[] = [];
    const loaderMismatches: string[] = [];
    let members = 0;
    let nonMembers = 0;
    let loaderChecks = 0;
    const rangeMismatches: string[] = [];
    let rangeChecks = 0;
    const coverage = new Map<string, number>();
    for (const [d, dataset] of datasets.entries()) {
      const rng = createRng(7000 + d);
      for (let c = 0; c < CASES_PER_DATASET; c++) {
        const condition = randomCondition(rng, VOCABULARY);
        const now = randomNow(rng, dataset, condition);
        countFeatures(condition, coverage);
        const query = compileSegmentQuery(condition, { workspaceId: dataset.workspace.workspaceId, now: new Date(now), segmentIds: dataset.segmentIds });
        let sqlMembers: Set<string>;
        try {
          const { rows } = await t.db.query<{ profile_id: string }>(query.text, query.values);
          sqlMembers = new Set(rows.map((row) => row.profile_id));
          expect(rows.length, 'one row per member').toBe(sqlMembers.size);
        } catch (error) {
          throw new Error(`SQL failed for ${describeCase(condition)} at ${new Date(now).toISOString()}: ${(error as Error).message}\n${query.text}`);
        }
        const evaluatorMembers = new Set<string>();
        for (const snapshot of dataset.snapshots) {
          const evaluation = evaluateSegment(condition, snapshot, now);
          if (evaluation.member) evaluatorMembers.add(snapshot.profileId);
          const problem = recheckProblem(condition, snapshot, now, evaluation.member, evaluation.recheckAt, rng);
          if (problem) dishonest.push(`${describeCase(condition)} at ${new Date(now).toISOString()}, profile ${snapshot.profileId}: ${problem}`);
        }
        members += evaluatorMembers.size;
        nonMembers += dataset.snapshots.length - evaluatorMembers.size;
        const sqlOnly = [...sqlMembers].filter((id) => !evaluatorMembers.has(id));
        const evaluatorOnly = [...evaluatorMembers].filter((id) => !sqlMembers.has(id));
        if (sqlOnly.length > 0 || evaluatorOnly.length > 0) {
          divergences.push({ seed: `dataset ${d} case ${c}`, text: describeCase(condition), now: new Date(now).toISOString(), sqlOnly, evaluatorOnly });
        }
        if (c % 4 === 1) {
          // The preview's sampled form: restricted to a profile id range, exactly the members in it.
          rangeChecks++;
          const start = (c % 9) / 10;
          const range = { from: uuidAtFraction(start)!, to: uuidAtFraction(start + 0.3) };
          const restricted = compileSegmentQuery(condition, { workspaceId: dataset.workspace.workspaceId, now: new Date(now), segmentIds: dataset.segmentIds, profileRange: range });
          const { rows } = await t.db.query<{ profile_id: string }>(restricted.text, restricted.values);
          const got = rows.map((row) => row.profile_id).sort();
          const want = [...sqlMembers].filter((id) => id >= range.from && (range.to === null || id < range.to)).sort();
          if (JSON.stringify(got) !== JSON.stringify(want)) rangeMismatches.push(`${describeCase(condition)} in [${range.from}, ${range.to}): got ${got.length}, want ${want.length}`);
        }
        if (c % 10 === 0) {
          loaderChecks++;
          const mismatch = await loaderMismatch(dataset, condition, now, evaluatorMembers);
          if (mismatch) loaderMismatches.push(`${describeCase(condition)} at ${new Date(now).toISOString()}: ${mismatch}`);
        }
      }
    }
    const report = divergences.slice(0, 5).map((divergence) => {
      const dataset = datasets[Number(divergence.seed.split(' ')[1])]!;
      const id = divergence.sqlOnly[0] ?? divergence.evaluatorOnly[0]!;
      const snapshot = dataset.snapshots.find((s) => s.profileId === id);
      return { ...divergence, snapshot: snapshot && { ...snapshot, identifierTypes: [...snapshot.identifierTypes], consents: Object.fromEntries(snapshot.consents), memberships: [...snapshot.memberships] } };
    });
    expect(report, `${divergences.length} divergent cases`).toEqual([]);
    expect(dishonest.slice(0, 5), `${dishonest.length} dishonest recheckAt`).toEqual([]);
    expect(loaderMismatches.slice(0, 5), `${loaderMismatches.length} loader mismatches`).toEqual([]);
    // The cases must actually decide something: both answers occur often.
    expect(members).toBeGreaterThan(DATASETS * CASES_PER_DATASET * 3);
    expect(nonMembers).toBeGreaterThan(DATASETS * CASES_PER_DATASET * 3);
    expect(loaderChecks).toBeGreaterThan(50);
    expect(rangeMismatches.slice(0, 5), `${rangeMismatches.length} of ${rangeChecks} id-range restrictions differ`).toEqual([]);
    expect(rangeChecks).toBeGreaterThan(300);
    const rare = FEATURES.filter((feature) => (coverage.get(feature) ?? 0) < 10);
    expect(rare, 'features seen fewer than 10 times').toEqual([]);
  });
});

// Every node kind, measure, operator and window shape the language has.
const FEATURES = [
  ...['and', 'or', 'not', 'trait', 'event', 'sequence', 'identifier', 'segment', 'consent', 'bucket'].map((kind) => `kind:${kind}`),
  ...['exists', 'count', 'sum', 'avg', 'min', 'max', 'distinct', 'first_time', 'last_time', 'first_value', 'last_value'].map((m) => `measure:${m}`),
  ...['eq', 'neq', 'in', 'not_in', 'lt', 'lte', 'gt', 'gte', 'between', 'contains', 'starts_with', 'ends_with', 'matches', 'exists', 'missing', 'before', 'after', 'within_last', 'within_next', 'anniversary_within_next'].map((op) => `op:${op}`),
  'window:last', 'window:range', 'sequence:negated', 'sequence:positive', 'filter', 'path:context',
];

function countFeatures(condition: Condition, into: Map<string, number>): void {
  const add = (feature: string) => into.set(feature, (into.get(feature) ?? 0) + 1);
  JSON.stringify(condition, (key, value: unknown) => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      if (key === 'property' && typeof value === 'string' && value.startsWith('context.')) add('path:context');
      return value;
    }
    const node = value as Record<string, unknown>;
    if (typeof node.op === 'string') add(`op:${node.op}`);
    if (key === 'measure') add(`measure:${String(node.kind)}`);
    else if (key === 'window') add(`window:${String(node.kind)}`);
    else if (typeof node.kind === 'string') add(`kind:${node.kind}`);
    if (node.kind === 'sequence') add(node.negated ? 'sequence:negated' : 'sequence:positive');
    if (typeof node.property === 'string' && key !== 'measure') add('filter');
    return value;
  });
}

/** recheckAt honesty: before recheckAt (or ever, when null) the answer stays the answer at now. */
function recheckProblem(condition: Condition, snapshot: ProfileSnapshot, now: number, member: boolean, recheckAt: number | null, rng: Rng): string | null {
  if (recheckAt !== null && recheckAt <= now) return `recheckAt ${recheckAt} is not after now`;
  const limit = recheckAt ?? now + 800 * DAY;
  const probes = [now + 1, limit - 1, now + Math.floor((limit - now) / 2), now + rng.int(1, Math.max(1, limit - now - 1))];
  for (const probe of probes) {
    if (probe <= now || probe >= limit) continue;
    if (evaluateSegment(condition, snapshot, probe).member !== member) {
      return `answer changes at ${new Date(probe).toISOString()}, before recheckAt ${recheckAt === null ? 'null' : new Date(recheckAt).toISOString()}`;
    }
  }
  return null;
}

/** Snapshots read back through the real-time loader must give the evaluator the same answers. */
async function loaderMismatch(dataset: Dataset, condition: Condition, now: number, expected: Set<string>): Promise<string | null> {
  const client = await t.db.connect();
  try {
    const ids = dataset.snapshots.map((s) => s.profileId);
    const reads = conditionReads(condition);
    // The loader reads the memberships of the segments the caller names (id → key).
    const keysById = new Map([...dataset.segmentIds].map(([key, id]) => [id, key]));
    const needs = { ...snapshotNeeds(reads, now), memberships: reads.segments.size > 0 ? keysById : null };
    const loaded = await loadProfileSnapshots(client, dataset.workspace.workspaceId, ids, needs);
    if (loaded.length !== ids.length) return `loaded ${loaded.length} of ${ids.length} profiles`;
    const different = loaded.filter((snapshot) => evaluateSegment(condition, snapshot, now).member !== expected.has(snapshot.profileId));
    if (different.length > 0) return `profiles ${different.map((s) => s.profileId).join(', ')}`;
    // Through the per-profile digests too: built from events on the first read, read back on the second.
    const spec = digestSpec(reads);
    if (!spec) return null;
    for (const pass of ['built', 'read back']) {
      const digested = await loadProfileSnapshots(client, dataset.workspace.workspaceId, ids, needs, t.db, { digests: spec });
      if (digested.length !== ids.length) return `digests (${pass}): loaded ${digested.length} of ${ids.length} profiles`;
      const wrong = digested.filter((snapshot) => evaluateSegment(condition, snapshot, now).member !== expected.has(snapshot.profileId));
      if (wrong.length > 0) return `digests (${pass}): profiles ${wrong.map((s) => s.profileId).join(', ')}`;
    }
    return null;
  } finally {
    client.release();
  }
}
