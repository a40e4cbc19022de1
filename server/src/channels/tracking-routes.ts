import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import { ApiError } from '../api/errors.ts';
import type { Db } from '../storage/database.ts';
import { loadAccounts } from './accounts.ts';
import { channelSubscriptionKey } from './guards.ts';
import { isHardBounce, parseBounce } from './bounces.ts';
import { messageForTracking, messageIdByProviderId, recordReport } from './messages.ts';
import { addSuppressions, listSubscriptionGroups, setSubscription, subscriptionsOf } from './policy.ts';
import { twilioStatus, verifyTwilioSignature } from './providers/twilio.ts';
import { parseWechatXml, templateJobOutcome, verifyWechatSignature } from './providers/wechat.ts';
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
  // WeChat pushes XML; an MTA hands on a bounce as the raw message. Both are read as text.
  app.addContentTypeParser(['text/xml', 'application/xml', 'message/rfc822', 'text/plain', 'multipart/report'], { parseAs: 'string', bodyLimit: 2 * 1024 * 1024 }, (_request, body, done) => {
    done(null, body);
  });
  const refOf = (token: string): TrackingRef => {
    const ref = readRef(linkKey(), token);
    if (!ref) throw new ApiError(404, 'not_found', 'Unknown or altered link');
    return ref;
  };
  /** The account an account-callback URL names (`account:<key>` tokens), with its secrets. */
  const accountOf = async (token: string, provider: string) => {
    const ref = refOf(token);
    if (!ref.subject.startsWith('account:')) throw new ApiError(404, 'not_found', 'Not an account callback');
    const accountKey = ref.subject.slice('account:'.length);
    const account = (await loadAccounts(db, options.secretsKey(), [{ workspaceId: ref.workspaceId, key: accountKey }])).get(`${ref.workspaceId}/${accountKey}`);
    if (!account || account.provider !== provider) throw new ApiError(404, 'not_found', `No ${provider} account "${accountKey}"`);
    return { workspaceId: ref.workspaceId, account };
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

  const WechatQuery = Type.Object({
    signature: Type.Optional(Type.String({ maxLength: 100 })),
    timestamp: Type.Optional(Type.String({ maxLength: 20 })),
    nonce: Type.Optional(Type.String({ maxLength: 100 })),
    echostr: Type.Optional(Type.String({ maxLength: 200 })),
    openid: Type.Optional(Type.String({ maxLength: 200 })),
    encrypt_type: Type.Optional(Type.String({ maxLength: 20 })),
    msg_signature: Type.Optional(Type.String({ maxLength: 100 })),
  });

  // The server URL of a WeChat official account (plain-text mode): WeChat checks it with a GET
  // that must echo `echostr`, then pushes events to it, each signed with the account's server token.
  app.get(
    '/v1/channels/callbacks/wechat/:token',
    { config: publicRoute, schema: { ...hidden('WeChat server URL check (signature, echostr)'), params: Token, querystring: WechatQuery } },
    async (request, reply) => {
      const { account } = await accountOf(request.params.token, 'wechat');
      if (!verifyWechatSignature(account.secrets.callbackToken ?? '', request.query)) throw new ApiError(403, 'invalid_signature', 'The WeChat signature does not match');
      return reply.type('text/plain').send(request.query.echostr ?? '');
    },
  );

  app.post(
    '/v1/channels/callbacks/wechat/:token',
    { config: publicRoute, schema: { ...hidden('WeChat pushes: TEMPLATESENDJOBFINISH delivery receipts (signature checked)'), params: Token, querystring: WechatQuery } },
    async (request, reply) => {
      const { workspaceId, account } = await accountOf(request.params.token, 'wechat');
      if (!verifyWechatSignature(account.secrets.callbackToken ?? '', request.query)) throw new ApiError(403, 'invalid_signature', 'The WeChat signature does not match');
      const push = parseWechatXml(typeof request.body === 'string' ? request.body : '');
      if (push.MsgType === 'event' && push.Event === 'TEMPLATESENDJOBFINISH' && push.MsgID) {
        const messageId = await messageIdByProviderId(db, workspaceId, 'wechat', push.MsgID);
        const outcome = templateJobOutcome(push.Status ?? '');
        if (messageId) {
          await recordReport(
            db,
            workspaceId,
            messageId,
            outcome.delivered ? { status: 'delivered' } : { status: 'failed', reason: outcome.reason, detail: { permanent: true, user_block: outcome.userBlocked } },
            now(),
          );
        }
        if (!outcome.delivered && outcome.userBlocked && push.FromUserName) {
          await addSuppressions(db, workspaceId, [{ channel: 'wechat', address: push.FromUserName, reason: 'wechat failed:user block' }]);
        }
      }
      // WeChat wants "success" (or nothing), or it pushes the same event again.
      return reply.type('text/plain').send('success');
    },
  );

  // Email bounces: the MTA (or a mailbox rule) hands each delivery status notification on as the
  // raw message, e.g. Postfix piping to `curl --data-binary @- -H 'content-type: message/rfc822'`.
  app.post(
    '/v1/channels/callbacks/bounce/:token',
    { config: publicRoute, schema: { ...hidden('Email bounces: a delivery status notification (RFC 3464) as the raw message'), params: Token } },
    async (request, reply) => {
      const { workspaceId } = await accountOf(request.params.token, 'smtp');
      const bounce = parseBounce(typeof request.body === 'string' ? request.body : '');
      const failed = bounce.recipients.find((r) => r.action === 'failed');
      const delivered = bounce.recipients.find((r) => r.action === 'delivered' || r.action === 'relayed');
      let matched: string | undefined;
      for (const id of bounce.messageIds) {
        const message = await messageForTracking(db, workspaceId, id);
        if (message?.channel === 'email') {
          matched = id;
          break;
        }
      }
      if (matched && failed) {
        const hard = isHardBounce(failed);
        await recordReport(
          db,
          workspaceId,
          matched,
          {
            status: 'bounced',
            reason: `bounced ${failed.status}${failed.diagnostic ? `: ${failed.diagnostic.slice(0, 300)}` : ''}`,
            detail: { permanent: hard, status: failed.status, ...(failed.diagnostic ? { diagnostic: failed.diagnostic.slice(0, 500) } : {}) },
          },
          now(),
        );
      } else if (matched && delivered) {
        await recordReport(db, workspaceId, matched, { status: 'delivered' }, now());
      }
      // Hard bounces suppress the address even when the original message is unknown (a DSN without its headers).
      const hardAddresses = bounce.recipients.filter((r) => isHardBounce(r) && r.recipient).map((r) => r.recipient!);
      if (hardAddresses.length > 0) await addSuppressions(db, workspaceId, hardAddresses.map((address) => ({ channel: 'email' as const, address, reason: 'hard_bounce' })));
      return reply.code(202).send({ matched: matched ?? null, recipients: bounce.recipients.length });
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
