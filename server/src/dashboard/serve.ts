import fs from 'node:fs';
import path from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { defaultDashboardDist } from './build.ts';

/**
 * Paths that belong to the API. A GET under them that no route matched is an API 404 (JSON), never
 * the dashboard's index.html: a typo in an API URL must not answer 200 with a web page.
 */
const API_PREFIXES = ['/v1/', '/admin/', '/sdk/', '/health', '/metrics', '/openapi.json', '/documentation'];

export function isApiPath(url: string): boolean {
  const pathname = url.split('?')[0] ?? '';
  return API_PREFIXES.some((prefix) => pathname === prefix.replace(/\/$/, '') || pathname.startsWith(prefix));
}

const PLACEHOLDER =
  '<!doctype html><html lang="en"><meta charset="utf-8"><title>Touchpoint</title>' +
  '<h1>Touchpoint is running</h1><p>The dashboard has not been built yet (<code>npm start</code> builds it; ' +
  'or run <code>npm run build -w dashboard</code>). API: ' +
  '<a href="/openapi.json">/openapi.json</a> · <a href="/health">/health</a> · <a href="/metrics">/metrics</a></p></html>';

/**
 * Serves the dashboard's built files at `/` with a single-page-app fallback: any other GET that is
 * not an API path and names no file answers index.html, so deep links (/profiles/…) work on reload.
 * The build folder is read per request, so a build finishing after the server started is served.
 */
export async function dashboardRoutes(app: FastifyInstance, options: { distDir?: string }): Promise<void> {
  const root = path.resolve(options.distDir ?? defaultDashboardDist());
  await app.register(fastifyStatic, { serve: false });

  const sendIndex = (reply: FastifyReply) => {
    if (!fs.existsSync(path.join(root, 'index.html'))) return reply.type('text/html; charset=utf-8').send(PLACEHOLDER);
    // index.html names the hashed assets of the current build: never cached.
    return reply.header('cache-control', 'no-cache').sendFile('index.html', root, { cacheControl: false });
  };

  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    if (isApiPath(request.url)) return reply.callNotFound();
    const pathname = decodeURIComponent((request.url.split('?')[0] ?? '/').replace(/^\/+/, ''));
    if (pathname && !pathname.split('/').includes('..')) {
      const file = path.join(root, pathname);
      if (file.startsWith(root + path.sep) && fs.statSync(file, { throwIfNoEntry: false })?.isFile()) {
        // Vite puts content-hashed files under assets/: they never change, so they are cached for good.
        const immutable = pathname.startsWith('assets/');
        return reply.sendFile(pathname, root, immutable ? { immutable: true, maxAge: '365d' } : { maxAge: 0 });
      }
      // A missing asset (a stale tab after a rebuild) is a 404, not a page that would be run as a script.
      if (pathname.startsWith('assets/') || /\.(js|css|map|png|svg|ico|woff2?)$/.test(pathname)) return reply.callNotFound();
    }
    return sendIndex(reply);
  };
  // The dashboard's files are public; its data comes from the API, which checks the session.
  app.get('/', { config: { permission: 'public' }, schema: { hide: true } }, handler);
  app.get('/*', { config: { permission: 'public' }, schema: { hide: true } }, handler);
}
