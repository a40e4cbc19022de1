import { describe, expect, it } from 'vitest';
import type { BatchRequest } from '../src/core/types.ts';
import { wxStorage, wxTransport } from '../src/wechat/index.ts';
import type { Wx, WxRequestOptions } from '../src/wechat/wx.ts';
import { createWxShim } from './support/wx-shim.ts';

/** A wx whose request answers from a script, asynchronously like the real one. */
function scriptedWx(answer: (options: WxRequestOptions) => void): Wx {
  const shim = createWxShim();
  return { ...shim.wx, request: (options) => void setTimeout(() => answer(options), 0) };
}

const request: BatchRequest = { url: 'https://cdp.example.com/v1/batch', body: '{"batch":[]}', messages: [] };

describe('wx transport and storage', () => {
  it('reads the status and Retry-After (any header spelling) of an answer, and status 0 for a failed request', async () => {
    let seen: WxRequestOptions | undefined;
    const limited = wxTransport(
      scriptedWx((options) => {
        seen = options;
        options.success?.({ statusCode: 429, data: { error: 'rate_limited' }, header: { 'Retry-After': '3' } });
      }),
      'wk_1',
      5_000,
    );
    expect(await limited.send(request)).toEqual({ ok: false, status: 429, retryAfterMs: 3000 });
    expect(seen).toMatchObject({ method: 'POST', data: request.body, timeout: 5_000, header: { authorization: 'Basic d2tfMTo=', 'content-type': 'application/json' } });
    const stored = wxTransport(scriptedWx((o) => o.success?.({ statusCode: 200, data: {}, header: {} })), 'wk_1', 5_000);
    expect(await stored.send(request)).toEqual({ ok: true, status: 200 });
    const offline = wxTransport(scriptedWx((o) => o.fail?.({ errMsg: 'request:fail timeout' })), 'wk_1', 5_000);
    expect(await offline.send(request)).toEqual({ ok: false, status: 0 });
  });

  it('stores strings, reads a missing key as null and an object written by other code as JSON', () => {
    const shim = createWxShim();
    const storage = wxStorage(shim.wx);
    expect(storage.get('tp_aid')).toBeNull();
    storage.set('tp_aid', 'abc');
    expect(storage.get('tp_aid')).toBe('abc');
    shim.wx.setStorageSync('tp_traits', { plan: 'pro' });
    expect(storage.get('tp_traits')).toBe('{"plan":"pro"}');
    storage.remove('tp_aid');
    expect(storage.get('tp_aid')).toBeNull();
    // A full disk throws in wx; the SDK keeps going (the message stays in memory).
    const full = wxStorage({ ...shim.wx, setStorageSync: () => { throw new Error('setStorageSync:fail exceed storage max size 10MB'); } });
    expect(() => full.set('tp_queue', '[]')).not.toThrow();
  });
});
