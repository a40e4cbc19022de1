import { describe, expect, it } from 'vitest';
import {
  appendTo,
  asRootGroup,
  definitionOf,
  editable,
  nodeAt,
  replaceAt,
  scalar,
  toggleNot,
  traitOperator,
  type Condition,
} from '../src/segment-builder-model.ts';

const city = (value: string): Condition => ({ kind: 'trait', trait: 'city', op: 'eq', value });
const tree: Condition = { kind: 'and', conditions: [city('上海'), { kind: 'not', condition: { kind: 'or', conditions: [city('北京'), city('广州')] } }] };

describe('segment builder model', () => {
  it('reads, replaces and removes nodes by path without touching the original', () => {
    expect(nodeAt(tree, [1, 'not', 0])).toEqual(city('北京'));
    const replaced = replaceAt(tree, [1, 'not', 1], city('深圳'));
    expect(nodeAt(replaced, [1, 'not', 1])).toEqual(city('深圳'));
    expect(nodeAt(tree, [1, 'not', 1])).toEqual(city('广州'));
    const removed = replaceAt(tree, [0], null);
    expect(removed).toMatchObject({ kind: 'and', conditions: [{ kind: 'not' }] });
    expect(() => replaceAt(tree, [5], null)).toThrow();
    expect(() => replaceAt(tree, [0, 'not'], null)).toThrow();
  });

  it('appends to a nested group and toggles negation both ways', () => {
    const appended = appendTo(tree, [1, 'not'], city('成都'));
    expect((nodeAt(appended, [1, 'not']) as { conditions: Condition[] }).conditions).toHaveLength(3);
    expect(toggleNot(city('x'))).toEqual({ kind: 'not', condition: city('x') });
    expect(toggleNot(toggleNot(city('x')))).toEqual(city('x'));
  });

  it('shows any definition under a root group and gives back the smallest definition', () => {
    expect(asRootGroup(null)).toEqual({ kind: 'and', conditions: [] });
    expect(asRootGroup(city('a'))).toEqual({ kind: 'and', conditions: [city('a')] });
    expect(definitionOf({ kind: 'and', conditions: [] })).toBeNull();
    expect(definitionOf({ kind: 'or', conditions: [city('a')] })).toEqual(city('a'));
    expect(definitionOf({ kind: 'or', conditions: [city('a'), city('b')] })).toEqual({ kind: 'or', conditions: [city('a'), city('b')] });
  });

  it('turns the form text into operator values of the right type', () => {
    expect(traitOperator('gte', '300')).toEqual({ op: 'gte', value: 300 });
    expect(traitOperator('eq', 'true')).toEqual({ op: 'eq', value: true });
    expect(traitOperator('eq', '上海')).toEqual({ op: 'eq', value: '上海' });
    expect(traitOperator('in', 'gold, platinum,, 3')).toEqual({ op: 'in', values: ['gold', 'platinum', 3] });
    expect(traitOperator('exists', 'ignored')).toEqual({ op: 'exists' });
    expect(scalar('007a')).toBe('007a');
    expect(scalar('-1.5')).toBe(-1.5);
  });

  it('knows which nodes it has a form for; the rest stay as text', () => {
    expect(editable(city('a'))).toBe(true);
    expect(editable({ kind: 'trait', trait: 'birthday', op: 'anniversary_within_next', duration: { amount: 7, unit: 'days' } })).toBe(false);
    const event = (measure: Extract<Condition, { kind: 'event' }>['measure']): Condition => ({
      kind: 'event',
      match: { type: 'track', name: 'Order Completed', filters: [] },
      window: { kind: 'last', duration: { amount: 30, unit: 'days' } },
      measure,
    });
    expect(editable(event({ kind: 'count', test: { op: 'gte', value: 3 } }))).toBe(true);
    expect(editable(event({ kind: 'exists' }))).toBe(true);
    expect(editable(event({ kind: 'sum', property: 'revenue', test: { op: 'gt', value: 500 } }))).toBe(false);
    expect(editable({ kind: 'bucket', salt: 's', from: 0, to: 9 })).toBe(false);
  });
});
