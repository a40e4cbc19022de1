import type { Condition } from '../segments/ast.ts';
import { parseSegment } from '../segments/language/parse.ts';
import { instantOfWall, isValidTimeZone } from '../channels/guards.ts';
import { scheduleError } from '../segments/cron.ts';
import { conditionReads } from '../segments/snapshots.ts';
import { isWaitingNode, successors, type JourneyDefinition, type JourneyNode, type NodeOf } from './definition.ts';

/** One thing wrong with a definition: the node (when one is at fault), the field, and why. */
export interface Problem {
  node?: string;
  /** A dotted path from the definition's root, e.g. `nodes.3.next` or `goals.0.condition`. */
  field: string;
  message: string;
  /** Template warnings: the template's own field (`en.subject`) and the variable at fault (`traits.frist_name`). */
  templateField?: string;
  name?: string;
}

export interface ValidationContext {
  /** Keys of the workspace's live segments (triggers and in_segment must name one of them). */
  segmentKeys: ReadonlySet<string>;
  /** Template keys that exist, per channel; absent: templates are not checked here. */
  templates?: (channel: string, key: string) => boolean;
  /** The workspace's time zone (schedule triggers without their own); UTC when absent. */
  timeZone?: string;
}

/** A condition text parsed, or the parser's complaint. */
export function parseConditionText(text: string): { ok: true; condition: Condition } | { ok: false; message: string } {
  const parsed = parseSegment(text);
  if (parsed.ok) return parsed;
  const { error } = parsed;
  return { ok: false, message: `line ${error.line}, column ${error.column}: ${error.message}${error.suggestion ? ` (did you mean ${error.suggestion}?)` : ''}` };
}

/** The condition an event name plus property filters means: `event("<name>" where <filters>).exists()`. */
export function eventConditionText(event: string, where: string | undefined): string {
  return `event(${JSON.stringify(event)}${where === undefined ? '' : ` where ${where}`}).exists()`;
}

/**
 * Every problem of a schema-valid definition, in node order: duplicate or missing ids, a missing
 * or second entry node, links to nodes that do not exist, unreachable nodes, cycles an instance
 * could run round without ever waiting, delays with nothing to wait for, random splits that do
 * not add up, conditions that do not parse, unknown segments and templates. Empty: publishable.
 */
export function validateJourney(definition: JourneyDefinition, context: ValidationContext): Problem[] {
  const problems: Problem[] = [];
  const index = new Map<string, number>();
  definition.nodes.forEach((node, i) => {
    if (index.has(node.id)) problems.push({ node: node.id, field: `nodes.${i}.id`, message: `Node id "${node.id}" is used twice (first at nodes.${index.get(node.id)})` });
    else index.set(node.id, i);
  });
  const entries = definition.nodes.map((node, i) => ({ node, i })).filter(({ node }) => node.kind === 'entry');
  if (entries.length === 0) problems.push({ field: 'nodes', message: 'The journey has no entry node' });
  for (const extra of entries.slice(1)) {
    problems.push({ node: extra.node.id, field: `nodes.${extra.i}.kind`, message: 'A journey has exactly one entry node' });
  }
  if (!definition.nodes.some((node) => node.kind === 'end')) problems.push({ field: 'nodes', message: 'The journey has no end node' });

  const byId = new Map(definition.nodes.map((node) => [node.id, node]));
  definition.nodes.forEach((node, i) => {
    for (const { field, target } of successors(node)) {
      const to = byId.get(target);
      if (!to) problems.push({ node: node.id, field: `nodes.${i}.${field}`, message: `Node "${target}" does not exist` });
      else if (to.kind === 'entry') problems.push({ node: node.id, field: `nodes.${i}.${field}`, message: 'No node may lead back to the entry node' });
      else if (target === node.id) problems.push({ node: node.id, field: `nodes.${i}.${field}`, message: 'A node cannot lead to itself' });
    }
    problems.push(...nodeProblems(node, `nodes.${i}`, context));
  });

  const entry = entries[0]?.node;
  if (entry) {
    const reached = new Set<string>([entry.id]);
    const stack = [entry.id];
    while (stack.length > 0) {
      const node = byId.get(stack.pop()!);
      if (!node) continue;
      for (const { target } of successors(node)) {
        if (!reached.has(target) && byId.has(target)) {
          reached.add(target);
          stack.push(target);
        }
      }
    }
    definition.nodes.forEach((node, i) => {
      if (!reached.has(node.id)) problems.push({ node: node.id, field: `nodes.${i}`, message: `Node "${node.id}" cannot be reached from the entry node` });
    });
  }
  problems.push(...instantCycles(definition, index));

  for (const kind of ['goals', 'exits'] as const) {
    const rules = definition[kind] ?? [];
    const seen = new Set<string>();
    rules.forEach((rule, i) => {
      if (seen.has(rule.id)) problems.push({ field: `${kind}.${i}.id`, message: `${kind === 'goals' ? 'Goal' : 'Exit'} id "${rule.id}" is used twice` });
      seen.add(rule.id);
      problems.push(...conditionProblems(rule.condition, `${kind}.${i}.condition`, undefined, context));
    });
  }
  return problems;
}

