import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sankeyOf } from '../src/analytics/paths.ts';
import { analyticsCaller, sendAndResolve } from './analytics-support.ts';
import { serverKey } from './profiles-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';

/*
 * Paths around `Product Viewed` over a hand-built history (UTC):
 *   p1: page Home 10:00, Viewed 10:01, Viewed 10:02, Added 10:03, Checkout 10:04, Order 10:05
 *   p2: Viewed 10:00, page Home 10:01, Viewed 10:02, Added 11:00 (58 minutes later: a new session)
 *   p3: Viewed 10:00, Added 10:05, Viewed 10:06
 *   p4: App Opened only (no anchor)
 */
describe('paths', () => {
  let t: TestApp;
  let post: ReturnType<typeof analyticsCaller>;
  let n = 0;
  const at = (hhmm: string) => `2026-03-10T${hhmm}:00Z`;
  const track = (userId: string, event: string, time: string) => ({ type: 'track', event, userId, timestamp: at(time), messageId: `e-${++n}` });
  const page = (userId: string, name: string, time: string) => ({ type: 'page', name, userId, timestamp: at(time), messageId: `e-${++n}` });

  beforeAll(async () => {
    t = await startTestApp({ logLevel: 'error' });
    post = analyticsCaller(t, await serverKey(t));
    await sendAndResolve(t, [
      page('p1', 'Home', '10:00'), track('p1', 'Product Viewed', '10:01'), track('p1', 'Product Viewed', '10:02'),
      track('p1', 'Product Added', '10:03'), track('p1', 'Checkout Started', '10:04'), track('p1', 'Order Completed', '10:05'),
      track('p2', 'Product Viewed', '10:00'), page('p2', 'Home', '10:01'), track('p2', 'Product Viewed', '10:02'), track('p2', 'Product Added', '11:00'),
      track('p3', 'Product Viewed', '10:00'), track('p3', 'Product Added', '10:05'), track('p3', 'Product Viewed', '10:06'),
      track('p4', 'App Opened', '10:00'),
    ]);
  });
  afterAll(async () => t?.close());

  const base = { range: { from: '2026-03-10', to: '2026-03-10' }, anchor: { event: 'Product Viewed' }, steps: 3 };
  const paths = (result: { topPaths: Array<{ path: string[]; count: number }> }) =>
    result.topPaths.map((p) => `${p.path.join(' > ')} ×${p.count}`).sort();

  it('gives Sankey nodes and edges per step and the top paths, repeats collapsed, inside the session', async () => {
    const result = await post('/v1/analytics/paths', base);
    expect(result.profiles).toBe(3);
    const nodes = Object.fromEntries(result.nodes.map((node: { id: string; count: number; ended: number }) => [node.id, [node.count, node.ended]]));
    expect(nodes).toEqual({
      '0:Product Viewed': [3, 0],
      '1:Product Added': [2, 0],
      '1:page:Home': [1, 0],
      '2:Checkout Started': [1, 0],
      '2:Product Viewed': [2, 2],
      '3:Order Completed': [1, 1],
    });
    const edges = result.edges.map((edge: { source: string; target: string; count: number }) => `${edge.source} → ${edge.target} ×${edge.count}`).sort();
    expect(edges).toEqual([
      '0:Product Viewed → 1:Product Added ×2',
      '0:Product Viewed → 1:page:Home ×1',
      '1:Product Added → 2:Checkout Started ×1',
      '1:Product Added → 2:Product Viewed ×1',
      '1:page:Home → 2:Product Viewed ×1',
      '2:Checkout Started → 3:Order Completed ×1',
    ]);
    expect(paths(result)).toEqual(['Product Added > Checkout Started > Order Completed ×1', 'Product Added > Product Viewed ×1', 'page:Home > Product Viewed ×1']);
  });

  it('applies the cleaning rules, the session gap, before/after and an end event', async () => {
    const raw = await post('/v1/analytics/paths', { ...base, collapseRepeats: false });
    expect(paths(raw)).toContain('Product Viewed > Product Added > Checkout Started ×1'); // p1 keeps its second view
    const until = await post('/v1/analytics/paths', { ...base, until: { event: 'Product Added' } });
    expect(paths(until)).toEqual(['Product Added ×2', 'page:Home > Product Viewed ×1']);
    const before = await post('/v1/analytics/paths', { ...base, direction: 'before' });
    expect(paths(before)).toEqual([' ×2', 'page:Home ×1']);
    const excluded = await post('/v1/analytics/paths', { ...base, exclude: ['page:Home'] });
    // p2 without its page view: Viewed, Viewed collapse into one, then nothing in the session.
    expect(paths(excluded)).toContain(' ×1');
    const longSessions = await post('/v1/analytics/paths', { ...base, sessionGap: { amount: 2, unit: 'hours' } });
    expect(paths(longSessions)).toContain('page:Home > Product Viewed > Product Added ×1');
  });

  it('shapes nodes and edges from counts (pure)', () => {
    const shaped = sankeyOf([
      { k: 0, label: 'A', previous: null, count: 2, ended: 1 },
      { k: 1, label: 'B', previous: 'A', count: 1, ended: 1 },
    ]);
    expect(shaped).toEqual({
      profiles: 2,
      nodes: [
        { id: '0:A', step: 0, label: 'A', count: 2, ended: 1 },
        { id: '1:B', step: 1, label: 'B', count: 1, ended: 1 },
      ],
      edges: [{ source: '0:A', target: '1:B', count: 1 }],
    });
  });
});
