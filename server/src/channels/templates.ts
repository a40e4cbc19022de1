import { Liquid, type Template } from 'liquidjs';
import { closest } from '../segments/language/suggest.ts';
import type { ChannelKind, TemplateProblem } from './contract.ts';

/*
 * Message templates (pure): per locale, a map of fields (subject, html, text, title, body, …) to
 * LiquidJS sources. Rendering is strict — an undefined variable is an error, not a blank — except
 * inside `if`/`unless` and the `default` filter, so `{{ traits.first_name | default: "there" }}`
 * works. The check runs at save and at journey publish and names the field and line:column.
 */

export type TemplateFields = Record<string, string>;
export type TemplateContent = Record<string, TemplateFields>;

const FIELD_NAME = /^(subject|html|text|title|body|url|template_id|provider_template|(data|param)\.[A-Za-z0-9_]{1,64})$/;
const LOCALE = /^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$/;

/** Which fields each channel needs: every group lists alternatives, one of which must be present. */
const REQUIRED: Record<ChannelKind, string[][]> = {
  email: [['subject'], ['html', 'text']],
  sms: [['text', 'provider_template']],
  wechat: [['template_id']],
  wecom: [['text']],
  push: [['title'], ['body']],
  webhook: [['body']],
};

/** The variables every send has; event properties and journey variables only when declared. */
const ALWAYS_AVAILABLE = new Set(['profile', 'traits', 'message']);

const engine = new Liquid({ strictVariables: true, strictFilters: true, lenientIf: true, ownPropertyOnly: true, cache: false });

export interface RenderContext {
  profile: Record<string, unknown>;
  traits: Record<string, unknown>;
  event?: Record<string, unknown>;
  journey?: Record<string, unknown>;
  message: Record<string, unknown>;
}

interface Positioned {
  token?: { getPosition?: () => [number, number] };
  message: string;
}

function describe(error: unknown): { message: string; at?: string } {
  const positioned = error as Positioned;
  const position = positioned.token?.getPosition?.();
  // liquidjs appends ", line:1, col:7" to its messages; keep the sentence and report the position once.
  const message = String(positioned.message ?? error).replace(/, line:\d+, col:\d+$/, '');
  return position ? { message, at: `${position[0]}:${position[1]}` } : { message };
}

function parse(source: string): Template[] {
  return engine.parse(source);
}

/** Shape problems (locales, fields, required fields) and syntax problems, with path and line:column. */
export function checkTemplateContent(
  channel: ChannelKind,
  defaultLocale: string,
  content: TemplateContent,
  /** What a send will have; absent at save, when only the shape, syntax and variable roots are checked. */
  available?: { eventProperties?: readonly string[]; journeyVariables?: readonly string[]; traits?: readonly string[] },
): TemplateProblem[] {
  const problems: TemplateProblem[] = [];
  const locales = Object.keys(content);
  if (locales.length === 0) problems.push({ path: 'content', message: 'at least one locale is required' });
  if (!(defaultLocale in content)) problems.push({ path: 'defaultLocale', message: `"${defaultLocale}" has no content` });
  for (const locale of locales) {
    if (!LOCALE.test(locale)) problems.push({ path: locale, message: 'not a locale tag (e.g. en, zh-CN)' });
    const fields = content[locale] ?? {};
    for (const group of REQUIRED[channel]) {
      if (!group.some((field) => typeof fields[field] === 'string' && fields[field] !== '')) {
        problems.push({ path: `${locale}.${group[0]}`, message: `${channel} templates need ${group.join(' or ')}` });
      }
    }
    for (const [field, source] of Object.entries(fields)) {
      const path = `${locale}.${field}`;
      if (!FIELD_NAME.test(field)) {
        problems.push({ path, message: 'unknown field (subject, html, text, title, body, url, template_id, provider_template, data.<name>, param.<name>)' });
        continue;
      }
      if (typeof source !== 'string') {
        problems.push({ path, message: 'must be a string' });
        continue;
      }
      let parsed: Template[];
      try {
        parsed = parse(source);
      } catch (error) {
        const { message, at } = describe(error);
        problems.push({ path: at ? `${path} ${at}` : path, message });
        continue;
      }
      const knownTraits = available?.traits ? new Set(available.traits) : undefined;
      for (const variable of variablesOf(parsed)) {
        const problem = unavailable(variable, available ?? { eventProperties: [variable[1] ?? ''], journeyVariables: [variable[1] ?? ''] });
        if (problem) problems.push({ path, message: problem, variable: variable.join('.') });
        else if (knownTraits && variable[0] === 'traits' && variable[1] !== undefined && !knownTraits.has(variable[1])) {
          problems.push({ path, message: unknownTrait(variable[1], knownTraits), severity: 'warning', variable: `traits.${variable[1]}` });
        }
      }
    }
  }
  return problems;
}

