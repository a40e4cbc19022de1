import crypto from 'node:crypto';
import { networkFailure, str, type ProviderAdapter } from './types.ts';

const DEFAULT_ENDPOINT = 'https://dysmsapi.aliyuncs.com';

/** RFC 3986 encoding as Alibaba Cloud's RPC signature wants it. */
export function aliyunEncode(value: string): string {
  return encodeURIComponent(value).replace(/\+/g, '%20').replace(/\*/g, '%2A').replace(/%7E/g, '~').replace(/[!'()]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * Alibaba Cloud RPC signature v1: HMAC-SHA1 with `<AccessKeySecret>&` over
 * `<METHOD>&%2F&<encoded canonical query>`, the canonical query being every parameter but
 * Signature, sorted, encoded, joined with &.
 */
export function aliyunSignature(method: string, params: Record<string, string>, accessKeySecret: string): string {
  const canonical = Object.keys(params)
    .filter((name) => name !== 'Signature')
    .sort()
    .map((name) => `${aliyunEncode(name)}=${aliyunEncode(params[name]!)}`)
    .join('&');
  const stringToSign = `${method}&${aliyunEncode('/')}&${aliyunEncode(canonical)}`;
  return crypto.createHmac('sha1', `${accessKeySecret}&`).update(stringToSign, 'utf8').digest('base64');
}

// Codes that retry: flow control and the provider's own faults.
const RETRYABLE = new Set(['isv.BUSINESS_LIMIT_CONTROL', 'Throttling', 'Throttling.User', 'isp.SYSTEM_ERROR', 'isp.RAM_PERMISSION_DENY_TEMP', 'ServiceUnavailable']);
const INVALID_RECIPIENT = new Set(['isv.MOBILE_NUMBER_ILLEGAL', 'isv.MOBILE_COUNT_OVER_LIMIT', 'isv.BLACK_KEY_CONTROL_LIMIT']);

/**
 * Aliyun SMS SendSms (RPC style, signed POST form). Content is the provider-side template
 * (`provider_template`) with `param.<name>` values; `OutId` carries our message id so the
 * delivery report (SmsReport) names it. Aliyun does not deduplicate on OutId: not idempotent.
 */
export const aliyunAdapter: ProviderAdapter = {
  idempotent: false,
  async send(account, message, context) {
    const templateParam: Record<string, string> = {};
    for (const [field, value] of Object.entries(message.fields)) if (field.startsWith('param.')) templateParam[field.slice(6)] = value;
    const params: Record<string, string> = {
      Action: 'SendSms',
      Version: '2017-05-25',
      Format: 'JSON',
      AccessKeyId: str(account.settings.accessKeyId),
      SignatureMethod: 'HMAC-SHA1',
      SignatureVersion: '1.0',
      SignatureNonce: crypto.randomUUID(),
      Timestamp: context.now().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      RegionId: str(account.settings.region, 'cn-hangzhou'),
      PhoneNumbers: message.address.replace(/^\+86/, ''),
      SignName: str(account.settings.signName),
      TemplateCode: message.fields.provider_template ?? str(account.settings.templateCode),
      TemplateParam: JSON.stringify(templateParam),
      OutId: message.messageId,
    };
    params.Signature = aliyunSignature('POST', params, account.secrets.accessKeySecret ?? '');
    try {
      const response = await context.fetch(`${str(account.settings.endpoint, DEFAULT_ENDPOINT).replace(/\/$/, '')}/`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(params).toString(),
        signal: AbortSignal.timeout(context.timeoutMs),
      });
      const body = (await response.json().catch(() => ({}))) as { Code?: string; Message?: string; BizId?: string };
      if (body.Code === 'OK' && body.BizId) return { ok: true, providerMessageId: body.BizId };
      const code = str(body.Code, `HTTP ${response.status}`);
      const reason = `aliyun ${code}: ${str(body.Message, 'no message')}`;
      if (RETRYABLE.has(code) || response.status >= 500) return { ok: false, retryable: true, reason };
      return { ok: false, retryable: false, reason, invalidRecipient: INVALID_RECIPIENT.has(code) };
    } catch (error) {
      return networkFailure(error);
    }
  },
};
