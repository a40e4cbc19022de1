import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { segmentCatalogue } from '../../bench/segments-catalogue.ts';
import { generateRetailData } from '../../bench/segments-data.ts';
import { parseSegment } from '../src/segments/language/parse.ts';
import { createSegment } from '../src/segments/lifecycle.ts';
import { previewSegment, type PreviewOptions } from '../src/segments/preview.ts';
import { estimateFromSample, finitePopulationFactor, uuidAtFraction, wilsonInterval } from '../src/segments/sample-estimate.ts';
import { compileSegmentQuery } from '../src/segments/sql/compile.ts';
import { listLiveSegments, segmentIdsByKey } from '../src/segments/store.ts';
import type { Db } from '../src/storage/database.ts';
import { createWorkspace } from '../src/workspaces/store.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

describe('sampled size estimates (sample-estimate.ts)', () => {
  it('gives the textbook Wilson interval', () => {
    // 50 of 100: 0.4038–0.5962; 0 of 10: 0–0.2775 (Wilson 1927, as in every table of it).
    const half = wilsonInterval(0.5, 100);
    expect(half.low).toBeCloseTo(0.4038, 4);
    expect(half.high).toBeCloseTo(0.5962, 4);
    const none = wilsonInterval(0, 10);
    expect(none.low).toBe(0);
    expect(none.high).toBeCloseTo(0.2775, 4);
    expect(wilsonInterval(0.3, Infinity)).toEqual({ low: 0.3, high: 0.3 });
  });

  it('scales to the population, narrows as the sample covers more of it, and is exact when it covers all', () => {
    const small = estimateFromSample(50, 100, 1_000_000);
    expect(small.estimate).toBe(500_000);
    expect(small.low).toBe(Math.floor(wilsonInterval(0.5, 100 * finitePopulationFactor(100, 1_000_000)).low * 1_000_000));
    const most = estimateFromSample(450, 900, 1_000);
    expect(most.high - most.low).toBeLessThan(small.high / 1000 - small.low / 1000);
    expect(most.low).toBeLessThanOrEqual(500);
    expect(most.high).toBeGreaterThanOrEqual(500);
    expect(estimateFromSample(37, 1_000, 1_000)).toEqual({ estimate: 37, low: 37, high: 37 });
    expect(finitePopulationFactor(10, 1_000)).toBeCloseTo(999 / 990, 10);
  });

  it('never claims fewer than the matches found nor more than the profiles not ruled out', () => {
    // 3 matches in a sample of 6 out of 8: at least 3, at most 3 + 2 unseen.
    const tight = estimateFromSample(3, 6, 8);
    expect(tight.low).toBeGreaterThanOrEqual(3);
    expect(tight.high).toBeLessThanOrEqual(5);
    // No match in 2,000 of 1,000,000: an upper bound (about 3.84 / 2,000 of them), not a zero.
    const zero = estimateFromSample(0, 2_000, 1_000_000);
    expect(zero.estimate).toBe(0);
    expect(zero.low).toBe(0);
    expect(zero.high).toBeGreaterThan(1_800);
    expect(zero.high).toBeLessThan(2_000);
    const all = estimateFromSample(2_000, 2_000, 1_000_000);
    expect(all.high).toBe(1_000_000);
    expect(all.low).toBeGreaterThan(998_000);
  });

  it('holds the true count about 95 % of the time over random samples without replacement', () => {
    // A seeded generator, so the test is the same every run.
    let state = 12345;
    const random = () => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return state / 2 ** 32;
    };
    for (const [population, members, sampled] of [
      [10_000, 300, 500],
      [10_000, 5_000, 2_000],
      [2_000, 40, 1_500],
    ] as const) {
      let covered = 0;
      const trials = 2_000;
      for (let trial = 0; trial < trials; trial++) {
        // Draw `sampled` of `population` without replacement; the first `members` indexes are members.
        let matches = 0;
        let left = population;
        let membersLeft = members;
        for (let draw = 0; draw < sampled; draw++, left--) {
          if (random() < membersLeft / left) {
            matches++;
            membersLeft--;
          }
        }
        const { low, high } = estimateFromSample(matches, sampled, population);
        if (low <= members && members <= high) covered++;
      }
      expect(covered / trials, `${members} of ${population}, samples of ${sampled}`).toBeGreaterThan(0.93);
    }
  });

  it('refuses impossible counts', () => {
    expect(() => estimateFromSample(5, 4, 10)).toThrow(/cannot exceed the sampled/);
    expect(() => estimateFromSample(1, 11, 10)).toThrow(/cannot exceed the population/);
    expect(() => estimateFromSample(-1, 4, 10)).toThrow(/non-negative integer/);
    expect(() => wilsonInterval(1.5, 10)).toThrow(/within \[0, 1\]/);
  });

  it('maps fractions of the UUID space to ordered range bounds', () => {
    expect(uuidAtFraction(0)).toBe('00000000-0000-0000-0000-000000000000');
    expect(uuidAtFraction(0.5)).toBe('80000000-0000-0000-0000-000000000000');
    expect(uuidAtFraction(0.25)).toBe('40000000-0000-0000-0000-000000000000');
    expect(uuidAtFraction(1)).toBeNull();
    const bounds = [0.001, 0.002, 0.1, 0.3333, 0.9999].map((f) => uuidAtFraction(f)!);
    expect([...bounds].sort()).toEqual(bounds);
    expect(() => uuidAtFraction(-0.1)).toThrow(RangeError);
  });
});