function nodeProblems(node: JourneyNode, at: string, context: ValidationContext): Problem[] {
  const problems: Problem[] = [];
  const problem = (field: string, message: string) => problems.push({ node: node.id, field: `${at}.${field}`, message });
  switch (node.kind) {
    case 'entry': {
      const trigger = node.trigger;
      if ((trigger.kind === 'segment' || trigger.kind === 'schedule') && !context.segmentKeys.has(trigger.segment)) {
        problem('trigger.segment', `Segment "${trigger.segment}" does not exist (or is archived)`);
      }
      if (trigger.kind === 'event') {
        problems.push(...conditionProblems(eventConditionText(trigger.event, trigger.where), `${at}.trigger.where`, node.id, context));
      }
      if (trigger.kind === 'schedule') {
        if ((trigger.at === undefined) === (trigger.cron === undefined)) problem('trigger', 'A scheduled entry needs exactly one of `at` (one-off) and `cron` (recurring)');
        if (trigger.at !== undefined && Number.isNaN(Date.parse(trigger.at))) problem('trigger.at', `"${trigger.at}" is not an instant`);
        const zone = trigger.timeZone ?? context.timeZone ?? 'UTC';
        if (!isValidTimeZone(zone)) problem('trigger.timeZone', `"${zone}" is not an IANA time zone`);
        else if (trigger.cron !== undefined) {
          const error = scheduleError(trigger.cron, zone);
          if (error) problem('trigger.cron', error);
        }
      }
      if (node.maxConcurrent !== undefined && node.maxConcurrent > 1 && !(trigger.kind === 'event' && trigger.instanceKey)) {
        problem('maxConcurrent', 'More than one running instance per profile needs per-key instances (an event trigger with instanceKey)');
      }
      break;
    }
    case 'delay':
      if (node.untilDate !== undefined && (node.duration !== undefined || node.until !== undefined)) {
        problem('untilDate', 'A delay until a date trait takes no duration or time of day besides it');
      } else if (node.duration === undefined && node.until === undefined && node.untilDate === undefined) {
        problem('duration', 'A delay needs a duration, an until time of day, both, or an untilDate');
      }
      break;
    case 'wait':
      problems.push(...conditionProblems(eventConditionText(node.event, node.where), `${at}.where`, node.id, context));
      if (node.happened === node.timedOut) problem('timedOut', 'happened and timedOut lead to the same node: use a delay instead');
      break;
    case 'segment_wait':
      if (!context.segmentKeys.has(node.segment)) problem('segment', `Segment "${node.segment}" does not exist (or is archived)`);
      if (node.happened === node.timedOut) problem('timedOut', 'happened and timedOut lead to the same node: use a delay instead');
      break;
    case 'update_trait':
      if (node.set === undefined && node.addTags === undefined) problem('set', 'An update_trait node needs `set`, `addTags`, or both');
      else if (node.set !== undefined && Object.keys(node.set).length === 0 && node.addTags === undefined) problem('set', 'Nothing to set');
      if (node.set && 'tags' in node.set && node.addTags) problem('set.tags', 'Set `tags` or add tags, not both');
      break;
    case 'webhook':
      if (context.templates && !context.templates('webhook', node.template)) problem('template', `No webhook template "${node.template}"`);
      break;
    case 'split':
      problems.push(...conditionProblems(node.condition, `${at}.condition`, node.id, context));
      break;
    case 'random': {
      const total = node.branches.reduce((sum, branch) => sum + branch.percent, 0);
      if (total !== 100) problem('branches', `The branches' percents add up to ${total}, not 100`);
      const keys = new Set<string>();
      node.branches.forEach((branch, i) => {
        if (keys.has(branch.key)) problem(`branches.${i}.key`, `Branch key "${branch.key}" is used twice`);
        keys.add(branch.key);
      });
      break;
    }
    case 'send':
      if (context.templates && !context.templates(node.channel, node.template)) {
        problem('template', `No ${node.channel} template "${node.template}"`);
      }
      break;
    case 'end':
      break;
  }
  return problems;
}

