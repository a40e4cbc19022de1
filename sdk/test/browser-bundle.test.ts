import { describe, expect, it } from 'vitest';
import { BROWSER_BUNDLE_BUDGET_BYTES, buildBrowserBundle } from '../src/build.ts';

describe('browser bundle', () => {
  it(`stays under ${BROWSER_BUNDLE_BUDGET_BYTES / 1024} KB gzipped`, async () => {
    const { code, gzipped } = await buildBrowserBundle();
    console.log(`touchpoint.js: ${code.length} bytes minified, ${gzipped.length} bytes gzipped`);
    expect(code).toContain('touchpoint');
    expect(gzipped.length).toBeLessThanOrEqual(BROWSER_BUNDLE_BUDGET_BYTES);
  });
});
