import crypto from 'node:crypto';
import { startFakeHttp, type FakeServer } from './http.ts';

export interface FakeFcm extends FakeServer {
  delivered: { token: string; notification: { title: string; body: string }; data: Record<string, string> }[];
  tokenExchanges: number;
  revokeAccessTokens(): void;
  throttle(n: number): void;
}

/**
 * Google's OAuth token endpoint for service accounts (JWT bearer grant, RS256 checked against the
 * account's public key, scope and audience checked) and FCM HTTP v1 `messages:send`, with its
 * error shape ({error: {code, status, message, details: [{errorCode}]}}): an unknown device token
 * is 404 UNREGISTERED, throttling 429 QUOTA_EXCEEDED, a revoked access token 401.
 */
export async function startFakeFcm(projectId: string, clientEmail: string, publicKey: string, registeredTokens: readonly string[]): Promise<FakeFcm> {
  const delivered: FakeFcm['delivered'] = [];
  let accessTokens = new Set<string>();
  let throttled = 0;
  const state = { tokenExchanges: 0 };
  const fcmError = (code: number, status: string, message: string, errorCode?: string) => ({
    status: code,
    body: { error: { code, status, message, details: errorCode ? [{ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode }] : [] } },
  });
  let tokenUri = '';
  const server = await startFakeHttp((request) => {
    if (request.path === '/token') {
      const form = new URLSearchParams(request.body);
      if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') return { status: 400, body: { error: 'unsupported_grant_type' } };
      const [header, claims, signature] = (form.get('assertion') ?? '').split('.');
      if (!header || !claims || !signature) return { status: 400, body: { error: 'invalid_grant', error_description: 'malformed JWT' } };
      const ok = crypto.verify('RSA-SHA256', Buffer.from(`${header}.${claims}`), publicKey, Buffer.from(signature, 'base64url'));
      const payload = JSON.parse(Buffer.from(claims, 'base64url').toString('utf8')) as { iss: string; scope: string; aud: string; exp: number; iat: number };
      if (!ok || payload.iss !== clientEmail) return { status: 400, body: { error: 'invalid_grant', error_description: 'Invalid JWT Signature.' } };
      if (payload.aud !== tokenUri || !payload.scope.includes('firebase.messaging') || payload.exp - payload.iat > 3600) return { status: 400, body: { error: 'invalid_scope' } };
      const token = `ya29.${crypto.randomBytes(20).toString('hex')}`;
      accessTokens.add(token);
      state.tokenExchanges += 1;
      return { status: 200, body: { access_token: token, expires_in: 3599, token_type: 'Bearer' } };
    }
    if (request.path !== `/v1/projects/${projectId}/messages:send`) return fcmError(404, 'NOT_FOUND', 'Requested entity was not found.');
    const bearer = (request.headers.authorization ?? '').replace(/^Bearer /, '');
    if (!accessTokens.has(bearer)) return fcmError(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.');
    if (throttled > 0) {
      throttled -= 1;
      return { ...fcmError(429, 'RESOURCE_EXHAUSTED', 'Quota exceeded', 'QUOTA_EXCEEDED'), headers: { 'retry-after': '2' } };
    }
    const { message } = JSON.parse(request.body) as { message: { token: string; notification: { title: string; body: string }; data: Record<string, string> } };
    if (!registeredTokens.includes(message.token)) return fcmError(404, 'NOT_FOUND', 'Requested entity was not found.', 'UNREGISTERED');
    if (Object.values(message.data ?? {}).some((v) => typeof v !== 'string')) return fcmError(400, 'INVALID_ARGUMENT', 'data values must be strings', 'INVALID_ARGUMENT');
    delivered.push(message);
    return { status: 200, body: { name: `projects/${projectId}/messages/${crypto.randomInt(1e12)}` } };
  });
  tokenUri = `${server.url}/token`;
  return {
    ...server,
    delivered,
    get tokenExchanges() {
      return state.tokenExchanges;
    },
    revokeAccessTokens: () => (accessTokens = new Set()),
    throttle: (n) => (throttled = n),
  };
}
