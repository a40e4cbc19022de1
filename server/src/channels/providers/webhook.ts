import { signatureHeader, SIGNATURE_HEADER } from '../../activation/webhook.ts';
import { networkFailure, retryAfter, statusOutcome, str, type ProviderAdapter } from './types.ts';

/**
 * A signed JSON POST per message (the activation webhooks' signature: `t=…,v1=HMAC-SHA256`). The
 * message id travels as `Idempotency-Key`, so a receiver that honours it makes a resend after a
 * crash harmless: this adapter counts as idempotent.
 */
export const webhookAdapter: ProviderAdapter = {
  idempotent: true,
  async send(account, message, context) {
    let body: unknown = message.fields.body;
    try {
      body = JSON.parse(str(message.fields.body));
    } catch {
      // Not JSON: sent as the rendered text.
    }
    const payload = JSON.stringify({ messageId: message.messageId, profileId: message.profileId, templateKey: message.templateKey, body });
    const unix = Math.floor(context.now().getTime() / 1000);
    try {
      const response = await context.fetch(str(account.settings.url), {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'idempotency-key': message.messageId,
          [SIGNATURE_HEADER]: signatureHeader(account.secrets.signingSecret ?? '', payload, unix),
        },
        body: payload,
        signal: AbortSignal.timeout(context.timeoutMs),
      });
      await response.arrayBuffer().catch(() => undefined);
      if (response.ok) return { ok: true, providerMessageId: response.headers.get('x-request-id') ?? message.messageId };
      return statusOutcome(response.status, `webhook answered ${response.status}`, retryAfter(response.headers.get('retry-after')));
    } catch (error) {
      return networkFailure(error);
    }
  },
};
