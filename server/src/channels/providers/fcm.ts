import crypto from 'node:crypto';
import { accessToken, dropToken, TokenError } from './tokens.ts';
import { networkFailure, retryAfter, str, type ProviderAdapter } from './types.ts';

const SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';
const DEFAULT_TOKEN_URI = 'https://oauth2.googleapis.com/token';
const DEFAULT_BASE = 'https://fcm.googleapis.com';

const base64url = (value: string | Buffer) => Buffer.from(value).toString('base64url');

/** The service account's signed JWT (RS256) exchanged for an OAuth access token. */
export function serviceAccountAssertion(clientEmail: string, privateKey: string, tokenUri: string, nowMs: number): string {
  const iat = Math.floor(nowMs / 1000);
  const header = base64url(JSON.stringify({ alg: 'RS256', typ: 'JWT' }));
  const claims = base64url(JSON.stringify({ iss: clientEmail, scope: SCOPE, aud: tokenUri, iat, exp: iat + 3600 }));
  const signature = crypto.sign('RSA-SHA256', Buffer.from(`${header}.${claims}`), privateKey);
  return `${header}.${claims}.${base64url(signature)}`;
}

/**
 * App push through FCM HTTP v1 (projects/<id>/messages:send) with a service-account OAuth
 * token, cached and refreshed on 401. UNREGISTERED / invalid tokens are invalid recipients.
 */
export const fcmAdapter: ProviderAdapter = {
  idempotent: false,
  async send(account, message, context) {
    const tokenUri = str(account.settings.tokenUri, DEFAULT_TOKEN_URI);
    const base = str(account.settings.baseUrl, DEFAULT_BASE).replace(/\/$/, '');
    const cacheKey = `fcm/${account.workspaceId}/${account.key}/${tokenUri}`;
    const fetchToken = async () => {
      const assertion = serviceAccountAssertion(str(account.settings.clientEmail), account.secrets.privateKey ?? '', tokenUri, context.now().getTime());
      const response = await context.fetch(tokenUri, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion }).toString(),
        signal: AbortSignal.timeout(context.timeoutMs),
      });
      const body = (await response.json().catch(() => ({}))) as { access_token?: string; expires_in?: number; error?: string };
      if (!response.ok || !body.access_token) throw new TokenError(`fcm oauth ${response.status}: ${str(body.error)}`, response.status >= 500 || response.status === 429);
      return { token: body.access_token, expiresInSeconds: body.expires_in ?? 3600 };
    };
    const data: Record<string, string> = { touchpoint_message_id: message.messageId };
    for (const [field, value] of Object.entries(message.fields)) if (field.startsWith('data.')) data[field.slice(5)] = value;
    const payload = JSON.stringify({
      message: { token: message.address, notification: { title: message.fields.title ?? '', body: message.fields.body ?? '' }, data },
    });
    try {
      for (let attempt = 0; attempt < 2; attempt += 1) {
        const token = await accessToken(cacheKey, context.now().getTime(), fetchToken);
        const response = await context.fetch(`${base}/v1/projects/${encodeURIComponent(str(account.settings.projectId))}/messages:send`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: payload,
          signal: AbortSignal.timeout(context.timeoutMs),
        });
        const body = (await response.json().catch(() => ({}))) as {
          name?: string;
          error?: { status?: string; message?: string; details?: { errorCode?: string }[] };
        };
        if (response.ok && body.name) return { ok: true, providerMessageId: body.name };
        if (response.status === 401 && attempt === 0) {
          dropToken(cacheKey, token);
          continue;
        }
        const errorCode = body.error?.details?.find((d) => d.errorCode)?.errorCode ?? body.error?.status ?? `HTTP ${response.status}`;
        const reason = `fcm ${response.status} ${errorCode}: ${str(body.error?.message)}`;
        if (response.status === 429 || response.status >= 500 || errorCode === 'QUOTA_EXCEEDED' || errorCode === 'UNAVAILABLE') {
          const wait = retryAfter(response.headers.get('retry-after'));
          return { ok: false, retryable: true, reason, ...(wait !== undefined ? { retryAfterMs: wait } : {}) };
        }
        return { ok: false, retryable: false, reason, invalidRecipient: errorCode === 'UNREGISTERED' || (errorCode === 'INVALID_ARGUMENT' && response.status === 400 && /token/i.test(str(body.error?.message))) };
      }
      return { ok: false, retryable: true, reason: 'fcm: the access token was refused twice' };
    } catch (error) {
      if (error instanceof TokenError) return { ok: false, retryable: error.retryable, reason: error.message };
      return networkFailure(error);
    }
  },
};
