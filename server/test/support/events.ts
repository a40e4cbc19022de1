import { normalizeEvent, type NormalizedEvent } from '../../src/ingest/normalize.ts';

/**
 * The `index`-th event of a test stream, normalised as an import stores it: message id `tag-00042`,
 * timestamp `t0` + index seconds (kept, historical), received a day after `t0`. Fails the test if refused.
 */
export function numberedEvent(raw: Record<string, unknown>, tag: string, index: number, t0: number): NormalizedEvent {
  const normalized = normalizeEvent(
    { ...raw, messageId: `${tag}-${String(index).padStart(5, '0')}`, timestamp: new Date(t0 + index * 1000).toISOString() },
    { receivedAt: new Date(t0 + 86_400_000), historical: true },
  );
  if (!normalized.ok) throw new Error(normalized.rejection.message);
  return normalized.event;
}
