/*
 * The lifecycle tests of analytics-lifecycle.test.ts (a hand-built history with hand-worked
 * answers: time zone, merge, period boundaries), unchanged, with every lifecycle answered by the
 * columnar engine (support/columnar-engine.ts is imported first and makes it the active one).
 * Queries it declines (a trait breakdown, a segment, property filters) still go to PostgreSQL.
 */
import './support/columnar-engine.ts';
import './analytics-lifecycle.test.ts';
