import type { ChannelAccount } from '../accounts.ts';
import type { TemplateFields } from '../templates.ts';

/** One rendered message on its way to a provider. */
export interface OutgoingMessage {
  workspaceId: string;
  messageId: string;
  profileId: string;
  templateKey: string;
  address: string;
  fields: TemplateFields;
  /** One-click unsubscribe (List-Unsubscribe) and the preference page, for marketing email. */
  unsubscribeUrl?: string;
  /** Where the provider reports delivery for this message (Twilio StatusCallback …). */
  callbackUrl?: string;
}

export type SendOutcome =
  | { ok: true; providerMessageId: string }
  | {
      ok: false;
      /** Retry later (rate limit, provider outage, network); otherwise the message fails for good. */
      retryable: boolean;
      reason: string;
      /** The address can never receive (unknown number, unregistered token): suppress it. */
      invalidRecipient?: boolean;
      retryAfterMs?: number;
    };

export interface ProviderContext {
  fetch: typeof fetch;
  now: () => Date;
  timeoutMs: number;
}

export interface ProviderAdapter {
  send(account: ChannelAccount, message: OutgoingMessage, context: ProviderContext): Promise<SendOutcome>;
  /**
   * Whether sending the same message again after a crash cannot deliver it twice (the provider
   * deduplicates on our idempotency key). When false, a send whose outcome is unknown is not
   * repeated; it goes to the dead letters as outcome_unknown unless a receipt settles it.
   */
  idempotent: boolean;
}

/** Reads a fetch failure (timeout, refused) as a retryable outcome. */
export function networkFailure(error: unknown): SendOutcome {
  const message = error instanceof Error ? error.message : String(error);
  return { ok: false, retryable: true, reason: `network: ${message}` };
}

export function retryAfter(header: string | null): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
}

/** HTTP status classes shared by the JSON APIs: 429 and 5xx retry, other 4xx are final. */
export function statusOutcome(status: number, reason: string, retryAfterMs?: number): SendOutcome {
  return { ok: false, retryable: status === 429 || status >= 500, reason, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
}

export const str = (value: unknown, fallback = ''): string => (value === undefined || value === null ? fallback : String(value));
