import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { buildBrowserBundle, type BrowserBundle } from '../../../sdk/src/build.ts';

/**
 * `GET /sdk/touchpoint.js`: the browser SDK, built with esbuild on the first request and kept in
 * memory, so users need no build step. Served gzipped to clients that accept it.
 */
export async function sdkRoutes(app: FastifyInstance): Promise<void> {
  let bundle: Promise<BrowserBundle & { etag: string }> | null = null;
  const load = () => {
    bundle ??= buildBrowserBundle().then(
      (built) => ({ ...built, etag: `"${createHash('sha256').update(built.code).digest('base64url').slice(0, 20)}"` }),
      (error: unknown) => {
        bundle = null; // a failed build is retried on the next request
        throw error;
      },
    );
    return bundle;
  };

  app.get('/sdk/touchpoint.js', { config: { permission: 'public' }, schema: { hide: true } }, async (request, reply) => {
    const { code, gzipped, etag } = await load();
    reply
      .header('content-type', 'application/javascript; charset=utf-8')
      .header('cache-control', 'public, max-age=300')
      .header('etag', etag)
      .header('vary', 'Accept-Encoding')
      .header('access-control-allow-origin', '*');
    if (request.headers['if-none-match'] === etag) return reply.code(304).send();
    if (/\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''))) return reply.header('content-encoding', 'gzip').send(gzipped);
    return reply.send(code);
  });
}
