import { describe, expect, it } from 'vitest';
import type { JourneyDefinition } from '../src/journeys/definition.ts';
import type { InstanceRow, JourneyVersion } from '../src/journeys/instances.ts';
import { NODE_KINDS } from '../src/journeys/steps.ts';
import { NEEDS_SNAPSHOT, StepError, versionReads, walkInstance, type WalkResult } from '../src/journeys/walk.ts';
import type { ProfileSnapshot } from '../src/segments/snapshot.ts';

/* The executor's in-memory step (walk.ts over the node kinds of steps.ts): no database. */

const NOW = new Date('2026-03-02T08:00:00Z');
const MINUTE = 60_000;

const version = (definition: JourneyDefinition): JourneyVersion => ({ journeyId: 'j-1', journeyKey: 'welcome', version: 3, definition });

const instance = (overrides: Partial<InstanceRow> = {}): InstanceRow => ({
  workspace_id: 'w-1',
  id: 'i-1',
  journey_id: 'j-1',
  version: 3,
  profile_id: 'p-1',
  instance_key: '',
  status: 'active',
  node_id: 'in',
  phase: 'arrive',
  due_at: NOW,
  holdout: false,
  entry: 'api',
  entered_at: NOW,
  wait_started_at: null,
  visits: {},
  step_count: 0,
  variables: { plan: 'pro' },
  ended_at: null,
  end_reason: null,
  end_detail: null,
  ...overrides,
});

const snapshot = (traits: Record<string, unknown>): ProfileSnapshot => ({
  profileId: 'p-1',
  traits,
  identifierTypes: new Set(),
  consents: new Map(),
  memberships: new Set(),
  events: [],
});

const series: JourneyDefinition = {
  nodes: [
    { id: 'in', kind: 'entry', trigger: { kind: 'api' }, next: 'hello' },
    { id: 'hello', kind: 'send', channel: 'email', template: 'welcome', purpose: 'marketing', next: 'pause' },
    { id: 'pause', kind: 'delay', duration: { amount: 5, unit: 'minutes' }, next: 'tier' },
    { id: 'tier', kind: 'split', condition: 'trait.tier = "gold"', yes: 'gold', no: 'bye' },
    { id: 'gold', kind: 'send', channel: 'sms', template: 'gold', purpose: 'marketing', next: 'bye' },
    { id: 'bye', kind: 'end' },
  ],
};

const walked = (result: ReturnType<typeof walkInstance>): WalkResult => {
  if (result === NEEDS_SNAPSHOT) throw new Error('expected a walk, got NEEDS_SNAPSHOT');
  return result;
};

describe('the in-memory step of an instance', () => {
  it('passes every node it can, records each step, queues the send with its idempotency key, and stops at the delay', () => {
    const row = instance();
    const result = walked(walkInstance(row, version(series), { now: NOW, timeZone: 'UTC', snapshot: undefined }));
    expect(result.steps.map((s) => [s.step, s.nodeId, s.outcome])).toEqual([
      [1, 'in', 'next'],
      [2, 'hello', 'queued'],
      [3, 'pause', 'waiting'],
    ]);
    expect(result.messages).toHaveLength(1);
    expect(result.messages[0]!.step).toBe(result.steps[1]);
    expect(result.messages[0]!.request).toMatchObject({
      workspaceId: 'w-1',
      profileId: 'p-1',
      channel: 'email',
      templateKey: 'welcome',
      idempotencyKey: 'journey:i-1:hello:1',
      variables: { event: { plan: 'pro' }, journey: { key: 'welcome', version: 3 } },
      origin: { journeyId: 'j-1', journeyVersion: 3, instanceId: 'i-1', nodeId: 'hello' },
    });
    expect(result.instance).toMatchObject({ node_id: 'pause', phase: 'wait', due_at: new Date(NOW.getTime() + 5 * MINUTE), wait_started_at: NOW, step_count: 3 });
    expect(result.instance.visits).toEqual({ in: 1, hello: 1, pause: 1 });
    expect(result.settle).toBeUndefined();
    // The input row is left as it was: the executor can walk it again after a failed write.
    expect(row).toEqual(instance());
  });

  it('asks for the profile at the first node that reads it, and walks on with it; the timer settles the waiting step', () => {
    const waiting = instance({ node_id: 'pause', phase: 'wait', step_count: 3, visits: { in: 1, hello: 1, pause: 1 } });
    const later = new Date(NOW.getTime() + 5 * MINUTE);
    expect(walkInstance(waiting, version(series), { now: later, timeZone: 'UTC', snapshot: undefined })).toBe(NEEDS_SNAPSHOT);
    expect(versionReads(version(series)).traits).toBe(true);
    const gold = walked(walkInstance(waiting, version(series), { now: later, timeZone: 'UTC', snapshot: snapshot({ tier: 'gold' }) }));
    expect(gold.settle).toEqual({ step: 3, outcome: 'next', detail: undefined });
    expect(gold.steps.map((s) => [s.step, s.nodeId, s.outcome])).toEqual([
      [4, 'tier', 'yes'],
      [5, 'gold', 'queued'],
      [6, 'bye', 'completed'],
    ]);
    expect(gold.instance).toMatchObject({ status: 'completed', end_reason: 'completed', due_at: null, ended_at: later });
    expect(gold.events.map((e) => [e.event, e.messageId])).toEqual([['Journey Exited', 'journey-exited-i-1']]);
    const silver = walked(walkInstance(waiting, version(series), { now: later, timeZone: 'UTC', snapshot: snapshot({ tier: 'silver' }) }));
    expect(silver.steps.map((s) => s.outcome)).toEqual(['no', 'completed']);
    expect(silver.messages).toEqual([]);
  });

  it('sends nothing for the holdout and exits an instance whose node is gone', () => {
    const held = walked(walkInstance(instance({ holdout: true }), version(series), { now: NOW, timeZone: 'UTC', snapshot: undefined }));
    expect(held.steps.map((s) => s.outcome)).toEqual(['next', 'held_out', 'waiting']);
    expect(held.messages).toEqual([]);
    const lost = walked(walkInstance(instance({ node_id: 'removed' }), version(series), { now: NOW, timeZone: 'UTC', snapshot: undefined }));
    expect(lost.instance).toMatchObject({ status: 'exited', end_reason: 'exited', end_detail: 'node "removed" is not in version 3' });
    expect(lost.steps).toEqual([]);
  });

  it('fails the instance at the node whose kind breaks the contract (exactly one of next, waitUntil, end)', () => {
    const original = NODE_KINDS.entry.arrive;
    NODE_KINDS.entry.arrive = () => ({ outcome: 'confused' });
    try {
      expect(() => walkInstance(instance(), version(series), { now: NOW, timeZone: 'UTC', snapshot: undefined })).toThrow(StepError);
      try {
        walkInstance(instance(), version(series), { now: NOW, timeZone: 'UTC', snapshot: undefined });
      } catch (error) {
        expect((error as StepError).nodeId).toBe('in');
      }
    } finally {
      NODE_KINDS.entry.arrive = original;
    }
  });

  it('a second visit of a node gets its own idempotency key', () => {
    const again = walked(walkInstance(instance({ node_id: 'hello', visits: { in: 1, hello: 1, pause: 1 }, step_count: 4 }), version(series), { now: NOW, timeZone: 'UTC', snapshot: undefined }));
    expect(again.messages[0]!.request.idempotencyKey).toBe('journey:i-1:hello:2');
    expect(again.steps[0]!.step).toBe(5);
  });
});
