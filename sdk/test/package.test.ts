import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const SDK_DIR = fileURLToPath(new URL('..', import.meta.url));
const REPO_DIR = path.resolve(SDK_DIR, '..');
const TSC = path.join(REPO_DIR, 'node_modules', 'typescript', 'bin', 'tsc');

/**
 * What a user installing @touchpoint/sdk from the registry gets: `npm pack` (which builds through
 * prepack) unpacked into a project's node_modules, imported by plain Node.js (no TypeScript loader)
 * and type-checked by a consumer's TypeScript.
 */
describe('the published SDK package', () => {
  let work: string;
  let files: string[];

  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'touchpoint-sdk-pack-'));
    const packed = JSON.parse(
      execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: SDK_DIR, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }),
    ) as Array<{ filename: string; files: Array<{ path: string }> }>;
    files = packed[0]!.files.map((file) => file.path);
    const installed = path.join(work, 'consumer', 'node_modules', '@touchpoint', 'sdk');
    fs.mkdirSync(installed, { recursive: true });
    execFileSync('tar', ['-xzf', path.join(work, packed[0]!.filename), '-C', installed, '--strip-components=1']);
  }, 120_000);

  afterAll(() => {
    fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(path.join(SDK_DIR, 'dist'), { recursive: true, force: true });
  });

  it('holds ESM JavaScript and declarations only, and no runtime dependencies', () => {
    expect(files).toContain('dist/core/index.js');
    expect(files).toContain('dist/node/index.d.ts');
    expect(files).toContain('package.json');
    expect(files.filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'))).toEqual([]);
    expect(files.some((file) => file.includes('build'))).toBe(false);
    const manifest = JSON.parse(fs.readFileSync(path.join(work, 'consumer', 'node_modules', '@touchpoint', 'sdk', 'package.json'), 'utf8')) as Record<string, unknown>;
    expect(manifest.type).toBe('module');
    expect(manifest.dependencies).toBeUndefined();
  });

  it('runs under plain Node.js: every entry point imports, and the Node client delivers a batch', async () => {
    const consumer = path.join(work, 'consumer');
    fs.writeFileSync(
      path.join(consumer, 'main.mjs'),
      `import http from 'node:http';
import { gunzipSync } from 'node:zlib';
import * as core from '@touchpoint/sdk';
import * as browser from '@touchpoint/sdk/browser';
import * as wechat from '@touchpoint/sdk/wechat';
import * as personalize from '@touchpoint/sdk/personalize';
import { createNodeClient } from '@touchpoint/sdk/node';
const received = [];
const server = http.createServer((request, response) => {
  const chunks = [];
  request.on('data', (chunk) => chunks.push(chunk));
  request.on('end', () => {
    received.push(JSON.parse(gunzipSync(Buffer.concat(chunks)).toString('utf8')));
    response.writeHead(200, { 'content-type': 'application/json' }).end('{"success":true}');
  });
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const client = createNodeClient({ writeKey: 'tpw_test', host: 'http://127.0.0.1:' + server.address().port, flushAt: 10 });
client.track({ userId: 'u-1', event: 'Order Completed', properties: { revenue: 9 } });
await client.close({ timeoutMs: 5000 });
server.close();
console.log(JSON.stringify({
  entries: [typeof core.createClient, typeof browser.init, typeof wechat.createWechatClient, typeof personalize.createPersonalizer],
  events: received.flatMap((body) => body.batch.map((message) => message.event)),
}));
`,
    );
    const output = execFileSync(process.execPath, ['main.mjs'], { cwd: consumer, encoding: 'utf8' });
    expect(JSON.parse(output)).toEqual({ entries: ['function', 'function', 'function', 'function'], events: ['Order Completed'] });
  });

  it("type-checks in a consumer's TypeScript project", () => {
    const consumer = path.join(work, 'consumer');
    fs.writeFileSync(
      path.join(consumer, 'use.ts'),
      `import { createNodeClient, type NodeClient } from '@touchpoint/sdk/node';
const client: NodeClient = createNodeClient({ writeKey: 'k', host: 'http://localhost' });
client.track({ userId: 'u', event: 'E', identifiers: { phone: '+8613800138000' } });
// @ts-expect-error a track call needs an event name
client.track({ userId: 'u' });
`,
    );
    fs.writeFileSync(
      path.join(consumer, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { strict: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', noEmit: true, types: [], lib: ['ES2022', 'DOM'] }, files: ['use.ts'] }),
    );
    const check = () => execFileSync(process.execPath, [TSC, '-p', 'tsconfig.json'], { cwd: consumer, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(check).not.toThrow();
  });
});
