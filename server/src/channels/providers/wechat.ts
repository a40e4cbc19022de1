import crypto from 'node:crypto';
import type { ChannelAccount } from '../accounts.ts';
import { accessToken, dropToken, TokenError } from './tokens.ts';
import { networkFailure, str, type OutgoingMessage, type ProviderAdapter, type ProviderContext, type SendOutcome } from './types.ts';

const DEFAULT_BASE = 'https://api.weixin.qq.com';
// The token is invalid or expired: fetch a new one and try once more.
const TOKEN_ERRORS = new Set([40001, 40014, 42001]);
// System busy, API frequency limits.
const RETRYABLE = new Set([-1, 45009, 45011, 45047]);
// Invalid openid, user not following / refused the template.
const INVALID_RECIPIENT = new Set([40003, 43004, 43101]);

interface WxAnswer {
  errcode?: number;
  errmsg?: string;
  access_token?: string;
  expires_in?: number;
  msgid?: number | string;
  invaliduser?: string;
}

async function getJson(context: ProviderContext, url: string, init?: RequestInit): Promise<WxAnswer> {
  const response = await context.fetch(url, { ...init, signal: AbortSignal.timeout(context.timeoutMs) });
  if (response.status >= 500 || response.status === 429) throw new TokenError(`HTTP ${response.status}`, true);
  return (await response.json()) as WxAnswer;
}

/** Shared by WeChat official accounts and WeCom: token from `tokenUrl`, POST JSON with ?access_token=. */
async function sendWithToken(
  account: ChannelAccount,
  context: ProviderContext,
  provider: 'wechat' | 'wecom',
  tokenUrl: string,
  sendUrl: string,
  payload: unknown,
): Promise<SendOutcome> {
  const cacheKey = `${provider}/${account.workspaceId}/${account.key}/${tokenUrl}`;
  const fetchToken = async () => {
    const answer = await getJson(context, tokenUrl);
    if (!answer.access_token) throw new TokenError(`${provider} token ${str(answer.errcode)}: ${str(answer.errmsg)}`, RETRYABLE.has(answer.errcode ?? 0));
    return { token: answer.access_token, expiresInSeconds: answer.expires_in ?? 7200 };
  };
  try {
    for (let attempt = 0; attempt < 2; attempt += 1) {
      const token = await accessToken(cacheKey, context.now().getTime(), fetchToken);
      const answer = await getJson(context, `${sendUrl}?access_token=${encodeURIComponent(token)}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(payload),
      });
      const code = answer.errcode ?? 0;
      if (TOKEN_ERRORS.has(code) && attempt === 0) {
        dropToken(cacheKey, token);
        continue;
      }
      if (code === 0 && !answer.invaliduser) return { ok: true, providerMessageId: str(answer.msgid) };
      const reason = `${provider} ${code}: ${str(answer.errmsg)}${answer.invaliduser ? ` (invalid user ${answer.invaliduser})` : ''}`;
      if (RETRYABLE.has(code)) return { ok: false, retryable: true, reason };
      return { ok: false, retryable: false, reason, invalidRecipient: INVALID_RECIPIENT.has(code) || Boolean(answer.invaliduser) };
    }
    return { ok: false, retryable: true, reason: `${provider}: the access token was refused twice` };
  } catch (error) {
    if (error instanceof TokenError) return { ok: false, retryable: error.retryable, reason: error.message };
    return networkFailure(error);
  }
}

/**
 * WeChat official account template message (cgi-bin/message/template/send): `template_id`,
 * optional `url`, and `data.<key>` fields become {"key": {"value": …}}. The access token is
 * fetched once per account, cached, and refreshed on 40001/42001.
 */
export const wechatAdapter: ProviderAdapter = {
  idempotent: false,
  send(account, message: OutgoingMessage, context) {
    const base = str(account.settings.baseUrl, DEFAULT_BASE).replace(/\/$/, '');
    const data: Record<string, { value: string }> = {};
    for (const [field, value] of Object.entries(message.fields)) if (field.startsWith('data.')) data[field.slice(5)] = { value };
    const tokenUrl = `${base}/cgi-bin/token?grant_type=client_credential&appid=${encodeURIComponent(str(account.settings.appId))}&secret=${encodeURIComponent(account.secrets.appSecret ?? '')}`;
    return sendWithToken(account, context, 'wechat', tokenUrl, `${base}/cgi-bin/message/template/send`, {
      touser: message.address,
      template_id: message.fields.template_id,
      ...(message.fields.url ? { url: message.fields.url } : {}),
      data,
      client_msg_id: message.messageId,
    });
  },
};

/** WeCom (企业微信) application text message (cgi-bin/message/send) to a member's userid. */
export const wecomAdapter: ProviderAdapter = {
  idempotent: false,
  send(account, message, context) {
    const base = str(account.settings.baseUrl, 'https://qyapi.weixin.qq.com').replace(/\/$/, '');
    const tokenUrl = `${base}/cgi-bin/gettoken?corpid=${encodeURIComponent(str(account.settings.corpId))}&corpsecret=${encodeURIComponent(account.secrets.corpSecret ?? '')}`;
    return sendWithToken(account, context, 'wecom', tokenUrl, `${base}/cgi-bin/message/send`, {
      touser: message.address,
      msgtype: 'text',
      agentid: Number(account.settings.agentId),
      text: { content: message.fields.text ?? '' },
      enable_duplicate_check: 1,
      duplicate_check_interval: 1800,
    });
  },
};

/**
 * The signature WeChat puts on every push to the server URL (plain-text mode): SHA-1 of the
 * account's server token, the timestamp and the nonce, sorted and concatenated.
 */
export function wechatSignature(token: string, timestamp: string, nonce: string): string {
  return crypto.createHash('sha1').update([token, timestamp, nonce].sort().join('')).digest('hex');
}

export function verifyWechatSignature(token: string, query: { signature?: string; timestamp?: string; nonce?: string }): boolean {
  if (!token || !query.signature || !query.timestamp || !query.nonce) return false;
  const expected = Buffer.from(wechatSignature(token, query.timestamp, query.nonce));
  const given = Buffer.from(query.signature);
  return expected.length === given.length && crypto.timingSafeEqual(expected, given);
}

/** The flat `<xml><Name><![CDATA[value]]></Name>…</xml>` of a WeChat push, as name → text. */
export function parseWechatXml(xml: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const match of xml.matchAll(/<([A-Za-z][A-Za-z0-9_]*)>\s*(?:<!\[CDATA\[([\s\S]*?)\]\]>|([^<]*))\s*<\/\1>/g)) {
    fields[match[1]!] = match[2] ?? match[3] ?? '';
  }
  return fields;
}

/**
 * A TEMPLATESENDJOBFINISH push: `success`, `failed:user block` (the follower refused template
 * messages: never send to them again) or `failed: system failed`.
 */
export function templateJobOutcome(status: string): { delivered: true } | { delivered: false; userBlocked: boolean; reason: string } {
  if (status === 'success') return { delivered: true };
  return { delivered: false, userBlocked: /user\s*block/i.test(status), reason: `wechat ${status}` };
}
