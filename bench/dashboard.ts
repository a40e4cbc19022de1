/**
 * The dashboard's bundle size and first load, against a running server with the demo workspace:
 *
 *   node server/bin/touchpoint.js demo --profiles 5000      # prints a server key
 *   npm start                                               # builds the dashboard if needed
 *   node --import tsx bench/dashboard.ts --url http://127.0.0.1:8080 --key tps_… [--runs 7] [--screenshots docs/screenshots]
 *
 * Bundle: every built file raw and gzipped (level 9, what a compressing proxy sends); "initial"
 * is what index.html loads before the first page renders. First load: a fresh browser context
 * (empty cache) per run, signed in through sessionStorage, timed from navigation start until the
 * overview shows its numbers (the page is interactive with data); warm load repeats it in the same
 * context (assets from the cache). Medians over the runs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import zlib from 'node:zlib';
import type { Page } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST = path.join(ROOT, 'dashboard', 'dist');

export function bundleSizes(dist = DIST) {
  const index = fs.readFileSync(path.join(dist, 'index.html'), 'utf8');
  const initial = new Set([...index.matchAll(/(?:src|href)="\/(assets\/[^"]+)"/g)].map((match) => match[1]!));
  const files = fs.readdirSync(path.join(dist, 'assets')).map((name) => {
    const content = fs.readFileSync(path.join(dist, 'assets', name));
    return { file: `assets/${name}`, bytes: content.length, gzip: zlib.gzipSync(content, { level: 9 }).length, initial: initial.has(`assets/${name}`) };
  });
  const sum = (list: typeof files, key: 'bytes' | 'gzip') => list.reduce((total, file) => total + file[key], 0);
  const initialFiles = files.filter((file) => file.initial);
  const js = initialFiles.filter((file) => file.file.endsWith('.js'));
  return { files, initialJsBytes: sum(js, 'bytes'), initialJsGzip: sum(js, 'gzip'), initialGzip: sum(initialFiles, 'gzip'), totalGzip: sum(files, 'gzip') };
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};

async function timeOverview(page: Page, url: string): Promise<number> {
  await page.goto(`${url}/`);
  await page.locator('.metric-value').first().waitFor({ timeout: 30_000 });
  return page.evaluate(() => performance.now());
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { url: { type: 'string', default: 'http://127.0.0.1:8080' }, key: { type: 'string' }, runs: { type: 'string', default: '7' }, screenshots: { type: 'string' } },
  });
  if (!values.key) throw new Error('--key <server key> is required (touchpoint demo prints one)');
  const url = values.url!.replace(/\/$/, '');
  const runs = Number(values.runs);
  const sizes = bundleSizes();
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  const cold: number[] = [];
  const warm: number[] = [];
  try {
    for (let run = 0; run < runs; run++) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-US' });
      await context.addInitScript((key) => sessionStorage.setItem('touchpoint.serverKey', key), values.key);
      const page = await context.newPage();
      cold.push(await timeOverview(page, url));
      warm.push(await timeOverview(page, url));
      await context.close();
    }
    if (values.screenshots) await screenshots(browser, url, values.key, values.screenshots);
  } finally {
    await browser.close();
  }
  const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;
  console.log(`initial JS: ${kb(sizes.initialJsBytes)} raw, ${kb(sizes.initialJsGzip)} gzipped; everything initial (JS+CSS) ${kb(sizes.initialGzip)} gzipped; all files ${kb(sizes.totalGzip)} gzipped`);
  for (const file of sizes.files) console.log(`  ${file.file.padEnd(36)} ${kb(file.bytes).padStart(10)} ${kb(file.gzip).padStart(10)} gz${file.initial ? '  (initial)' : ''}`);
  console.log(`overview with data, cold cache: median ${median(cold).toFixed(0)} ms (runs: ${cold.map((v) => v.toFixed(0)).join(', ')})`);
  console.log(`overview with data, warm cache: median ${median(warm).toFixed(0)} ms (runs: ${warm.map((v) => v.toFixed(0)).join(', ')})`);
}

/** One small PNG per main page, for docs/screenshots. */
async function screenshots(browser: import('playwright-core').Browser, url: string, key: string, dir: string): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-US' });
  const page = await context.newPage();
  const shot = async (name: string) => {
    await page.waitForTimeout(600);
    await page.screenshot({ path: path.join(dir, `${name}.png`) });
  };
  await page.goto(`${url}/`);
  await shot('login');
  await page.getByLabel('Workspace server key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('.metric-value').first().waitFor();
  await shot('overview');
  await page.goto(`${url}/profiles?identifier=customer1`);
  await page.locator('table tbody tr a').first().waitFor();
  await shot('profiles');
  await page.locator('table tbody tr a').first().click();
  await page.getByTestId('identity-graph').waitFor();
  await page.getByTestId('timeline').locator('li').first().waitFor();
  await page.screenshot({ path: path.join(dir, 'profile.png'), fullPage: true });
  await page.goto(`${url}/segments`);
  await page.getByTestId('segment-list').waitFor();
  await shot('segments');
  await page.goto(`${url}/segments/new`);
  const text = page.getByLabel('Definition (segment language)');
  await text.fill('trait.city = "上海" and\nevent("Order Completed").count(within 90d) >=');
  await page.getByRole('button', { name: 'Preview' }).click();
  await page.getByTestId('error-marker').waitFor();
  await shot('segment-parse-error');
  await text.fill('trait.city = "上海" and\nevent("Order Completed").count(within 90d) >= 1');
  await page.getByRole('button', { name: 'Preview' }).click();
  await page.getByTestId('preview-size').waitFor();
  await page.screenshot({ path: path.join(dir, 'segment-preview.png'), fullPage: true });
  await page.goto(`${url}/catalogue`);
  await page.getByTestId('catalogue').waitFor();
  await page.locator('[data-testid="catalogue"] button').first().click();
  await shot('catalogue');
  await page.getByTestId('language').selectOption('zh-CN');
  await page.goto(`${url}/`);
  await page.locator('.metric-value').first().waitFor();
  await shot('overview-zh-CN');
  await page.getByTestId('language').selectOption('en');
  await context.close();
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
