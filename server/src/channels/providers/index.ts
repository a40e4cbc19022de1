import { aliyunAdapter } from './aliyun.ts';
import { fcmAdapter } from './fcm.ts';
import { smtpAdapter } from './smtp.ts';
import { twilioAdapter } from './twilio.ts';
import type { ProviderAdapter } from './types.ts';
import { webhookAdapter } from './webhook.ts';
import { wechatAdapter, wecomAdapter } from './wechat.ts';

/** Adapters by account provider name (accounts.ts PROVIDERS). */
export const ADAPTERS: Record<string, ProviderAdapter> = {
  smtp: smtpAdapter,
  twilio: twilioAdapter,
  aliyun: aliyunAdapter,
  wechat: wechatAdapter,
  wecom: wecomAdapter,
  fcm: fcmAdapter,
  webhook: webhookAdapter,
};

export type { ProviderAdapter, OutgoingMessage, SendOutcome } from './types.ts';
