import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import { ApiError } from '../api/errors.ts';
import type { Db } from '../storage/database.ts';
import { loadAccounts } from './accounts.ts';
import { channelSubscriptionKey } from './guards.ts';
import { messageForTracking, recordReport } from './messages.ts';
import { listSubscriptionGroups, setSubscription, subscriptionsOf } from './policy.ts';
import { twilioStatus, verifyTwilioSignature } from './providers/twilio.ts';
import { PIXEL_GIF, readRef, trackingKey, verifyUrl, type TrackingRef } from './tracking.ts';

export interface TrackingRoutesOptions {
  db: Db;
  now: () => Date;
  secretsKey: () => Buffer;
  /** The public base URL providers call back on (Twilio signs the full URL). */
  publicUrl: () => string;
}

const publicRoute = { permission: 'public' };
const hidden = (summary: string) => ({ summary, tags: ['channels'] });
const Token = Type.Object({ token: Type.String({ minLength: 10, maxLength: 400 }) });
// Twilio error codes on a status callback that mean the number can never receive.
const TWILIO_UNREACHABLE = new Set(['30003', '30005', '30006', '21610']);

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (reply: FastifyReply, title: string, body: string) =>
  reply
    .type('text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .send(`<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${escapeHtml(title)}</title></head><body style="font-family:sans-serif;max-width:32rem;margin:2rem auto">${body}</body></html>`);

/**
 * Public routes recipients and providers reach without a key: open pixel, click redirect,
 * one-click unsubscribe (RFC 8058) and preference page, provider status callbacks. Every URL
 * carries a token signed with the instance key naming (workspace, message).
 */
export const trackingRoutes: FastifyPluginAsyncTypebox<TrackingRoutesOptions> = async (app, options) => {
  const { db, now } = options;
  let key: Buffer | undefined;
  const linkKey = () => (key ??= trackingKey(options.secretsKey()));
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });
  const refOf = (token: string): TrackingRef => {
    const ref = readRef(linkKey(), token);
    if (!ref) throw new ApiError(404, 'not_found', 'Unknown or altered link');
    return ref;
  };

  app.get('/t/o/:file', { config: publicRoute, schema: { ...hidden('Open pixel'), params: Type.Object({ file: Type.String({ maxLength: 400 }) }) } }, async (request, reply) => {
    const ref = readRef(linkKey(), request.params.file.replace(/\.gif$/, ''));
    // The pixel always answers, so a mail client never shows a broken image.
    if (ref) await recordReport(db, ref.workspaceId, ref.subject, { status: 'opened' }, now()).catch(() => undefined);
    return reply.type('image/gif').header('cache-control', 'no-store, max-age=0').send(PIXEL_GIF);
  });

  app.get(
    '/t/c/:token',
    {
      config: publicRoute,
      schema: { ...hidden('Click redirect'), params: Token, querystring: Type.Object({ u: Type.String({ maxLength: 4096 }), s: Type.String({ maxLength: 100 }) }) },
    },
    async (request, reply) => {
      const ref = refOf(request.params.token);
      if (!verifyUrl(linkKey(), request.params.token, request.query.u, request.query.s) || !/^https?:\/\//i.test(request.query.u)) {
        throw new ApiError(400, 'invalid_link', 'The link target does not match its signature', 'u');
      }
      await recordReport(db, ref.workspaceId, ref.subject, { status: 'clicked', detail: { url: request.query.u } }, now());
      return reply.redirect(request.query.u, 302);
    },
  );

  async function unsubscribe(ref: TrackingRef, groupKey?: string): Promise<string | undefined> {
    const message = await messageForTracking(db, ref.workspaceId, ref.subject);
    if (!message) return undefined;
    const group = groupKey ?? message.subscription_group ?? channelSubscriptionKey(message.channel);
    const changed = await setSubscription(db, ref.workspaceId, message.profile_id, group, false, `message:${ref.subject}`);
    if (changed) await recordReport(db, ref.workspaceId, ref.subject, { status: 'unsubscribed', detail: { subscription_group: group } }, now());
    return group;
  }

  app.get('/t/u/:token', { config: publicRoute, schema: { ...hidden('Unsubscribe confirmation page'), params: Token } }, async (request, reply) => {
    refOf(request.params.token);
    // A GET never unsubscribes: mail scanners follow links. The button POSTs like the one-click header.
    return page(
      reply,
      'Unsubscribe',
      `<h1>Unsubscribe</h1><form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click"><button type="submit">Unsubscribe</button></form><p><a href="../p/${escapeHtml(request.params.token)}">Manage preferences</a></p>`,
    );
  });

  app.post('/t/u/:token', { config: publicRoute, schema: { ...hidden('One-click unsubscribe (RFC 8058)'), params: Token } }, async (request, reply) => {
    const group = await unsubscribe(refOf(request.params.token));
    if (!group) throw new ApiError(404, 'not_found', 'Unknown message');
    return page(reply, 'Unsubscribed', '<h1>You are unsubscribed</h1><p>You will not receive these messages any more.</p>');
  });

  app.get('/t/p/:token', { config: publicRoute, schema: { ...hidden('Preference page'), params: Token } }, async (request, reply) => {
    const ref = refOf(request.params.token);
    const message = await messageForTracking(db, ref.workspaceId, ref.subject);
    if (!message) throw new ApiError(404, 'not_found', 'Unknown message');
    const groups = (await listSubscriptionGroups(db, ref.workspaceId)).filter((g) => g.channel === null || g.channel === message.channel);
    const choices = await subscriptionsOf(db, ref.workspaceId, message.profile_id);
    const rows = [{ key: channelSubscriptionKey(message.channel), name: `All ${message.channel} marketing`, mode: 'opt_out' as const }, ...groups]
      .map((g) => {
        const subscribed = choices[g.key] ?? g.mode === 'opt_out';
        return `<label><input type="checkbox" name="${escapeHtml(g.key)}" value="on"${subscribed ? ' checked' : ''}> ${escapeHtml(g.name)}</label><br>`;
      })
      .join('');
    return page(reply, 'Preferences', `<h1>Your preferences</h1><form method="post">${rows}<input type="hidden" name="_submitted" value="1"><button type="submit">Save</button></form>`);
  });

  app.post('/t/p/:token', { config: publicRoute, schema: { ...hidden('Save preferences'), params: Token } }, async (request, reply) => {
    const ref = refOf(request.params.token);
    const message = await messageForTracking(db, ref.workspaceId, ref.subject);
    if (!message) throw new ApiError(404, 'not_found', 'Unknown message');
    const form = (request.body ?? {}) as Record<string, string>;
    const groups = (await listSubscriptionGroups(db, ref.workspaceId)).filter((g) => g.channel === null || g.channel === message.channel);
    for (const groupKey of [channelSubscriptionKey(message.channel), ...groups.map((g) => g.key)]) {
      const subscribed = form[groupKey] === 'on';
      const changed = await setSubscription(db, ref.workspaceId, message.profile_id, groupKey, subscribed, `preferences:${ref.subject}`);
      if (changed && !subscribed) await recordReport(db, ref.workspaceId, ref.subject, { status: 'unsubscribed', detail: { subscription_group: groupKey } }, now());
    }
    return page(reply, 'Saved', '<h1>Preferences saved</h1>');
  });

  app.post(
    '/v1/channels/callbacks/twilio/:token',
    { config: publicRoute, schema: { ...hidden('Twilio status callback (X-Twilio-Signature checked)'), params: Token } },
    async (request, reply) => {
      const ref = refOf(request.params.token);
      const message = await messageForTracking(db, ref.workspaceId, ref.subject);
      if (!message?.account_key) throw new ApiError(404, 'not_found', 'Unknown message');
      const account = (await loadAccounts(db, options.secretsKey(), [{ workspaceId: ref.workspaceId, key: message.account_key }])).get(`${ref.workspaceId}/${message.account_key}`);
      const params = (request.body ?? {}) as Record<string, string>;
      const url = `${options.publicUrl().replace(/\/$/, '')}${request.url}`;
      const signature = request.headers['x-twilio-signature'];
      if (!account || !verifyTwilioSignature(account.secrets.authToken ?? '', url, params, typeof signature === 'string' ? signature : undefined)) {
        throw new ApiError(403, 'invalid_signature', 'X-Twilio-Signature does not match');
      }
      const status = twilioStatus(params.MessageStatus ?? '');
      if (status) {
        const errorCode = params.ErrorCode;
        await recordReport(
          db,
          ref.workspaceId,
          ref.subject,
          {
            status,
            ...(status === 'failed' ? { reason: `twilio ${params.MessageStatus}${errorCode ? ` ${errorCode}` : ''}`, detail: { permanent: true } } : {}),
            ...(params.MessageSid ? { providerMessageId: params.MessageSid } : {}),
          },
          now(),
        );
        if (status === 'failed' && errorCode && TWILIO_UNREACHABLE.has(errorCode) && params.To) {
          await db.query(
            `insert into channel_suppressions (workspace_id, channel, address, reason) values ($1, 'sms', $2, $3) on conflict do nothing`,
            [ref.workspaceId, params.To, `twilio ${errorCode}`],
          );
        }
      }
      return reply.code(204).send();
    },
  );

  app.post(
    '/v1/channels/callbacks/aliyun/:token',
    { config: publicRoute, schema: { ...hidden('Aliyun SmsReport delivery receipts (a batch per call)'), params: Token } },
    async (request) => {
      const ref = refOf(request.params.token);
      if (!ref.subject.startsWith('account:')) throw new ApiError(404, 'not_found', 'Not an account callback');
      const reports = Array.isArray(request.body) ? (request.body as Record<string, unknown>[]) : [];
      for (const report of reports) {
        const messageId = typeof report.out_id === 'string' ? report.out_id : undefined;
        if (!messageId || !/^[0-9a-f-]{36}$/i.test(messageId)) continue;
        const success = report.success === true || report.success === 'true';
        await recordReport(
          db,
          ref.workspaceId,
          messageId,
          success
            ? { status: 'delivered', ...(typeof report.biz_id === 'string' ? { providerMessageId: report.biz_id } : {}) }
            : { status: 'failed', reason: `aliyun ${String(report.err_code ?? 'UNKNOWN')}: ${String(report.err_msg ?? '')}`, detail: { permanent: true } },
          now(),
        );
      }
      // The answer Aliyun expects, or it retries the push.
      return { code: 0, msg: '接收成功' };
    },
  );
};
