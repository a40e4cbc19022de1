import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { LIBRARY_NAME, LIBRARY_VERSION } from '../core/version.ts';
import type { BatchRequest, SendResult, Transport } from '../core/types.ts';

const gzipAsync = promisify(gzip);

/**
 * Retry-After as milliseconds: delay-seconds or an HTTP-date (RFC 9110 §10.2.3). Absent or
 * unreadable values give undefined, so the client's own backoff applies.
 */
export function parseRetryAfter(value: string | null, now: Date): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now.getTime());
}

export function basicAuthorization(writeKey: string): string {
  return `Basic ${Buffer.from(`${writeKey}:`).toString('base64')}`;
}

export interface NodeTransportOptions {
  writeKey: string;
  /** A request taking longer is abandoned and counts as not having reached the server (retried). */
  timeoutMs: number;
  now?: () => Date;
}

/**
 * Posts batches gzip-compressed with the write key as the Basic username. Network errors and
 * timeouts answer status 0, so the queue retries them like a 5xx.
 */
export function nodeTransport(options: NodeTransportOptions): Transport {
  const authorization = basicAuthorization(options.writeKey);
  const now = options.now ?? (() => new Date());
  return {
    async send(request: BatchRequest): Promise<SendResult> {
      const body = await gzipAsync(Buffer.from(request.body, 'utf8'));
      try {
        const response = await fetch(request.url, {
          method: 'POST',
          headers: {
            authorization,
            'content-type': 'application/json',
            'content-encoding': 'gzip',
            'user-agent': `${LIBRARY_NAME}/${LIBRARY_VERSION} node/${process.versions.node}`,
          },
          body,
          signal: AbortSignal.timeout(options.timeoutMs),
        });
        // The body is not needed, but reading it lets the connection be reused.
        await response.arrayBuffer().catch(() => undefined);
        const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'), now());
        return { ok: response.ok, status: response.status, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) };
      } catch {
        return { ok: false, status: 0 };
      }
    },
  };
}
