/*
 * The funnel tests of analytics-funnel.test.ts (hand-built histories with hand-worked answers, and
 * random histories against a plain reimplementation), unchanged, with every funnel answered by the
 * columnar engine (support/columnar-engine.ts is imported first and makes it the active one).
 * Funnels it declines (property filters on steps, trait breakdowns) still go to PostgreSQL.
 */
import './support/columnar-engine.ts';
import './analytics-funnel.test.ts';
