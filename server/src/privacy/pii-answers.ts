/**
 * Answers are where encrypted personal data is opened for people: every answer of a workspace
 * request that holds PII tokens (`tph1.`) or sealed event fields (`tpe1.`) gets them replaced by
 * their values (one vault query per answer), before the masking hook masks them again for callers
 * without 'pii.read' (access.ts). JSON answers are opened as JSON; streamed exports (CSV, NDJSON)
 * line by line.
 */
import { Readable, Transform } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { Queryable } from '../storage/database.ts';
import { isPiiToken, mayHoldPii, openPii, openPiiStrings } from './pii-codec.ts';

const TOKEN_IN_TEXT = /tph1\.[A-Za-z0-9_-]{32}|tpe1\.\d+\.[A-Za-z0-9_-]{20,}/g;

/** Registered before masking: Fastify runs onSend hooks in order. */
export function registerPiiOpening(app: FastifyInstance, db: Queryable): void {
  app.addHook('onSend', async (request, reply, payload) => {
    const workspaceId = request.access?.workspaceId;
    if (!workspaceId || reply.statusCode >= 400) return payload;
    const type = String(reply.getHeader('content-type') ?? '');
    const json = type.includes('json');
    if (payload instanceof Readable) {
      // pipe() does not forward errors: a failing export must end the answer, not leave it hanging.
      const opened = openLines(db, workspaceId, json);
      payload.once('error', (error) => opened.destroy(error));
      return payload.pipe(opened);
    }
    if (typeof payload !== 'string' || !mayHoldPii(payload)) return payload;
    if (json && !type.includes('ndjson')) return JSON.stringify(await openPii(db, workspaceId, JSON.parse(payload)));
    return openText(db, workspaceId, payload, json);
  });
}

function render(value: unknown, json: boolean): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  if (json) return JSON.stringify(text).slice(1, -1);
  // CSV: a value with a separator, quote or line break becomes one quoted cell.
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** Tokens inside free text (CSV lines, NDJSON) replaced by their values. */
export async function openText(db: Queryable, workspaceId: string, text: string, json: boolean): Promise<string> {
  const found = text.match(TOKEN_IN_TEXT);
  if (!found) return text;
  const tokens = new Set(found.filter(isPiiToken));
  const sealed = new Set(found.filter((t) => !isPiiToken(t)));
  const opened = await openPiiStrings(db, workspaceId, tokens, sealed);
  return text.replace(TOKEN_IN_TEXT, (token) => (opened.has(token) ? render(opened.get(token), json) : token));
}

function openLines(db: Queryable, workspaceId: string, json: boolean): Transform {
  let rest = '';
  return new Transform({
    transform(chunk: Buffer | string, _encoding, done) {
      const text = rest + chunk.toString();
      const end = text.lastIndexOf('\n') + 1;
      rest = text.slice(end);
      if (end === 0) return done(null, '');
      openText(db, workspaceId, text.slice(0, end), json).then((out) => done(null, out), done);
    },
    flush(done) {
      if (!rest) return done(null, '');
      openText(db, workspaceId, rest, json).then((out) => done(null, out), done);
    },
  });
}
