import { durationMs, type Condition, type EventMatch, type ValueOperator, type Window } from './ast.ts';

/**
 * What data can make a condition's answer change with the clock alone, so that after a full
 * computation only the profiles holding such data need a re-check by the real-time worker.
 *
 * - `traits`: keys read with a date test relative to now (within last/next, anniversary).
 * - `events`: for each time-dependent event or sequence node, the events whose age matters, with
 *   how old they may be and still matter (`horizonMs`): an event older than every sliding window
 *   and relative time test that reads it is out of them for good, so its profile's answer from it
 *   is fixed. `horizonMs` null: any age matters (a relative date test on an event property, whose
 *   value, not the event's age, moves into range).
 *
 * Sequences list their first event only: without one the sequence is false whatever the time.
 */
export interface TimeSensitiveData {
  traits: string[];
  events: Array<{ match: EventMatch; horizonMs: number | null }>;
}

const isRelative = (test: Pick<ValueOperator, 'op'>) =>
  test.op === 'within_last' || test.op === 'within_next' || test.op === 'anniversary_within_next';

const slidingMs = (window: Window | undefined): number | undefined => (window?.kind === 'last' ? durationMs(window.duration) : undefined);

/** The largest horizon, null (any age) winning; undefined when nothing is time-dependent. */
function widest(...horizons: Array<number | null | undefined>): number | null | undefined {
  let result: number | null | undefined;
  for (const horizon of horizons) {
    if (horizon === undefined) continue;
    if (horizon === null || result === null) return null;
    result = result === undefined ? horizon : Math.max(result, horizon);
  }
  return result;
}

export function timeSensitiveData(condition: Condition): TimeSensitiveData {
  const traits = new Set<string>();
  const events: TimeSensitiveData['events'] = [];
  const filtersHorizon = (match: EventMatch) => (match.filters.some(isRelative) ? null : undefined);

  const visit = (node: Condition): void => {
    switch (node.kind) {
      case 'and':
      case 'or':
        node.conditions.forEach(visit);
        return;
      case 'not':
        visit(node.condition);
        return;
      case 'trait':
        if (isRelative(node)) traits.add(node.trait.split('.')[0]!);
        return;
      case 'event': {
        const measure = node.measure;
        let testHorizon: number | null | undefined;
        if ((measure.kind === 'first_time' || measure.kind === 'last_time') && measure.test.op === 'within_last') {
          // The event's own time is what moves through (now − d, now].
          testHorizon = durationMs(measure.test.duration);
        } else if ((measure.kind === 'first_value' || measure.kind === 'last_value') && isRelative(measure.test)) {
          testHorizon = null;
        }
        const horizon = widest(slidingMs(node.window), testHorizon, filtersHorizon(node.match));
        if (horizon !== undefined) events.push({ match: node.match, horizonMs: horizon });
        return;
      }
      case 'sequence': {
        // A negated sequence turns true at A + within; a sliding window drops A at A + window.
        const horizon = widest(
          slidingMs(node.window),
          node.negated ? durationMs(node.within) : undefined,
          filtersHorizon(node.first),
          filtersHorizon(node.then),
        );
        if (horizon !== undefined) events.push({ match: node.first, horizonMs: horizon });
        return;
      }
      case 'identifier':
      case 'segment':
      case 'consent':
      case 'bucket':
        return;
    }
  };
  visit(condition);
  return { traits: [...traits], events };
}
