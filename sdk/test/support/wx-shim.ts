import type { AppOptions, LaunchOptions, PageInstance, PageOptions } from '../../src/wechat/client.ts';
import type { Wx, WxNetworkStatus, WxRequestOptions, WxSystemInfo } from '../../src/wechat/wx.ts';

/** What the shim's device stores: shared between two shims, it is the same phone after a restart. */
export type WxDisk = Map<string, string>;

export interface WxShimOptions {
  /** Persistent storage; a new one when absent. */
  disk?: WxDisk;
  system?: WxSystemInfo | (() => WxSystemInfo);
  networkType?: string;
}

export interface SentRequest {
  url: string;
  method: string;
  header: Record<string, string>;
  data: unknown;
}

/**
 * A `wx` that behaves like the real one where the SDK depends on it: wx.request is asynchronous,
 * really sends HTTP (to the test's Touchpoint server), calls success for every HTTP status with
 * statusCode/data/header, fail when offline or over the timeout, then complete; storage keeps
 * strings and objects (as copies) and answers '' for a missing key; the network can go down and
 * up with onNetworkStatusChange listeners told; App/Page lifecycle hooks are driven by the test.
 */
export function createWxShim(options: WxShimOptions = {}) {
  const disk: WxDisk = options.disk ?? new Map();
  let online = true;
  let networkType = options.networkType ?? 'wifi';
  const listeners: Array<(status: WxNetworkStatus) => void> = [];
  const sent: SentRequest[] = [];
  let app: AppOptions | null = null;
  const pages = new Map<string, PageOptions>();
  let current: { instance: PageInstance & PageOptions } | null = null;

  const later = (fn: () => void) => setTimeout(fn, 0);

  async function perform(options: WxRequestOptions) {
    const method = options.method ?? 'GET';
    const header = options.header ?? {};
    sent.push({ url: options.url, method, header, data: options.data });
    if (!online) throw new Error('request:fail net::ERR_INTERNET_DISCONNECTED');
    const body = options.data === undefined || method === 'GET' ? undefined : typeof options.data === 'string' ? options.data : JSON.stringify(options.data);
    const response = await fetch(options.url, {
      method,
      headers: header,
      body,
      signal: AbortSignal.timeout(options.timeout ?? 60_000),
    }).catch((error: Error) => {
      throw new Error(error.name === 'TimeoutError' ? 'request:fail timeout' : `request:fail ${error.message}`);
    });
    const text = await response.text();
    let data: unknown = text;
    try {
      data = JSON.parse(text);
    } catch {
      /* the real wx.request leaves a non-JSON body as a string */
    }
    const headers: Record<string, string> = {};
    // wx keeps the server's header spelling; Fastify's lower-case names are what a real server sends too.
    response.headers.forEach((value, key) => (headers[key] = value));
    return { statusCode: response.status, data, header: headers };
  }

  const wx: Wx = {
    request(options) {
      perform(options).then(
        (result) => later(() => {
          options.success?.(result);
          options.complete?.();
        }),
        (error: Error) => later(() => {
          options.fail?.({ errMsg: error.message });
          options.complete?.();
        }),
      );
      return { abort: () => undefined };
    },
    getStorageSync(key) {
      const stored = disk.get(key);
      return stored === undefined ? '' : (JSON.parse(stored) as unknown);
    },
    setStorageSync(key, value) {
      if (value === undefined) throw new Error('setStorageSync:fail parameter error: data should be defined');
      disk.set(key, JSON.stringify(value));
    },
    removeStorageSync(key) {
      disk.delete(key);
    },
    getSystemInfoSync() {
      const system = options.system ?? { brand: 'Apple', model: 'iPhone 14', system: 'iOS 16.1', platform: 'ios', language: 'zh_CN', version: '8.0.40', SDKVersion: '3.2.0', screenWidth: 390, screenHeight: 844, pixelRatio: 3 };
      return typeof system === 'function' ? system() : { ...system };
    },
    getNetworkType({ success } = {}) {
      later(() => success?.({ networkType: online ? networkType : 'none' }));
    },
    onNetworkStatusChange(listener) {
      listeners.push(listener);
    },
  };

  const hidePage = () => {
    if (!current) return;
    const onHide = current.instance.onHide as ((this: PageInstance) => void) | undefined;
    onHide?.call(current.instance);
  };

  const setNetwork = (isConnected: boolean, type = isConnected ? networkType : 'none') => {
    online = isConnected;
    if (isConnected) networkType = type;
    for (const listener of listeners) listener({ isConnected, networkType: type });
  };

  return {
    wx,
    disk,
    sent,
    goOffline: () => setNetwork(false),
    goOnline: (type?: string) => setNetwork(true, type),
    /** App(options), as the mini-program's app.js calls it. */
    App(options: AppOptions) {
      app = options;
    },
    /** Page(options) for the page at `route`, as its page .js file calls it. */
    Page(route: string, options: PageOptions) {
      pages.set(route, options);
    },
    /** Cold start: the app launches and shows, then its first page loads and shows. */
    launch(launch: LaunchOptions & { path: string }) {
      app?.onLaunch?.call(app, launch);
      app?.onShow?.call(app, launch);
      this.navigateTo(launch.path, launch.query ?? {});
    },
    navigateTo(route: string, query: Record<string, string> = {}) {
      const page = pages.get(route);
      if (!page) throw new Error(`navigateTo:fail page "${route}" is not found`);
      hidePage();
      const instance = { ...page, route, options: query } as PageInstance & PageOptions;
      current = { instance };
      instance.onShow?.call(instance);
    },
    /** The user switches away from WeChat: the page hides, then the app. */
    background() {
      hidePage();
      app?.onHide?.call(app);
    },
    foreground(show: LaunchOptions = {}) {
      app?.onShow?.call(app, show);
      current?.instance.onShow?.call(current.instance);
    },
  };
}
export type WxShim = ReturnType<typeof createWxShim>;
