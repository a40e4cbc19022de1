/*
 * The path tests of analytics-paths.test.ts (a hand-built history with hand-worked answers),
 * unchanged, with every path answered by the columnar engine (support/columnar-engine.ts is
 * imported first and makes it the active one).
 */
import './support/columnar-engine.ts';
import './analytics-paths.test.ts';
