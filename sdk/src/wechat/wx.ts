/**
 * The parts of the WeChat mini-program `wx` API the SDK uses, typed as the official
 * documentation describes them (developers.weixin.qq.com/miniprogram/dev/api/).
 */
export interface WxRequestSuccess {
  statusCode: number;
  data: unknown;
  header: Record<string, string>;
}

export interface WxRequestOptions {
  url: string;
  method?: 'GET' | 'POST';
  /** A string is sent as it is; an object is serialised as JSON. */
  data?: string | Record<string, unknown>;
  header?: Record<string, string>;
  /** Milliseconds; a request over it fails with `request:fail timeout`. */
  timeout?: number;
  /** Called for every HTTP answer, whatever its status. */
  success?: (result: WxRequestSuccess) => void;
  /** Called when no HTTP answer came (offline, DNS, timeout, domain not allowed). */
  fail?: (error: { errMsg: string }) => void;
  complete?: () => void;
}

export interface WxSystemInfo {
  brand?: string;
  model?: string;
  pixelRatio?: number;
  screenWidth?: number;
  screenHeight?: number;
  language?: string;
  /** WeChat's version. */
  version?: string;
  /** e.g. `iOS 16.1` or `Android 13`. */
  system?: string;
  /** ios, android, windows, mac, devtools… */
  platform?: string;
  SDKVersion?: string;
}

export interface WxNetworkStatus {
  isConnected: boolean;
  networkType: string;
}

export interface Wx {
  request(options: WxRequestOptions): unknown;
  /** Answers '' for a key never set. */
  getStorageSync(key: string): unknown;
  setStorageSync(key: string, value: unknown): void;
  removeStorageSync(key: string): void;
  getSystemInfoSync(): WxSystemInfo;
  getNetworkType?(options: { success?: (result: { networkType: string }) => void }): void;
  onNetworkStatusChange?(listener: (status: WxNetworkStatus) => void): void;
}

/** The global `wx` of a mini-program, if this code runs in one. */
export function globalWx(): Wx | undefined {
  return (globalThis as { wx?: Wx }).wx;
}
