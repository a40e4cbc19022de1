import type { Preview } from './api/types.ts';

/**
 * How the preview card states a segment's size: a count, an approximate number with its 95 %
 * interval and sample (sampled), or, when the sample found no member, only its upper bound (a
 * sampled 0 does not mean nobody matches).
 */
export type PreviewSizeView =
  | { kind: 'count'; value: number; approximate: boolean }
  | { kind: 'estimate'; value: number; low: number; high: number; sampled: number; live: number }
  | { kind: 'atMost'; high: number; sampled: number; live: number };

export function previewSizeView(preview: Preview): PreviewSizeView {
  const interval = preview.sizeInterval;
  if (preview.method !== 'sampled' || !interval) return { kind: 'count', value: preview.estimatedSize, approximate: !preview.exact };
  const sample = { sampled: preview.sampledProfiles ?? 0, live: preview.liveProfiles };
  if (preview.estimatedSize === 0) return { kind: 'atMost', high: interval.high, ...sample };
  return { kind: 'estimate', value: preview.estimatedSize, low: interval.low, high: interval.high, ...sample };
}
