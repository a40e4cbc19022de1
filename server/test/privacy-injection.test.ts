import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { normalizeEvent } from '../src/ingest/normalize.ts';
import type { RegisteredRoute } from '../src/privacy/access.ts';
import { ADMIN_TOKEN, basicAuth, startTestApp, type TestApp } from './support/app.ts';
import { drain, send } from './profiles-support.ts';

// Logins with unknown users spend a dummy password hash: the low test cost keeps them quick.
process.env.TOUCHPOINT_ARGON2_MEMORY_KIB ??= '1024';

/** Strings that break SQL built by concatenation (quotes, comments, stacked statements, LIKE wildcards, placeholders). */
const INJECTIONS = [
  `' OR '1'='1'; DROP TABLE events; --`,
  `"); DELETE FROM workspaces; SELECT pg_sleep(3); --`,
  `\\' || (select current_user) || '%_$1::text`,
];

interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  enum?: unknown[];
  const?: unknown;
  items?: JsonSchema;
  patternProperties?: Record<string, JsonSchema>;
}

/** A value for the schema with the payload in every string field (enums and constants kept valid). */
function fill(schema: JsonSchema | undefined, payload: string, depth = 0): unknown {
  if (!schema || depth > 6) return payload;
  if (schema.const !== undefined) return schema.const;
  if (schema.enum) return schema.enum[0];
  const options = schema.anyOf ?? schema.oneOf;
  if (options) return fill(options.find((option) => option.type !== 'null') ?? options[0], payload, depth + 1);
  if (schema.allOf) return Object.assign({}, ...schema.allOf.map((part) => fill(part, payload, depth + 1)));
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;
  switch (type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      for (const [key, property] of Object.entries(schema.properties ?? {})) out[key] = fill(property, payload, depth + 1);
      if (schema.patternProperties && Object.keys(out).length === 0) out[payload.slice(0, 20)] = payload;
      return out;
    }
    case 'array':
      return [fill(schema.items, payload, depth + 1)];
    case 'integer':
    case 'number':
      return 1;
    case 'boolean':
      return true;
    case 'null':
      return null;
    default:
      return payload;
  }
}

function query(schema: JsonSchema | undefined, payload: string): string {
  const names = Object.entries(schema?.properties ?? {})
    .filter(([, property]) => !property.enum && property.const === undefined && (property.type === 'string' || property.type === undefined))
    .map(([name]) => name);
  return names.length ? `?${names.map((name) => `${encodeURIComponent(name)}=${encodeURIComponent(payload)}`).join('&')}` : '';
}

describe('SQL built only with parameters: injection payloads in every string field', () => {
  let t: TestApp;
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'x-touchpoint-workspace': 'acme' };
  beforeAll(async () => {
    t = await startTestApp();
    await send(t, t.writeKey, [{ type: 'identify', userId: 'canary', traits: { email: 'canary@example.com', plan: 'pro' }, messageId: 'canary-1' }]);
    await drain(t);
  });
  afterAll(async () => t?.close());

  const census = async () =>
    (
      await t.db.query<{ events: string; workspaces: string; profiles: string }>(
        'select (select count(*) from events) as events, (select count(*) from workspaces) as workspaces, (select count(*) from profiles) as profiles',
      )
    ).rows[0]!;

  it('the segment language: payloads as values, event names and keys are refused or matched literally', async () => {
    const before = await census();
    for (const payload of INJECTIONS) {
      const quoted = JSON.stringify(payload);
      for (const text of [`trait.plan = ${quoted}`, `trait.plan contains ${quoted}`, `performed ${quoted}`, `identifier.email = ${quoted}`, `trait.${payload} = "x"`, payload]) {
        const answer = await t.app.inject({ method: 'POST', url: '/v1/segments/preview', headers: admin, payload: { text } });
        expect(answer.statusCode, `${text} → ${answer.body}`).toBeLessThan(500);
        if (answer.statusCode === 200) expect(JSON.stringify(answer.json())).not.toContain('canary@example.com');
      }
    }
    expect(await census()).toEqual(before);
  });

  it('every route: payloads in path parameters, query strings and every string of the body never reach SQL as code', async () => {
    const routes = (t.app.registeredRoutes as RegisteredRoute[]).filter((route) => route.method !== 'HEAD' && !route.url.includes('*') && route.url !== '/v1/test-failure');
    expect(routes.length).toBeGreaterThan(100);
    const failures: string[] = [];
    for (const payload of INJECTIONS) {
      for (const route of routes) {
        const url =
          route.url.replace(/:workspace\b/, 'acme').replace(/:([A-Za-z]+)/g, () => encodeURIComponent(payload)) + query(route.schema?.querystring as JsonSchema | undefined, payload);
        const body = ['POST', 'PUT', 'PATCH'].includes(route.method) ? (route.schema?.body ? fill(route.schema.body as JsonSchema, payload) : {}) : undefined;
        const collection = route.permission === 'events.write';
        const answer = await t.app.inject({
          method: route.method as 'GET',
          url,
          headers: collection ? { authorization: basicAuth(t.writeKey) } : admin,
          ...(body === undefined ? {} : { payload: body as object }),
        });
        if (answer.statusCode >= 500) failures.push(`${route.method} ${route.url} → ${answer.statusCode} ${answer.body.slice(0, 200)}`);
      }
    }
    expect(failures, failures.join('\n')).toEqual([]);
    const after = await census();
    expect(Number(after.workspaces)).toBeGreaterThanOrEqual(1);
    expect((await t.db.query(`select 1 from events where message_id = 'canary-1'`)).rowCount).toBe(1);
    expect((await t.db.query(`select to_regclass('public.events') is not null as ok`)).rows[0]).toEqual({ ok: true });
  }, 600_000);
});

