import nodemailer, { type Transporter } from 'nodemailer';
import type { ChannelAccount } from '../accounts.ts';
import { str, type ProviderAdapter, type SendOutcome } from './types.ts';

// One pooled connection set per account (and its settings): SMTP handshakes are the slow part.
const transports = new Map<string, Transporter>();

function transportFor(account: ChannelAccount, timeoutMs: number): Transporter {
  const id = `${account.workspaceId}/${account.key}/${JSON.stringify(account.settings)}/${account.secrets.user ?? ''}`;
  let transport = transports.get(id);
  if (!transport) {
    const user = account.secrets.user ?? (typeof account.settings.user === 'string' ? account.settings.user : undefined);
    transport = nodemailer.createTransport({
      host: str(account.settings.host),
      port: Number(account.settings.port),
      secure: account.settings.secure === true,
      // Loopback test servers and internal relays often lack a certificate the process trusts.
      ignoreTLS: account.settings.startTls === false,
      pool: true,
      maxConnections: 5,
      connectionTimeout: timeoutMs,
      socketTimeout: timeoutMs,
      ...(user ? { auth: { user, pass: account.secrets.password ?? '' } } : {}),
    });
    transports.set(id, transport);
  }
  return transport;
}

/** Closes pooled connections (worker stop, tests). */
export function closeSmtpTransports(): void {
  for (const transport of transports.values()) transport.close();
  transports.clear();
}

/**
 * Email over SMTP (nodemailer): HTML and text parts, a Message-ID derived from our message id,
 * and for marketing mail List-Unsubscribe with One-Click (RFC 8058). SMTP has no idempotency
 * key, so a send whose outcome was lost is not repeated.
 */
export const smtpAdapter: ProviderAdapter = {
  idempotent: false,
  async send(account, message, context): Promise<SendOutcome> {
    const domain = str(account.settings.from).split('@')[1]?.replace(/>.*$/, '') || 'touchpoint.local';
    try {
      const info = await transportFor(account, context.timeoutMs).sendMail({
        from: str(account.settings.from),
        ...(account.settings.replyTo ? { replyTo: str(account.settings.replyTo) } : {}),
        to: message.address,
        // Bounces go to the return path (the envelope sender): an address whose mail the MTA hands to the bounce callback.
        ...(account.settings.returnPath ? { envelope: { from: str(account.settings.returnPath), to: message.address } } : {}),
        subject: message.fields.subject ?? '',
        ...(message.fields.html !== undefined ? { html: message.fields.html } : {}),
        ...(message.fields.text !== undefined ? { text: message.fields.text } : {}),
        messageId: `<${message.messageId}@${domain}>`,
        headers: {
          'X-Touchpoint-Message-Id': message.messageId,
          ...(message.unsubscribeUrl
            ? { 'List-Unsubscribe': `<${message.unsubscribeUrl}>`, 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' }
            : {}),
        },
      });
      const rejected = (info.rejected ?? []).length > 0;
      if (rejected) return { ok: false, retryable: false, invalidRecipient: true, reason: `smtp rejected the recipient: ${str(info.response)}` };
      return { ok: true, providerMessageId: str(info.messageId, message.messageId) };
    } catch (error) {
      const smtp = error as { responseCode?: number; response?: string; code?: string; message?: string };
      const code = smtp.responseCode;
      if (code !== undefined && code >= 500) {
        // 550/551/553: the mailbox does not exist or is refused for good.
        const invalidRecipient = [550, 551, 553].includes(code) && smtp.code === 'EENVELOPE';
        return { ok: false, retryable: false, invalidRecipient, reason: `smtp ${code}: ${str(smtp.response ?? smtp.message)}` };
      }
      return { ok: false, retryable: true, reason: code ? `smtp ${code}: ${str(smtp.response)}` : `smtp: ${str(smtp.code ?? smtp.message)}` };
    }
  },
};
