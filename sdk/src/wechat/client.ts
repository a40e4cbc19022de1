import { createClient, type Client, type ClientOptions } from '../core/client.ts';
import type { BatchRequest, KeyValueStorage, Properties, SendResult, Transport } from '../core/types.ts';
import { createPersonalizer, type HttpGet, type Personalizer } from '../personalize/personalize.ts';
import { writeKeyAuthorization } from '../personalize/base64.ts';
import { globalWx, type Wx, type WxSystemInfo } from './wx.ts';

export interface WechatClientOptions extends Omit<ClientOptions, 'transport' | 'storage' | 'context' | 'loadSettings'> {
  /** The mini-program's `wx`; the global one when absent. */
  wx?: Wx;
  /** One request's time limit (default 10 s). */
  timeoutMs?: number;
}

export interface WechatIds {
  openid?: string;
  unionid?: string;
}

/** Mini-program App() options; the SDK wraps the lifecycle hooks and passes everything else through. */
export interface AppOptions {
  onLaunch?: (this: unknown, options?: LaunchOptions) => void;
  onShow?: (this: unknown, options?: LaunchOptions) => void;
  onHide?: (this: unknown) => void;
  [key: string]: unknown;
}

export interface LaunchOptions {
  path?: string;
  scene?: number;
  query?: Record<string, string>;
}

/** Page() options; `this.route` is the page path and `this.options` its query when onShow runs. */
export interface PageOptions {
  onShow?: (this: PageInstance) => void;
  [key: string]: unknown;
}
export interface PageInstance {
  route?: string;
  options?: Record<string, string>;
}

export interface WechatClient extends Client, Personalizer {
  /** After wx.login: links the WeChat ids to this visitor (an identify with `wechat_openid`/`wechat_unionid`). */
  setWechatIds(ids: WechatIds): void;
  /** App(wrapApp({...})): Application Opened on launch and on return from the background, Application Backgrounded on hide. */
  wrapApp<T extends AppOptions>(options: T): T;
  /** Page(wrapPage({...})): a screen view named by the page route each time the page shows. */
  wrapPage<T extends PageOptions>(options: T): T;
}

/** wx storage as the core's string storage; values written by older code as objects are read back as JSON. */
export function wxStorage(wx: Wx): KeyValueStorage {
  return {
    get(key) {
      try {
        const value = wx.getStorageSync(key);
        if (value === '' || value === undefined || value === null) return null;
        return typeof value === 'string' ? value : JSON.stringify(value);
      } catch {
        return null;
      }
    },
    set(key, value) {
      // Full storage (10 MB per mini-program) throws; the message is still queued in memory.
      try {
        wx.setStorageSync(key, value);
      } catch {
        /* kept in memory */
      }
    },
    remove(key) {
      try {
        wx.removeStorageSync(key);
      } catch {
        /* nothing to remove */
      }
    },
  };
}

function headerValue(headers: Record<string, string> | undefined, name: string): string | undefined {
  if (!headers) return undefined;
  const found = Object.keys(headers).find((key) => key.toLowerCase() === name);
  return found === undefined ? undefined : headers[found];
}

/** Batches through wx.request: POST JSON with the write key as the Basic username. */
export function wxTransport(wx: Wx, writeKey: string, timeoutMs: number): Transport {
  const authorization = writeKeyAuthorization(writeKey);
  return {
    send(request: BatchRequest): Promise<SendResult> {
      return new Promise((resolve) => {
        wx.request({
          url: request.url,
          method: 'POST',
          data: request.body,
          header: { 'content-type': 'application/json', authorization },
          timeout: timeoutMs,
          success(result) {
            const retryAfter = headerValue(result.header, 'retry-after');
            const seconds = retryAfter !== undefined && /^\d+$/.test(retryAfter.trim()) ? Number(retryAfter) * 1000 : undefined;
            const ok = result.statusCode >= 200 && result.statusCode < 300;
            resolve({ ok, status: result.statusCode, ...(seconds === undefined ? {} : { retryAfterMs: seconds }) });
          },
          fail() {
            resolve({ ok: false, status: 0 });
          },
        });
      });
    },
  };
}

/** GETs for the personalisation helpers through wx.request. */
export function wxGet(wx: Wx): HttpGet {
  return ({ url, headers, timeoutMs }) =>
    new Promise((resolve, reject) => {
      wx.request({
        url,
        method: 'GET',
        header: headers,
        timeout: timeoutMs,
        success: (result) => resolve({ status: result.statusCode, body: result.data }),
        fail: (error) => reject(new Error(error.errMsg)),
      });
    });
}

const CELLULAR = new Set(['2g', '3g', '4g', '5g']);

