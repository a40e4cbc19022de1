import { defineConfig } from 'vitest/config';

export default defineConfig({
  // The dashboard's .tsx modules use React's automatic JSX runtime.
  esbuild: { jsx: 'automatic' },
  test: {
    include: ['server/test/**/*.test.ts', 'sdk/test/**/*.test.ts', 'dashboard/test/**/*.test.ts'],
    globalSetup: ['server/test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Two cores: more workers only contend for the same PostgreSQL.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    reporters: process.env.CI_REPORT ? ['default', ['json', { outputFile: process.env.CI_REPORT }]] : ['default'],
  },
});
