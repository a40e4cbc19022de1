import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { freePort } from './support/ports.ts';

const BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'touchpoint.js');

interface Run {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

// Every process a test started and that has not exited: a failed test must not leave a server
// (and its embedded PostgreSQL) running into the next test or the rest of the suite.
const running = new Set<Run>();

function run(args: string[], env: NodeJS.ProcessEnv): Run {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const started: Run = { child, output: () => output, exited: Promise.resolve(null) };
  started.exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      running.delete(started);
      resolve(code);
    }),
  );
  running.add(started);
  return started;
}

async function stopLeftovers(): Promise<void> {
  for (const left of [...running]) {
    // SIGTERM first, so the server stops its PostgreSQL; SIGKILL only when that hangs.
    left.child.kill('SIGTERM');
    const stopped = await Promise.race([left.exited.then(() => true), new Promise((resolve) => setTimeout(() => resolve(false), 30_000))]);
    if (!stopped) left.child.kill('SIGKILL');
  }
}

// Two full starts (initdb, every migration) run beside the rest of the suite on two cores: on a
// loaded machine (load average 15+) one start has taken over 60 s to answer /health.
const START_TIMEOUT_MS = 150_000;

async function waitFor(check: () => Promise<boolean> | boolean, what: () => string, timeoutMs = START_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`timed out waiting for ${what()}`);
}

describe('touchpoint start (embedded PostgreSQL, real process)', () => {
  const dataDirs: string[] = [];
  const newDataDir = () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tp-cli-'));
    fs.chmodSync(dir, 0o755);
    dataDirs.push(dir);
    return dir;
  };
  afterEach(stopLeftovers, 60_000);
  afterAll(() => {
    for (const dir of dataDirs) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('runs, keeps data across a SIGTERM restart, and stops its PostgreSQL cleanly', async () => {
    const dataDir = newDataDir();
    const env = {
      TOUCHPOINT_DATA_DIR: dataDir,
      TOUCHPOINT_PG_PORT: String(await freePort()),
      TOUCHPOINT_PORT: String(await freePort()),
      TOUCHPOINT_ADMIN_TOKEN: '',
      DATABASE_URL: '',
    };
    const base = `http://127.0.0.1:${env.TOUCHPOINT_PORT}`;
    const healthy = async () => (await fetch(`${base}/health`).catch(() => undefined))?.status === 200;

    const first = run(['start'], env);
    await waitFor(healthy, () => `first start (${first.output()})`);
    expect(first.output()).toMatch(/Admin token \(shown once/);

    const cli = (args: string[]) => {
      const r = run([...args, '--json'], env);
      return r.exited.then((code) => ({ code, out: r.output() }));
    };
    const ws = await cli(['workspace', 'create', '--slug', 'shop']);
    expect(ws.code).toBe(0);
    const src = await cli(['source', 'create', '--workspace', 'shop', '--name', 'POS', '--kind', 'store']);
    expect(src.code).toBe(0);
    const writeKey = JSON.parse(src.out).writeKey.key as string;

    const sent = await fetch(`${base}/v1/track`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-write-key': writeKey },
      body: JSON.stringify({ userId: 'm-1', event: 'Store Visit', messageId: 'visit-1' }),
    });
    expect(sent.status).toBe(200);

    first.child.kill('SIGTERM');
    expect(await first.exited, first.output()).toBe(0);
    expect(first.output()).toMatch(/Stopped cleanly/);
    // The embedded PostgreSQL is gone with it: no postmaster.pid left behind.
    expect(fs.existsSync(path.join(dataDir, 'pg', 'postmaster.pid'))).toBe(false);

    const second = run(['start'], env);
    await waitFor(healthy, () => `second start (${second.output()})`);
    expect(second.output()).not.toMatch(/Admin token/);
    const resend = await fetch(`${base}/v1/track`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-write-key': writeKey },
      body: JSON.stringify({ userId: 'm-1', event: 'Store Visit', messageId: 'visit-1' }),
    });
    // Same key still valid, and the event from before the restart is still there (a duplicate now).
    expect(await resend.json()).toMatchObject({ accepted: 0, duplicates: 1 });

    second.child.kill('SIGINT');
    expect(await second.exited, second.output()).toBe(0);
  }, 2 * START_TIMEOUT_MS + 60_000);

  it('exits with one line when the HTTP port is taken', async () => {
    const dataDir = newDataDir();
    const port = await freePort();
    const blocker = (await import('node:net')).createServer().listen(port, '127.0.0.1');
    try {
      const r = run(['start'], { TOUCHPOINT_DATA_DIR: dataDir, TOUCHPOINT_PG_PORT: String(await freePort()), TOUCHPOINT_PORT: String(port), DATABASE_URL: '' });
      expect(await r.exited, r.output()).toBe(1);
      expect(r.output()).toContain(`touchpoint: Port ${port} is already in use`);
      expect(r.output()).not.toMatch(/\n\s+at /); // no stack trace
      // Found before any PostgreSQL was started or initialised.
      expect(r.output()).not.toContain('Starting embedded PostgreSQL');
      expect(fs.existsSync(path.join(dataDir, 'pg'))).toBe(false);
    } finally {
      blocker.close();
    }
  }, START_TIMEOUT_MS);
});
