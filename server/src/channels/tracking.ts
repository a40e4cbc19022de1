import crypto from 'node:crypto';

/*
 * Tracking links, pure: signed tokens naming (workspace, message), click redirects whose target
 * is signed too (no open redirect), the open pixel, and unsubscribe/preference/callback URLs.
 */

export interface TrackingRef {
  workspaceId: string;
  /** A message id, or for account callbacks `account:<key>`. */
  subject: string;
}

export function trackingKey(secretsKey: Buffer): Buffer {
  return crypto.createHmac('sha256', secretsKey).update('touchpoint tracking v1').digest();
}

const mac = (key: Buffer, text: string) => crypto.createHmac('sha256', key).update(text).digest().subarray(0, 16).toString('base64url');

export function signRef(key: Buffer, ref: TrackingRef): string {
  const body = Buffer.from(`${ref.workspaceId}|${ref.subject}`).toString('base64url');
  return `${body}.${mac(key, body)}`;
}

export function readRef(key: Buffer, token: string): TrackingRef | undefined {
  const [body, signature, extra] = token.split('.');
  if (!body || !signature || extra !== undefined) return undefined;
  const expected = Buffer.from(mac(key, body));
  const given = Buffer.from(signature);
  if (expected.length !== given.length || !crypto.timingSafeEqual(expected, given)) return undefined;
  const [workspaceId, subject] = Buffer.from(body, 'base64url').toString('utf8').split('|');
  return workspaceId && subject ? { workspaceId, subject } : undefined;
}

export function signUrl(key: Buffer, token: string, url: string): string {
  return mac(key, `${token}\u0000${url}`);
}

export function verifyUrl(key: Buffer, token: string, url: string, signature: string): boolean {
  const expected = Buffer.from(signUrl(key, token, url));
  const given = Buffer.from(signature);
  return expected.length === given.length && crypto.timingSafeEqual(expected, given);
}

export interface MessageLinks {
  unsubscribeUrl: string;
  preferencesUrl: string;
  openPixelUrl: string;
  clickUrl(target: string): string;
  callbackUrl(provider: string): string;
}

export function messageLinks(key: Buffer, publicUrl: string, workspaceId: string, messageId: string): MessageLinks {
  const base = publicUrl.replace(/\/$/, '');
  const token = signRef(key, { workspaceId, subject: messageId });
  return {
    unsubscribeUrl: `${base}/t/u/${token}`,
    preferencesUrl: `${base}/t/p/${token}`,
    openPixelUrl: `${base}/t/o/${token}.gif`,
    clickUrl: (target) => `${base}/t/c/${token}?u=${encodeURIComponent(target)}&s=${signUrl(key, token, target)}`,
    callbackUrl: (provider) => `${base}/v1/channels/callbacks/${provider}/${token}`,
  };
}

/** The callback URL of a whole account (providers that report many messages at once, e.g. Aliyun). */
export function accountCallbackUrl(key: Buffer, publicUrl: string, workspaceId: string, accountKey: string, provider: string): string {
  return `${publicUrl.replace(/\/$/, '')}/v1/channels/callbacks/${provider}/${signRef(key, { workspaceId, subject: `account:${accountKey}` })}`;
}

/**
 * Rewrites http(s) links of an HTML body through the click redirect (mailto:, tel:, anchors and
 * the unsubscribe links stay) and appends the open pixel.
 */
export function trackHtml(html: string, links: MessageLinks): string {
  const rewritten = html.replace(/(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?:\/\/[^"']+)\2/gi, (whole, prefix: string, quote: string, url: string) => {
    const target = url.replace(/&amp;/g, '&');
    if (target === links.unsubscribeUrl || target === links.preferencesUrl) return whole;
    return `${prefix}${quote}${links.clickUrl(target).replace(/&/g, '&amp;')}${quote}`;
  });
  const pixel = `<img src="${links.openPixelUrl}" width="1" height="1" alt="" style="display:none">`;
  return /<\/body>/i.test(rewritten) ? rewritten.replace(/<\/body>/i, `${pixel}</body>`) : rewritten + pixel;
}

/** A 1×1 transparent GIF. */
export const PIXEL_GIF = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64');
