/*
 * Email bounces, pure: reads a delivery status notification (RFC 3464 `multipart/report;
 * report-type=delivery-status`, as Postfix, Exim, Sendmail and the big mailbox providers send
 * them) that the MTA handed on as the raw message. What it needs is in plain text whatever the
 * MIME layout: the per-recipient fields (Action, Status, Final-Recipient, Diagnostic-Code) and
 * the returned headers of the original message, where our X-Touchpoint-Message-Id or Message-ID
 * names it.
 */

export interface BounceRecipient {
  /** failed, delayed, delivered, relayed, expanded (RFC 3464 §2.3.3). */
  action: string;
  /** The enhanced status code, e.g. 5.1.1. */
  status: string;
  recipient: string | undefined;
  diagnostic: string | undefined;
}

export interface Bounce {
  /** Candidate ids of our message, most specific first. */
  messageIds: string[];
  recipients: BounceRecipient[];
}

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';

/** Unfolds header continuation lines and drops quoted-printable soft breaks. */
function unfold(text: string): string {
  return text.replace(/\r\n/g, '\n').replace(/=\n/g, '').replace(/\n[ \t]+/g, ' ');
}

export function parseBounce(raw: string): Bounce {
  const text = unfold(raw);
  const ids: string[] = [];
  const add = (id: string | undefined) => {
    if (id && !ids.includes(id.toLowerCase())) ids.push(id.toLowerCase());
  };
  for (const match of text.matchAll(new RegExp(`^X-Touchpoint-Message-Id:\\s*(${UUID})`, 'gim'))) add(match[1]);
  for (const match of text.matchAll(new RegExp(`^(?:Original-)?Message-ID:\\s*<(${UUID})@`, 'gim'))) add(match[1]);

  // Per-recipient groups: the blocks of `Name: value` lines that carry an Action.
  const recipients: BounceRecipient[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    const field = (name: string) => new RegExp(`^${name}:\\s*(.+)$`, 'im').exec(block)?.[1]?.trim();
    const action = field('Action');
    const status = field('Status');
    if (!action || !status) continue;
    const recipient = (field('Final-Recipient') ?? field('Original-Recipient'))?.replace(/^rfc822\s*;\s*/i, '').replace(/^<|>$/g, '');
    recipients.push({ action: action.toLowerCase(), status: /^\d\.\d{1,3}\.\d{1,3}/.exec(status)?.[0] ?? status, recipient, diagnostic: field('Diagnostic-Code') });
  }
  return { messageIds: ids, recipients };
}

/** A permanent failure (5.x.x): the address is suppressed. A 4.x.x `failed` gave up on a temporary fault. */
export function isHardBounce(recipient: BounceRecipient): boolean {
  return recipient.action === 'failed' && recipient.status.startsWith('5.');
}
