import crypto from 'node:crypto';
import { startFakeHttp, type FakeServer } from './http.ts';

export interface FakeWeixin extends FakeServer {
  delivered: { touser: string; body: Record<string, unknown> }[];
  tokensIssued: number;
  /** Invalidates every issued token (as when another process fetched a new one): the next send gets 40001. */
  expireTokens(): void;
  /** The next n sends answer 45009 (API frequency limit). */
  throttle(n: number): void;
}

/**
 * The WeChat official-account API (`/cgi-bin/token`, `/cgi-bin/message/template/send`) or, with
 * `kind: 'wecom'`, WeCom's (`/cgi-bin/gettoken`, `/cgi-bin/message/send`): tokens issued per
 * credential, errcode/errmsg answers, 40001 for an invalid token, 40003 for an unknown openid
 * (WeCom: `invaliduser`), 45009 for frequency limits.
 */
export async function startFakeWeixin(kind: 'wechat' | 'wecom', id: string, secret: string, knownUsers: readonly string[]): Promise<FakeWeixin> {
  const delivered: FakeWeixin['delivered'] = [];
  let valid = new Set<string>();
  let throttled = 0;
  let msgid = 1000;
  const state = { tokensIssued: 0 };
  const server = await startFakeHttp((request) => {
    const tokenPath = kind === 'wechat' ? '/cgi-bin/token' : '/cgi-bin/gettoken';
    if (request.path === tokenPath) {
      const givenId = kind === 'wechat' ? request.query.get('appid') : request.query.get('corpid');
      const givenSecret = kind === 'wechat' ? request.query.get('secret') : request.query.get('corpsecret');
      if (kind === 'wechat' && request.query.get('grant_type') !== 'client_credential') return { status: 200, body: { errcode: 40002, errmsg: 'invalid grant_type' } };
      if (givenId !== id || givenSecret !== secret) return { status: 200, body: { errcode: kind === 'wechat' ? 40125 : 40001, errmsg: 'invalid appsecret' } };
      const token = crypto.randomBytes(24).toString('hex');
      valid.add(token);
      state.tokensIssued += 1;
      return { status: 200, body: kind === 'wechat' ? { access_token: token, expires_in: 7200 } : { errcode: 0, errmsg: 'ok', access_token: token, expires_in: 7200 } };
    }
    const sendPath = kind === 'wechat' ? '/cgi-bin/message/template/send' : '/cgi-bin/message/send';
    if (request.path !== sendPath || request.method !== 'POST') return { status: 404, body: 'not found' };
    if (!valid.has(request.query.get('access_token') ?? '')) return { status: 200, body: { errcode: 40001, errmsg: 'invalid credential, access_token is invalid or not latest' } };
    if (throttled > 0) {
      throttled -= 1;
      return { status: 200, body: { errcode: 45009, errmsg: 'reach max api daily quota limit' } };
    }
    const body = JSON.parse(request.body) as Record<string, unknown>;
    const touser = String(body.touser);
    if (kind === 'wechat') {
      if (!body.template_id) return { status: 200, body: { errcode: 40037, errmsg: 'invalid template_id' } };
      if (!knownUsers.includes(touser)) return { status: 200, body: { errcode: 40003, errmsg: 'invalid openid' } };
      delivered.push({ touser, body });
      return { status: 200, body: { errcode: 0, errmsg: 'ok', msgid: (msgid += 1) } };
    }
    if (body.msgtype !== 'text' || typeof body.agentid !== 'number') return { status: 200, body: { errcode: 40008, errmsg: 'invalid message type' } };
    const users = touser.split('|');
    const invalid = users.filter((u) => !knownUsers.includes(u));
    if (invalid.length === users.length) return { status: 200, body: { errcode: 81013, errmsg: 'user & party & tag all invalid', invaliduser: invalid.join('|') } };
    delivered.push({ touser, body });
    return { status: 200, body: { errcode: 0, errmsg: 'ok', invaliduser: invalid.join('|'), msgid: `msg${(msgid += 1)}` } };
  });
  return {
    ...server,
    delivered,
    get tokensIssued() {
      return state.tokensIssued;
    },
    expireTokens: () => (valid = new Set()),
    throttle: (n) => (throttled = n),
  };
}

/**
 * The push WeChat makes to an official account's server URL when a template message job ends
 * (plain-text mode): XML with CDATA fields, signed in the query string with SHA-1 of the sorted
 * server token, timestamp and nonce. Returns what to POST (query string and body).
 */
export function templateSendJobFinish(
  serverToken: string,
  push: { account: string; openid: string; msgid: number | string; status: 'success' | 'failed:user block' | 'failed: system failed'; at: Date },
): { query: string; body: string } {
  const timestamp = String(Math.floor(push.at.getTime() / 1000));
  const nonce = String(crypto.randomInt(1e9));
  const signature = crypto.createHash('sha1').update([serverToken, timestamp, nonce].sort().join('')).digest('hex');
  const body = `<xml>
<ToUserName><![CDATA[${push.account}]]></ToUserName>
<FromUserName><![CDATA[${push.openid}]]></FromUserName>
<CreateTime>${timestamp}</CreateTime>
<MsgType><![CDATA[event]]></MsgType>
<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event>
<MsgID>${push.msgid}</MsgID>
<Status><![CDATA[${push.status}]]></Status>
</xml>`;
  return { query: new URLSearchParams({ signature, timestamp, nonce, openid: push.openid }).toString(), body };
}