/** Device context read once; getSystemInfoSync is deprecated in new base libraries and may throw. */
function deviceContext(wx: Wx): Properties {
  let info: WxSystemInfo;
  try {
    info = wx.getSystemInfoSync();
  } catch {
    return {};
  }
  const context: Properties = {};
  if (info.system) {
    const [name, ...version] = info.system.split(' ');
    context.os = { name, version: version.join(' ') };
  } else if (info.platform) context.os = { name: info.platform };
  if (info.brand || info.model) context.device = { manufacturer: info.brand, model: info.model, type: info.platform };
  if (info.screenWidth) context.screen = { width: info.screenWidth, height: info.screenHeight, density: info.pixelRatio };
  if (info.language) context.locale = info.language;
  context.wechat = { version: info.version, sdkVersion: info.SDKVersion };
  return context;
}

const WECHAT_IDS_KEY = 'tp_wechat_ids';

/**
 * The mini-program client: the core client on wx.request and wx storage (so the queue survives
 * restarts), with device and network context, lifecycle wrappers and the WeChat ids.
 */
export function createWechatClient(options: WechatClientOptions): WechatClient {
  const wx = options.wx ?? globalWx();
  if (!wx) throw new TypeError('touchpoint: no wx object; pass { wx } when not running in a mini-program');
  const storage = wxStorage(wx);
  const device = deviceContext(wx);
  let networkType: string | null = null;

  const get = wxGet(wx);
  const client = createClient({
    ...options,
    transport: wxTransport(wx, options.writeKey, options.timeoutMs ?? 10_000),
    loadSettings: async () => {
      const url = `${String(options.host).replace(/\/+$/, '')}/v1/sdk/settings`;
      const answer = await get({ url, headers: { authorization: writeKeyAuthorization(options.writeKey) }, timeoutMs: options.timeoutMs ?? 10_000 });
      if (answer.status !== 200) throw new Error(`touchpoint: settings answered ${answer.status}`);
      return answer.body;
    },
    storage,
    context: () => ({
      ...device,
      ...(networkType === null ? {} : { network: { type: networkType, wifi: networkType === 'wifi', cellular: CELLULAR.has(networkType) } }),
    }),
  });

  try {
    wx.getNetworkType?.({ success: (result) => void (networkType = result.networkType) });
    wx.onNetworkStatusChange?.((status) => {
      networkType = status.networkType;
      // Back online: what waited in storage goes now rather than at the next backoff.
      if (status.isConnected) void client.flush();
    });
  } catch {
    /* network information is optional */
  }
  // Messages persisted by a previous run are sent at once.
  if (client.queued() > 0) void client.flush();

  const personalizer = createPersonalizer({
    writeKey: options.writeKey,
    host: options.host,
    get,
    // Reading a decision sends the visitor's ids: not before the consent gate opens.
    allowed: client.consentGateOpen,
    visitor: () => {
      const user = client.user();
      return { anonymousId: user.anonymousId, userId: user.userId };
    },
  });

  let wentToBackground = false;

  return {
    ...client,
    ...personalizer,
    setWechatIds(ids) {
      const identifiers = { wechat_openid: ids?.openid, wechat_unionid: ids?.unionid };
      if (!identifiers.wechat_openid && !identifiers.wechat_unionid) throw new TypeError('touchpoint: setWechatIds needs an openid or a unionid');
      storage.set(WECHAT_IDS_KEY, JSON.stringify(ids));
      client.identify(null, {}, { identifiers: Object.fromEntries(Object.entries(identifiers).filter(([, value]) => value)) });
    },
    wrapApp(appOptions) {
      const { onLaunch, onShow, onHide } = appOptions;
      return {
        ...appOptions,
        onLaunch(this: unknown, launch?: LaunchOptions) {
          client.track('Application Opened', { from_background: false, path: launch?.path, scene: launch?.scene, query: launch?.query });
          return onLaunch?.call(this, launch);
        },
        onShow(this: unknown, show?: LaunchOptions) {
          // onShow also follows onLaunch at start; only a return from the background is an opening.
          if (wentToBackground) client.track('Application Opened', { from_background: true, path: show?.path, scene: show?.scene });
          wentToBackground = false;
          return onShow?.call(this, show);
        },
        onHide(this: unknown) {
          wentToBackground = true;
          client.track('Application Backgrounded');
          // The mini-program may be destroyed in the background; what is not sent stays in storage.
          void client.flush();
          return onHide?.call(this);
        },
      };
    },
    wrapPage(pageOptions) {
      const { onShow } = pageOptions;
      return {
        ...pageOptions,
        onShow(this: PageInstance) {
          const route = this.route ?? 'unknown';
          client.screen(route, { path: route, query: this.options ?? {} });
          return onShow?.call(this);
        },
      };
    },
  };
}