describe('segment preview on generated retail data', () => {
  const NOW = new Date('2026-03-01T08:00:00Z');
  const PROFILES = 5_000;
  let t: TestDatabase;
  let db: Db;
  let ws: string;
  const truth = new Map<string, string[]>();
  const cases = segmentCatalogue(NOW);

  const trueMembers = async (text: string) => {
    const parsed = parseSegment(text);
    if (!parsed.ok) throw new Error(parsed.error.message);
    const query = compileSegmentQuery(parsed.condition, { workspaceId: ws, now: NOW, segmentIds: segmentIdsByKey(await listLiveSegments(db, ws)) });
    const { rows } = await db.query<{ profile_id: string }>(query.text, query.values);
    return rows.map((row) => row.profile_id);
  };
  const preview = (text: string, options: PreviewOptions = {}, sampleSize = 20) => previewSegment(db, ws, { text, sampleSize }, NOW, options);
  // A fixed sample of the first 2 × 400 profiles' worth of the id space, and no exact count.
  const SAMPLED: PreviewOptions = { exactBudgetMs: 0, budgetMs: 60_000, firstStageProfiles: 400, maxStages: 2 };

  beforeAll(async () => {
    t = await createTestDatabase();
    db = t.db;
    ws = (await createWorkspace(db, { slug: 'preview', name: 'Preview', timeZone: 'Asia/Shanghai' })).id;
    await generateRetailData(db, { workspaceId: ws, profiles: PROFILES, events: 60_000, seed: 11, now: NOW });
    // issue_example reads in_segment("churned").
    const churned = cases.find((c) => c.key === 'churned')!;
    await createSegment(db, ws, { key: churned.key, name: churned.name, kind: 'realtime', text: churned.text }, NOW);
    for (const c of cases) truth.set(c.key, await trueMembers(c.text));
  }, 120_000);
  afterAll(async () => t.drop());

  it('counts exactly when counting is fast', async () => {
    for (const key of ['shanghai_members', 'cart_abandoners', 'inactive_30d', 'issue_example']) {
      const c = cases.find((candidate) => candidate.key === key)!;
      const members = truth.get(key)!;
      // A generous budget: what is tested is the path, not the machine's speed.
      const answer = await preview(c.text, { budgetMs: 30_000 });
      expect(answer, key).toMatchObject({
        method: 'exact',
        exact: true,
        estimatedSize: members.length,
        sizeInterval: { low: members.length, high: members.length, confidence: 1 },
        liveProfiles: PROFILES,
        sampledProfiles: null,
      });
      expect(answer.sample).toHaveLength(Math.min(20, members.length));
      // The members with the lowest ids.
      expect(answer.sample.map((p) => p.id)).toEqual([...members].sort().slice(0, 20));
    }
  });

  it('estimates from a fixed random sample of profiles: the interval holds the true size, the sample shows real members', async () => {
    const end = uuidAtFraction(800 / PROFILES)!;
    const { rows } = await db.query<{ n: number }>('select count(*)::int as n from profiles where workspace_id = $1 and merged_into is null and id < $2', [ws, end]);
    const inSample = rows[0]!.n;
    expect(inSample).toBeGreaterThan(650);
    expect(inSample).toBeLessThan(950);
    const misses: string[] = [];
    let checked = 0;
    for (const c of cases) {
      const members = truth.get(c.key)!;
      const answer = await preview(c.text, SAMPLED);
      const sampledMembers = members.filter((id) => id < end);
      expect(answer, c.key).toMatchObject({ method: 'sampled', exact: false, liveProfiles: PROFILES, sampledProfiles: inSample, sampledMatches: sampledMembers.length });
      const { low, high } = answer.sizeInterval!;
      expect(answer.sizeInterval!.confidence).toBe(0.95);
      expect(low).toBeLessThanOrEqual(answer.estimatedSize);
      expect(high).toBeGreaterThanOrEqual(answer.estimatedSize);
      if (!(low <= members.length && members.length <= high)) misses.push(`${c.key}: ${members.length} outside [${low}, ${high}]`);
      // The sample: sampled members, lowest ids first, and one whenever the estimate is above 0.
      expect(answer.sample.map((p) => p.id), c.key).toEqual(sampledMembers.sort().slice(0, 20));
      if (answer.estimatedSize > 0) expect(answer.sample.length, c.key).toBeGreaterThan(0);
      checked++;
    }
    expect(checked).toBe(20);
    // A 95 % interval may miss now and then; on this fixed data and sample it holds for all 20.
    expect(misses).toEqual([]);
  });

  it('says "none found in the sample, fewer than …" for a segment the sample misses, never a bare 0', async () => {
    // One profile, outside the sampled id range.
    const { rows } = await db.query<{ id: string }>('select max(id::text) as id from profiles where workspace_id = $1', [ws]);
    const outsider = rows[0]!.id;
    expect(outsider > uuidAtFraction(800 / PROFILES)!).toBe(true);
    await db.query(
      `insert into profile_traits (workspace_id, profile_id, key, value, source_kind, source_name, message_id, observed_at)
       values ($1, $2, 'preview_probe', '"yes"', 'test', 'test', 'm-probe', now())`,
      [ws, outsider],
    );
    const answer = await preview('trait.preview_probe = "yes"', SAMPLED);
    expect(answer).toMatchObject({ method: 'sampled', exact: false, estimatedSize: 0, sampledMatches: 0, sample: [], sampleComplete: true });
    expect(answer.sizeInterval!.low).toBe(0);
    // The true 1 is inside the bound.
    expect(answer.sizeInterval!.high).toBeGreaterThanOrEqual(1);
    expect(answer.sizeInterval!.high).toBeLessThan(PROFILES * 0.01);
    expect((await preview('trait.preview_probe = "yes"')).estimatedSize).toBe(1);
  });

  it('grows the sample to the whole workspace, then the answer is exact', async () => {
    // 400, 800, 1,600, 3,200, then all of 5,000.
    const c = cases.find((candidate) => candidate.key === 'repeat_buyers')!;
    const answer = await preview(c.text, { exactBudgetMs: 0, budgetMs: 60_000, firstStageProfiles: 400 });
    expect(answer).toMatchObject({ method: 'exact', estimatedSize: truth.get(c.key)!.length });
  });

  it("falls back to the planner's guess, without an interval, when not even a first sample finishes", async () => {
    const answer = await preview(cases[0]!.text, { budgetMs: 1, exactBudgetMs: 0, firstStageProfiles: 400 });
    expect(answer).toMatchObject({ method: 'planner', exact: false, sizeInterval: null, sample: [] });
    expect(Number.isInteger(answer.estimatedSize)).toBe(true);
    await expect(preview(cases[0]!.text, { budgetMs: 0 })).rejects.toThrow(/bad preview options/);
  });
});
