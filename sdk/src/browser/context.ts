import type { KeyValueStorage, Message, Properties } from '../core/index.ts';

export interface PageFields {
  path: string;
  referrer: string;
  search: string;
  title: string;
  url: string;
}

const UTM: Record<string, string> = { utm_source: 'source', utm_medium: 'medium', utm_campaign: 'name', utm_term: 'term', utm_content: 'content' };

/** Segment's `context.campaign` from the UTM parameters of a query string. */
export function campaignFrom(search: string): Properties | undefined {
  const campaign: Properties = {};
  new URLSearchParams(search).forEach((value, key) => {
    const field = UTM[key.toLowerCase()];
    if (field) campaign[field] = value;
  });
  return Object.keys(campaign).length > 0 ? campaign : undefined;
}

/** The page as the user sees it now; `referrer` is the previous SPA route once the app navigated. */
export function currentPage(referrer: string): PageFields {
  return {
    path: location.pathname,
    referrer,
    search: location.search,
    title: document.title,
    url: location.href.split('#')[0]!,
  };
}

export function browserContext(page: PageFields): Properties {
  const context: Properties = {
    page,
    locale: navigator.language,
    userAgent: navigator.userAgent,
    screen: { width: screen.width, height: screen.height, density: window.devicePixelRatio },
  };
  try {
    context.timezone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch {
    // Intl without time zones: leave it out.
  }
  const campaign = campaignFrom(page.search);
  if (campaign) context.campaign = campaign;
  return context;
}

export const SESSION_KEY = 'tp_session';

/**
 * `context.sessionId`: the session's start time in epoch milliseconds (the convention of
 * Segment's Amplitude destination). A session ends after `timeoutMs` without any message; it is
 * kept in storage, so it spans reloads and tabs of the same site.
 */
export function sessionEnricher(storage: KeyValueStorage, timeoutMs: number, now: () => number = Date.now) {
  return (message: Message): Message => {
    const at = now();
    let session: { id: number; last: number } | null = null;
    try {
      session = JSON.parse(storage.get(SESSION_KEY) ?? 'null') as { id: number; last: number } | null;
    } catch {
      session = null;
    }
    if (!session || at - session.last > timeoutMs) session = { id: at, last: at };
    session.last = at;
    storage.set(SESSION_KEY, JSON.stringify(session));
    message.context.sessionId = session.id;
    return message;
  };
}
