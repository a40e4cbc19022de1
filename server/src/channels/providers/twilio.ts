import crypto from 'node:crypto';
import { networkFailure, retryAfter, str, type ProviderAdapter } from './types.ts';

const DEFAULT_BASE = 'https://api.twilio.com';
// Twilio error codes meaning the number can never receive: invalid To, not a mobile number,
// unsubscribed (STOP), blocked.
const INVALID_RECIPIENT = new Set([21211, 21214, 21614, 21610, 21612]);

/**
 * SMS through Twilio's Messages resource (form-encoded POST with Basic auth). Twilio has no
 * idempotency key for message creation, so a send with an unknown outcome is not repeated; the
 * status callback (its URL carries our message id) settles it.
 */
export const twilioAdapter: ProviderAdapter = {
  idempotent: false,
  async send(account, message, context) {
    const sid = str(account.settings.accountSid);
    const base = str(account.settings.baseUrl, DEFAULT_BASE).replace(/\/$/, '');
    const form = new URLSearchParams({ To: message.address, Body: message.fields.text ?? '' });
    if (account.settings.messagingServiceSid) form.set('MessagingServiceSid', str(account.settings.messagingServiceSid));
    else form.set('From', str(account.settings.from));
    if (message.callbackUrl) form.set('StatusCallback', message.callbackUrl);
    try {
      const response = await context.fetch(`${base}/2010-04-01/Accounts/${encodeURIComponent(sid)}/Messages.json`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${sid}:${account.secrets.authToken ?? ''}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: form.toString(),
        signal: AbortSignal.timeout(context.timeoutMs),
      });
      const body = (await response.json().catch(() => ({}))) as { sid?: string; code?: number; message?: string; status?: string };
      if (response.ok && body.sid) return { ok: true, providerMessageId: body.sid };
      const reason = `twilio ${response.status}${body.code ? ` ${body.code}` : ''}: ${str(body.message, 'no message')}`;
      if (response.status === 429 || body.code === 20429 || response.status >= 500) {
        return { ok: false, retryable: true, reason, ...(retryAfter(response.headers.get('retry-after')) !== undefined ? { retryAfterMs: retryAfter(response.headers.get('retry-after')) } : {}) };
      }
      return { ok: false, retryable: false, reason, invalidRecipient: body.code !== undefined && INVALID_RECIPIENT.has(body.code) };
    } catch (error) {
      return networkFailure(error);
    }
  },
};

/**
 * X-Twilio-Signature: base64 HMAC-SHA1 with the auth token over the full callback URL followed by
 * every POST parameter, sorted by name, as name + value.
 */
export function twilioSignature(authToken: string, url: string, params: Record<string, string>): string {
  const data = Object.keys(params)
    .sort()
    .reduce((text, name) => text + name + params[name], url);
  return crypto.createHmac('sha1', authToken).update(data, 'utf8').digest('base64');
}

export function verifyTwilioSignature(authToken: string, url: string, params: Record<string, string>, header: string | undefined): boolean {
  if (!header) return false;
  const expected = Buffer.from(twilioSignature(authToken, url, params));
  const given = Buffer.from(header);
  return expected.length === given.length && crypto.timingSafeEqual(expected, given);
}

/** Twilio's MessageStatus → ours; intermediate states (queued, sending, accepted) change nothing. */
export function twilioStatus(status: string): 'sent' | 'delivered' | 'failed' | undefined {
  if (status === 'sent') return 'sent';
  if (status === 'delivered' || status === 'read') return 'delivered';
  if (status === 'failed' || status === 'undelivered') return 'failed';
  return undefined;
}
