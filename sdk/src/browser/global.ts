import { init, type BrowserClient, type BrowserOptions } from './index.ts';

/**
 * The single-file build (`/sdk/touchpoint.js`) exposes `window.touchpoint`. Calls made before
 * `init` are kept and replayed once it runs. With `data-write-key` on its script tag the SDK
 * starts itself, talking to the server it was loaded from.
 */
type Method = Exclude<keyof BrowserClient, 'writeKey' | 'host'>;
const METHODS: Method[] = ['track', 'page', 'screen', 'identify', 'group', 'alias', 'reset', 'setConsent', 'flush'];

interface GlobalTouchpoint {
  init(options: BrowserOptions): BrowserClient;
  client: BrowserClient | null;
  [method: string]: unknown;
}

const pending: Array<[Method, unknown[]]> = [];
const touchpoint: GlobalTouchpoint = {
  client: null,
  init(options) {
    if (touchpoint.client) return touchpoint.client;
    const client = init(options);
    touchpoint.client = client;
    Object.assign(touchpoint, client, {
      // Members a plugin adds show up on window.touchpoint too.
      use: (plugin: Parameters<BrowserClient['use']>[0]) => Object.assign(touchpoint, client.use(plugin)),
    });
    for (const [method, args] of pending.splice(0)) (client[method] as (...a: unknown[]) => unknown)(...args);
    return client;
  },
};
for (const method of METHODS) touchpoint[method] = (...args: unknown[]) => void pending.push([method, args]);

(window as unknown as { touchpoint: GlobalTouchpoint }).touchpoint = touchpoint;

const script = document.currentScript as HTMLScriptElement | null;
const writeKey = script?.getAttribute('data-write-key');
if (script && writeKey) {
  touchpoint.init({
    writeKey,
    host: script.getAttribute('data-host') ?? new URL(script.src).origin,
    trackClicks: script.hasAttribute('data-track-clicks'),
    // Absent: the workspace's setting decides. Present: required (`="false"` to override the workspace).
    requireConsent: script.hasAttribute('data-require-consent') ? script.getAttribute('data-require-consent') !== 'false' : undefined,
    consentCategories: script.getAttribute('data-consent-categories')?.split(',').map((category) => category.trim()).filter(Boolean),
  });
}
