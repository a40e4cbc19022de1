import crypto from 'node:crypto';
import { startFakeHttp, type FakeServer } from './http.ts';

export interface FakeAliyun extends FakeServer {
  sent: { phone: string; signName: string; templateCode: string; templateParam: Record<string, string>; outId: string; bizId: string }[];
  /** The next n SendSms calls hit flow control (isv.BUSINESS_LIMIT_CONTROL). */
  throttle(n: number): void;
}

const encode = (value: string) =>
  encodeURIComponent(value).replace(/\+/g, '%20').replace(/\*/g, '%2A').replace(/%7E/g, '~').replace(/[!'()]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/**
 * Aliyun SMS (dysmsapi 2017-05-25) SendSms: checks the RPC signature v1 independently of the
 * adapter's code, the nonce (replays refused), the timestamp format and the parameters; answers
 * like the service: {Code, Message, BizId, RequestId}. Number 10000000000 is illegal.
 */
export async function startFakeAliyun(accessKeyId: string, accessKeySecret: string): Promise<FakeAliyun> {
  const sent: FakeAliyun['sent'] = [];
  const nonces = new Set<string>();
  let throttled = 0;
  const answer = (Code: string, Message: string, status = 200) => ({ status, body: { Code, Message, RequestId: crypto.randomUUID().toUpperCase() } });
  const server = await startFakeHttp((request) => {
    const params = Object.fromEntries(new URLSearchParams(request.body));
    if (params.Action !== 'SendSms' || params.Version !== '2017-05-25') return answer('InvalidAction.NotFound', 'Specified api is not found', 404);
    if (params.AccessKeyId !== accessKeyId) return answer('InvalidAccessKeyId.NotFound', 'Specified access key is not found.', 404);
    const canonical = Object.keys(params)
      .filter((k) => k !== 'Signature')
      .sort()
      .map((k) => `${encode(k)}=${encode(params[k]!)}`)
      .join('&');
    const expected = crypto.createHmac('sha1', `${accessKeySecret}&`).update(`${request.method}&%2F&${encode(canonical)}`).digest('base64');
    if (params.Signature !== expected) return answer('SignatureDoesNotMatch', 'Specified signature is not matched with our calculation.', 400);
    if (!params.SignatureNonce || nonces.has(params.SignatureNonce)) return answer('SignatureNonceUsed', 'Specified signature nonce was used already.', 400);
    nonces.add(params.SignatureNonce);
    if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/.test(params.Timestamp ?? '')) return answer('InvalidTimeStamp.Format', 'Specified time stamp or date value is not well formatted.', 400);
    if (throttled > 0) {
      throttled -= 1;
      return answer('isv.BUSINESS_LIMIT_CONTROL', '触发分钟级流控Permits:1');
    }
    if (!/^1\d{10}$/.test(params.PhoneNumbers ?? '') || params.PhoneNumbers === '10000000000') return answer('isv.MOBILE_NUMBER_ILLEGAL', '非法手机号');
    if (!params.SignName) return answer('isv.SMS_SIGNATURE_ILLEGAL', '签名不合法');
    if (!params.TemplateCode?.startsWith('SMS_')) return answer('isv.SMS_TEMPLATE_ILLEGAL', '模板不合法');
    const bizId = `${Date.now()}^${crypto.randomInt(1e9)}`;
    sent.push({ phone: params.PhoneNumbers!, signName: params.SignName, templateCode: params.TemplateCode, templateParam: JSON.parse(params.TemplateParam ?? '{}'), outId: params.OutId ?? '', bizId });
    return { status: 200, body: { Code: 'OK', Message: 'OK', BizId: bizId, RequestId: crypto.randomUUID().toUpperCase() } };
  });
  return { ...server, sent, throttle: (n) => (throttled = n) };
}
