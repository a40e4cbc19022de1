/**
/**
 * Imported first by a test file: every funnel in it is answered by the columnar engine (an
 * in-memory DuckDB copy that catches up with PostgreSQL before each answer), so the existing
 * analytics tests run unchanged against it:
 *
 *   imported first by server/test/analytics-funnel-columnar.test.ts, which then imports analytics-funnel.test.ts
 *   (and by analytics-lifecycle-columnar.test.ts, which imports analytics-lifecycle.test.ts)
 */
import { afterAll, beforeAll } from 'vitest';
import { ColumnarStore, setActiveColumnarStore } from '../../src/analytics/columnar/store.ts';

let store: ColumnarStore | undefined;
beforeAll(async () => {
  store = await ColumnarStore.open(':memory:', { threads: 1 });
  store.syncBeforeRead = true;
  setActiveColumnarStore(store);
});
afterAll(() => {
  setActiveColumnarStore(null);
  store?.close();
});