/** A small seeded generator (mulberry32): the same hostile inputs on every run. */
function random(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  return { next, int, pick };
}

const HOSTILE_STRINGS = ['', ' ', '\u0000', 'a\u0000b', '\ud800', '\udfff\ud800', '💥'.repeat(50), 'x'.repeat(70_000), '__proto__', 'constructor', '${7*7}', '{{7*7}}', '<script>alert(1)</script>', ...INJECTIONS, '2026-13-45T25:61:61Z', 'NaN', '-0', '1e309'];
const FIELDS = ['type', 'event', 'userId', 'anonymousId', 'previousId', 'groupId', 'messageId', 'timestamp', 'sentAt', 'properties', 'traits', 'context', 'integrations', 'name', 'category', '__proto__', 'constructor', 'prototype', 'batch', 'writeKey'];

function hostileValue(r: ReturnType<typeof random>, depth = 0): unknown {
  switch (r.int(depth > 4 ? 6 : 9)) {
    case 0:
      return r.pick(HOSTILE_STRINGS);
    case 1:
      return r.pick([0, -1, 1.5, 1e308, -1e308, Number.MAX_SAFE_INTEGER + 2, 2 ** 63]);
    case 2:
      return r.pick([true, false, null]);
    case 3:
      return r.pick(['track', 'identify', 'page', 'screen', 'group', 'alias', 'TRACK', 'delete']);
    case 4:
      return `user-${r.int(1000)}`;
    case 5:
      return new Date(r.int(2 ** 31) * 1000).toISOString();
    case 6:
      return Array.from({ length: r.int(5) }, () => hostileValue(r, depth + 1));
    default: {
      const out: Record<string, unknown> = {};
      for (let i = r.int(6); i > 0; i--) out[r.next() < 0.6 ? r.pick(FIELDS) : r.pick(HOSTILE_STRINGS).slice(0, 40)] = hostileValue(r, depth + 1);
      return out;
    }
  }
}

describe('fuzz: random and hostile JSON at the collection endpoints', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => t?.close());

  it('never answers 5xx, stays up, pollutes no prototype, and still stores the valid events among them', async () => {
    const r = random(20261207);
    const endpoints = ['/v1/batch', '/v1/track', '/v1/identify', '/v1/page', '/v1/screen', '/v1/group', '/v1/alias', '/v1/import', '/v1/t', '/v1/b'];
    const headers = { authorization: basicAuth(t.writeKey) };
    const failures: string[] = [];
    const validIds: string[] = [];
    for (let i = 0; i < 400; i++) {
      const url = r.pick(endpoints);
      let payload: string;
      const shape = r.int(10);
      if (shape === 0) {
        // Broken JSON text: truncated, invalid escapes, lone surrogates as raw bytes.
        payload = r.pick(['{"batch":[{"type":"track"', '{"event":"\\x41"}', '[1,2,3]', 'null', '"just a string"', '{"a":' + '['.repeat(5000) + ']'.repeat(5000) + '}', '\uFEFF{}', '{"event":"E","userId":"u"}garbage']);
      } else if (shape === 1) {
        // A valid event among the noise: it must be stored.
        const messageId = `fuzz-valid-${i}`;
        validIds.push(messageId);
        const event = { type: 'track', event: 'Fuzz Valid', userId: `fuzz-${i}`, messageId, properties: { note: r.pick(HOSTILE_STRINGS.filter((s) => s.length < 1000 && !s.includes(String.fromCharCode(0)) && !/[\ud800-\udfff]/.test(s))) } };
        expect(normalizeEvent(event, { receivedAt: new Date() }).ok).toBe(true);
        payload = JSON.stringify(url === '/v1/batch' || url === '/v1/b' || url === '/v1/import' ? { batch: [event] } : event);
        if (!['/v1/batch', '/v1/b', '/v1/track', '/v1/t', '/v1/import'].includes(url)) {
          payload = JSON.stringify({ batch: [event] });
          const answer = await t.app.inject({ method: 'POST', url: '/v1/batch', headers: { ...headers, 'content-type': 'application/json' }, payload });
          if (answer.statusCode !== 200) failures.push(`valid event refused: ${answer.statusCode} ${answer.body.slice(0, 200)}`);
          continue;
        }
      } else {
        const body = hostileValue(r);
        payload = JSON.stringify(r.next() < 0.5 ? { batch: Array.from({ length: r.int(4) + 1 }, () => hostileValue(r)) } : body) ?? 'null';
      }
      const answer = await t.app.inject({ method: 'POST', url, headers: { ...headers, 'content-type': r.next() < 0.95 ? 'application/json' : 'text/plain' }, payload });
      if (answer.statusCode >= 500) failures.push(`${url} ${payload.slice(0, 120)} → ${answer.statusCode} ${answer.body.slice(0, 200)}`);
      if (shape === 1 && answer.statusCode !== 200) failures.push(`valid event refused at ${url}: ${answer.statusCode} ${answer.body.slice(0, 200)}`);
    }
    expect(failures, failures.join('\n')).toEqual([]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.keys(Object.prototype)).toEqual([]);
    expect((await t.app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
    expect(validIds.length).toBeGreaterThan(10);
    const { rows } = await t.db.query<{ message_id: string }>('select message_id from events where workspace_id = $1 and message_id = any($2::text[])', [t.workspace.id, validIds]);
    expect(rows.map((row) => row.message_id).sort()).toEqual([...validIds].sort());
    // And the server still takes a plain event.
    const after = await t.app.inject({ method: 'POST', url: '/v1/track', headers, payload: { event: 'After Fuzz', userId: 'u-after' } });
    expect(after.statusCode).toBe(200);
  }, 600_000);
});
