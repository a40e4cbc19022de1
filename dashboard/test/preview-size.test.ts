import { describe, expect, it } from 'vitest';
import type { Preview } from '../src/api/types.ts';
import { previewSizeView } from '../src/preview-size.ts';

const base: Preview = {
  estimatedSize: 12,
  exact: true,
  method: 'exact',
  sizeInterval: { low: 12, high: 12, confidence: 1 },
  liveProfiles: 1_000,
  sampledProfiles: null,
  sampledMatches: null,
  sample: [],
  sampleComplete: true,
  definition: {},
  text: 'trait.a exists',
  warnings: [],
  durationMs: 5,
};

describe('how the preview states a size (pure)', () => {
  it('shows a count as it is, marked approximate when it is the planner guess', () => {
    expect(previewSizeView(base)).toEqual({ kind: 'count', value: 12, approximate: false });
    expect(previewSizeView({ ...base, exact: false, method: 'planner', sizeInterval: null })).toEqual({ kind: 'count', value: 12, approximate: true });
  });

  it('shows a sampled estimate with its interval and sample', () => {
    const sampled = { ...base, exact: false, method: 'sampled' as const, estimatedSize: 300, sizeInterval: { low: 250, high: 360, confidence: 0.95 }, sampledProfiles: 100, sampledMatches: 30 };
    expect(previewSizeView(sampled)).toEqual({ kind: 'estimate', value: 300, low: 250, high: 360, sampled: 100, live: 1_000 });
  });

  it('never shows a sampled 0: only the upper bound', () => {
    const none = { ...base, exact: false, method: 'sampled' as const, estimatedSize: 0, sizeInterval: { low: 0, high: 37, confidence: 0.95 }, sampledProfiles: 100, sampledMatches: 0 };
    expect(previewSizeView(none)).toEqual({ kind: 'atMost', high: 37, sampled: 100, live: 1_000 });
  });
});
