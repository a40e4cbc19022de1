/** @touchpoint/sdk/wechat: the WeChat mini-program client. */
export {
  createWechatClient,
  wxGet,
  wxStorage,
  wxTransport,
  type AppOptions,
  type LaunchOptions,
  type PageInstance,
  type PageOptions,
  type WechatClient,
  type WechatClientOptions,
  type WechatIds,
} from './client.ts';
export type { Wx, WxNetworkStatus, WxRequestOptions, WxSystemInfo } from './wx.ts';
export type { DeliveryError, Identifiers, Properties } from '../core/types.ts';
