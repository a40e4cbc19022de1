import crypto from 'node:crypto';
import { startFakeHttp, type FakeServer } from './http.ts';

export interface FakeTwilio extends FakeServer {
  /** Messages accepted, by sid. */
  messages: Map<string, { to: string; from: string; body: string; statusCallback: string | null }>;
  /** The next n create calls answer 429 (error 20429). */
  throttle(n: number): void;
}

/**
 * Twilio's Messages resource as the REST API answers it: Basic auth with the account SID and
 * auth token, form-encoded parameters, 201 with the message resource, errors as
 * {code, message, more_info, status}. Twilio's magic test number +15005550001 is invalid (21211)
 * and +15005550004 is blocked (21610, the recipient replied STOP).
 */
export async function startFakeTwilio(accountSid: string, authToken: string): Promise<FakeTwilio> {
  const messages: FakeTwilio['messages'] = new Map();
  let throttled = 0;
  const error = (status: number, code: number, message: string) => ({ status, body: { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status } });
  const server = await startFakeHttp((request) => {
    const expected = `Basic ${Buffer.from(`${accountSid}:${authToken}`).toString('base64')}`;
    if (request.headers.authorization !== expected) return error(401, 20003, 'Authenticate');
    if (request.method !== 'POST' || request.path !== `/2010-04-01/Accounts/${accountSid}/Messages.json`) return error(404, 20404, 'The requested resource was not found');
    if (throttled > 0) {
      throttled -= 1;
      return { ...error(429, 20429, 'Too Many Requests'), headers: { 'retry-after': '1' } };
    }
    const form = new URLSearchParams(request.body);
    const to = form.get('To') ?? '';
    if (!form.get('Body')) return error(400, 21602, 'Message body is required.');
    if (!form.get('From') && !form.get('MessagingServiceSid')) return error(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required.");
    if (!/^\+[1-9]\d{6,14}$/.test(to) || to === '+15005550001') return error(400, 21211, `The 'To' number ${to} is not a valid phone number.`);
    if (to === '+15005550004') return error(400, 21610, 'Attempt to send to unsubscribed recipient');
    const sid = `SM${crypto.randomBytes(16).toString('hex')}`;
    messages.set(sid, { to, from: form.get('From') ?? '', body: form.get('Body') ?? '', statusCallback: form.get('StatusCallback') });
    return { status: 201, body: { sid, account_sid: accountSid, to, from: form.get('From'), body: form.get('Body'), status: 'queued', num_segments: '1', error_code: null } };
  });
  return { ...server, messages, throttle: (n) => (throttled = n) };
}