function conditionProblems(text: string, field: string, node: string | undefined, context: ValidationContext): Problem[] {
  const parsed = parseConditionText(text);
  const at = node === undefined ? {} : { node };
  if (!parsed.ok) return [{ ...at, field, message: parsed.message }];
  const problems: Problem[] = [];
  for (const key of conditionReads(parsed.condition).segments) {
    if (!context.segmentKeys.has(key)) problems.push({ ...at, field, message: `in_segment("${key}"): segment "${key}" does not exist (or is archived)` });
  }
  return problems;
}

/**
 * Cycles made only of nodes that pass straight through (no delay or wait on them): an instance
 * entering one would step forever within one transaction.
 */
function instantCycles(definition: JourneyDefinition, index: ReadonlyMap<string, number>): Problem[] {
  const byId = new Map(definition.nodes.map((node) => [node.id, node]));
  const state = new Map<string, 'open' | 'done'>();
  const problems: Problem[] = [];
  const reported = new Set<string>();
  const visit = (id: string, path: string[]): void => {
    const node = byId.get(id);
    if (!node || isWaitingNode(node)) return;
    const seen = state.get(id);
    if (seen === 'done') return;
    if (seen === 'open') {
      const cycle = path.slice(path.indexOf(id));
      const key = [...cycle].sort().join(',');
      if (!reported.has(key)) {
        reported.add(key);
        problems.push({
          node: id,
          field: `nodes.${index.get(id)}`,
          message: `The cycle ${[...cycle, id].join(' → ')} has no delay or wait: an instance would loop forever`,
        });
      }
      return;
    }
    state.set(id, 'open');
    for (const { target } of successors(node)) visit(target, [...path, id]);
    state.set(id, 'done');
  };
  for (const node of definition.nodes) visit(node.id, []);
  return problems;
}

/** Where a delay ends: the duration first, then (if given) the next allowed time of day in `timeZone`. */
export function delayEnd(node: NodeOf<'delay'>, from: Date, timeZone: string, durationMs: number): Date {
  const afterDuration = new Date(from.getTime() + durationMs);
  return node.until ? nextTimeOfDay(afterDuration, node.until.time, timeZone, node.until.weekdays) : afterDuration;
}

/**
 * The first instant at or after `from` whose wall clock in `timeZone` reads `time` (HH:MM) on an
 * allowed ISO weekday. The instant of a wall time is channels' `instantOfWall` (one rule for the
 * whole product): inside a spring-forward gap it is the first instant after the gap (02:30 on the
 * night New York skips 02:00–03:00 is 03:00 EDT); in an autumn overlap it is the first of the two
 * (01:30 EDT, not 01:30 EST), and a day whose first occurrence is already past is not revisited by
 * its second: a daily time fires once per local day.
 */
export function nextTimeOfDay(from: Date, time: string, timeZone: string, weekdays?: readonly number[]): Date {
  const [hour, minute] = time.split(':').map(Number) as [number, number];
  const local = localParts(from, timeZone);
  for (let day = 0; day <= 8; day++) {
    const candidateDay = new Date(Date.UTC(local.year, local.month - 1, local.day + day));
    const isoWeekday = ((candidateDay.getUTCDay() + 6) % 7) + 1;
    if (weekdays && !weekdays.includes(isoWeekday)) continue;
    const at = zonedTime(candidateDay.getUTCFullYear(), candidateDay.getUTCMonth() + 1, candidateDay.getUTCDate(), hour, minute, timeZone);
    if (at.getTime() >= from.getTime()) return at;
  }
  throw new Error(`No ${time} on the allowed weekdays after ${from.toISOString()}`);
}

const formatters = new Map<string, Intl.DateTimeFormat>();
export function localParts(at: Date, timeZone: string): { year: number; month: number; day: number; hour: number; minute: number; second: number } {
  let format = formatters.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, format);
  }
  const parts = Object.fromEntries(format.formatToParts(at).map((part) => [part.type, part.value]));
  return { year: +parts.year!, month: +parts.month!, day: +parts.day!, hour: +parts.hour!, minute: +parts.minute!, second: +parts.second! };
}

/**
 * The instant a wall-clock time in `timeZone` names: channels' `instantOfWall` with no lower
 * bound, so in a DST gap the first instant after the gap and in an overlap the earlier of the two.
 */
export function zonedTime(year: number, month: number, day: number, hour: number, minute: number, timeZone: string): Date {
  return new Date(instantOfWall(Date.UTC(year, month - 1, day, hour, minute), timeZone, Number.NEGATIVE_INFINITY));
}