/** A trait no identify call, computed trait or profile has: likely a typo, or a trait not sent yet. */
function unknownTrait(key: string, known: ReadonlySet<string>): string {
  const suggestion = closest(key, known);
  return `trait "${key}" is not known in this workspace (no identify call sent it, no computed trait or profile has it)${suggestion ? `; did you mean "${suggestion}"?` : ''}`;
}

function variablesOf(parsed: Template[]): string[][] {
  return engine.globalVariableSegmentsSync(parsed).map((segments) => segments.map(String));
}

/** The fields of the `profile` and `message` objects every send has (recipients.ts profileVariables, dispatch.ts). */
const FIXED_FIELDS: Record<string, readonly string[]> = {
  profile: ['id', 'email', 'phone', 'user_id', 'locale', 'identifiers'],
  message: ['id', 'unsubscribe_url', 'preferences_url'],
};

function unavailable(segments: string[], available: { eventProperties?: readonly string[]; journeyVariables?: readonly string[] }): string | undefined {
  const [root, first] = segments;
  if (root === undefined) return undefined;
  const name = segments.join('.');
  const fixed = FIXED_FIELDS[root];
  if (fixed && first !== undefined && !fixed.includes(first)) {
    return `"${name}" is not a field of ${root} (${fixed.join(', ')})${root === 'profile' ? '; traits are under traits.' : ''}`;
  }
  if (ALWAYS_AVAILABLE.has(root)) return undefined;
  if (root === 'event') {
    if (first !== undefined && available.eventProperties?.includes(first)) return undefined;
    return `"${name}" is not a property of the trigger event (available: ${(available.eventProperties ?? []).join(', ') || 'none'})`;
  }
  if (root === 'journey') {
    if (first !== undefined && available.journeyVariables?.includes(first)) return undefined;
    return `"${name}" is not a journey variable (available: ${(available.journeyVariables ?? []).join(', ') || 'none'})`;
  }
  return `unknown variable "${name}" (use profile, traits, event, journey or message)`;
}

/** The template locale for a profile's locale: exact, then same language, then the default. */
export function pickLocale(content: TemplateContent, defaultLocale: string, wanted: string | undefined): string {
  if (!wanted) return defaultLocale;
  const locales = Object.keys(content);
  const exact = locales.find((locale) => locale.toLowerCase() === wanted.toLowerCase());
  if (exact) return exact;
  const language = wanted.split(/[-_]/)[0]!.toLowerCase();
  return locales.find((locale) => locale.split('-')[0]!.toLowerCase() === language) ?? defaultLocale;
}

export class RenderError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
  }
}

// Parsed templates by (workspace, key, version, locale, field): versions are immutable.
const parsedCache = new Map<string, Template[]>();

/** Renders every field of one locale; a strict-variable or filter error names the field and position. */
export function renderFields(cacheKey: string, fields: TemplateFields, context: RenderContext, locale: string): TemplateFields {
  const rendered: TemplateFields = {};
  for (const [field, source] of Object.entries(fields)) {
    const key = `${cacheKey}\u0000${locale}\u0000${field}`;
    try {
      let parsed = parsedCache.get(key);
      if (!parsed) {
        parsed = parse(source);
        if (parsedCache.size > 5_000) parsedCache.clear();
        parsedCache.set(key, parsed);
      }
      rendered[field] = engine.renderSync(parsed, { ...context }) as string;
    } catch (error) {
      const { message, at } = describe(error);
      throw new RenderError(at ? `${locale}.${field} ${at}` : `${locale}.${field}`, message);
    }
  }
  return rendered;
}
