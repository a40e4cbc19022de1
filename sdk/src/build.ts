import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

export interface BrowserBundle {
  code: string;
  gzipped: Buffer;
}

/** Size budget of the browser build, gzipped (checked by the tests). */
export const BROWSER_BUNDLE_BUDGET_BYTES = 10 * 1024;

/**
 * The single-file browser build (`window.touchpoint`), made with esbuild in memory. esbuild is a
 * build tool, not a runtime dependency of the SDK: the Touchpoint server has it (through tsx).
 */
export async function buildBrowserBundle(): Promise<BrowserBundle> {
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: [fileURLToPath(new URL('./browser/global.ts', import.meta.url))],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'browser',
    target: ['es2019'],
    minify: true,
    legalComments: 'none',
    logLevel: 'silent',
  });
  const code = result.outputFiles[0]!.text;
  return { code, gzipped: gzipSync(code, { level: 9 }) };
}
