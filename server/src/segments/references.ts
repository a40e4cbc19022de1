import type { Condition, EventMatch, ValueOperator, Window } from './ast.ts';

export interface SegmentReferences {
  /** Keys of the segments this one reads (in_segment), in order of first appearance. */
  segments: string[];
  /** Every distinct event match (event conditions and both sides of sequences). */
  events: EventMatch[];
  /** Trait keys: the first part of each trait path (profile_traits.key). */
  traits: string[];
  identifierTypes: string[];
  consentCategories: string[];
  /**
   * Whether the answer can change with the clock alone (a sliding window, a relative date test,
   * an anniversary, a negated sequence's wait). Only this condition's own nodes: a segment it
   * reads may be time-dependent too, which the caller knows from that segment's references.
   */
  timeDependent: boolean;
}

/** What a condition reads, so a loader fetches only that and dependants are ordered after their dependencies. */
export function segmentReferences(condition: Condition): SegmentReferences {
  const segments = new Set<string>();
  const events = new Map<string, EventMatch>();
  const traits = new Set<string>();
  const identifierTypes = new Set<string>();
  const consentCategories = new Set<string>();
  let timeDependent = false;

  const addEvent = (match: EventMatch): void => {
    events.set(JSON.stringify(match), match);
    if (match.filters.some(isRelativeToNow)) timeDependent = true;
  };
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
        traits.add(node.trait.split('.')[0]!);
        if (isRelativeToNow(node)) timeDependent = true;
        return;
      case 'event':
        addEvent(node.match);
        if (isSliding(node.window)) timeDependent = true;
        if ('test' in node.measure && isRelativeToNow(node.measure.test)) timeDependent = true;
        return;
      case 'sequence':
        addEvent(node.first);
        addEvent(node.then);
        if (node.negated || isSliding(node.window)) timeDependent = true;
        return;
      case 'identifier':
        identifierTypes.add(node.type);
        return;
      case 'segment':
        segments.add(node.segment);
        return;
      case 'consent':
        consentCategories.add(node.category);
        return;
      case 'bucket':
        return;
    }
  };
  visit(condition);
  return {
    segments: [...segments],
    events: [...events.values()],
    traits: [...traits],
    identifierTypes: [...identifierTypes],
    consentCategories: [...consentCategories],
    timeDependent,
  };
}

function isSliding(window: Window | undefined): boolean {
  return window?.kind === 'last';
}

function isRelativeToNow(test: Pick<ValueOperator, 'op'>): boolean {
  return test.op === 'within_last' || test.op === 'within_next' || test.op === 'anniversary_within_next';
}
