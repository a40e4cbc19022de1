import { createClient, type Client, type ClientOptions, type MessageOptions, type Properties } from '../core/index.ts';
import { browserContext, currentPage, sessionEnricher, type PageFields } from './context.ts';
import { browserStorage } from './storage.ts';
import { browserSettings, browserTransport } from './transport.ts';

export interface BrowserOptions extends Omit<ClientOptions, 'transport' | 'storage' | 'context' | 'enrich' | 'loadSettings'> {
  /** A page view on init and on every SPA route change (history API, back/forward). Default true. */
  trackPages?: boolean;
  /** Track clicks on elements with `data-tp-track="Event Name"` (properties from `data-tp-prop-*`). Default false. */
  trackClicks?: boolean;
  /** Cookie domain for the anonymous id, e.g. `.example.com` to share it across subdomains. */
  cookieDomain?: string;
  /** Inactivity that ends a session; default 30 minutes. */
  sessionTimeoutMs?: number;
}

export interface BrowserClient extends Client {
  /** Page view of the current location; page fields go to both `properties` and `context.page`. */
  page(name?: string, properties?: Properties, options?: MessageOptions): void;
  /**
   * Extension point (personalisation helpers and other add-ons): the plugin receives this client
   * and its returned members are added to it.
   */
  use<T extends object>(plugin: (client: BrowserClient) => T): BrowserClient & T;
  /** Removes listeners and history patches (tests, micro-frontends unmounting). */
  close(): void;
}

/** Starts tracking in the browser. */
export function init(options: BrowserOptions): BrowserClient {
  const storage = browserStorage(options.cookieDomain);
  let referrer = document.referrer;
  let page: PageFields = currentPage(referrer);
  const client = createClient({
    ...options,
    transport: browserTransport(),
    loadSettings: browserSettings(options.host, options.writeKey),
    storage,
    context: () => browserContext(page),
    enrich: sessionEnricher(storage, options.sessionTimeoutMs ?? 30 * 60 * 1000),
  });
  const cleanups: Array<() => void> = [];
  const listen = (target: EventTarget, type: string, handler: (event: Event) => void, capture = false) => {
    target.addEventListener(type, handler, capture);
    cleanups.push(() => target.removeEventListener(type, handler, capture));
  };

  const browser: BrowserClient = {
    ...client,
    page(name, properties = {}, callOptions) {
      client.page(name, { ...page, ...properties }, callOptions);
    },
    use(plugin) {
      return Object.assign(browser, plugin(browser));
    },
    close() {
      for (const cleanup of cleanups.splice(0)) cleanup();
      client.close();
    },
  };

  if (options.trackPages !== false) {
    const onRouteChange = () => {
      const next = location.href.split('#')[0]!;
      if (next === page.url) return;
      referrer = page.url;
      page = currentPage(referrer);
      browser.page();
    };
    for (const method of ['pushState', 'replaceState'] as const) {
      const original = history[method];
      // Synchronous, so a page view precedes the events the new route tracks right after navigating.
      history[method] = function (this: History, ...args: Parameters<History['pushState']>) {
        original.apply(this, args);
        onRouteChange();
      };
      cleanups.push(() => (history[method] = original));
    }
    listen(window, 'popstate', onRouteChange);
    browser.page();
  }

  if (options.trackClicks) {
    listen(
      document,
      'click',
      (event) => {
        const element = (event.target as Element | null)?.closest?.('[data-tp-track]');
        if (!element) return;
        const properties: Properties = {};
        for (const attribute of Array.from(element.attributes)) {
          if (attribute.name.startsWith('data-tp-prop-')) properties[attribute.name.slice(13).replace(/-/g, '_')] = attribute.value;
        }
        browser.track(element.getAttribute('data-tp-track')!, properties);
      },
      true,
    );
  }

  // The last chance to deliver: beacons survive the page; the queue stays for the next visit anyway.
  listen(window, 'pagehide', () => client.flushOnUnload());
  listen(document, 'visibilitychange', () => {
    if (document.visibilityState === 'hidden') client.flushOnUnload();
  });
  listen(window, 'online', () => void client.flush());
  // Whatever the previous visit left queued goes now.
  if (client.queued() > 0) void client.flush();

  return browser;
}

export { browserStorage, browserTransport, browserContext };
export type { PageFields };
