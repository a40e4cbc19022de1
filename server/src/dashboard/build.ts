import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The dashboard workspace package (repository root /dashboard). */
export function dashboardPackageDir(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'dashboard');
}

export function defaultDashboardDist(): string {
  return path.join(dashboardPackageDir(), 'dist');
}

/** What a build is made from: a change to any of these makes the build stale. */
const INPUTS = ['src', 'index.html', 'vite.config.ts', 'package.json', 'public'];

function newestMtime(target: string): number {
  const stat = fs.statSync(target, { throwIfNoEntry: false });
  if (!stat) return 0;
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = stat.mtimeMs;
  for (const entry of fs.readdirSync(target)) newest = Math.max(newest, newestMtime(path.join(target, entry)));
  return newest;
}

export type BuildState = { status: 'missing' } | { status: 'stale' } | { status: 'fresh' } | { status: 'no-sources' };

/** Missing when there is no dist/index.html; stale when a source file is newer than it. */
export function dashboardBuildState(packageDir: string = dashboardPackageDir()): BuildState {
  if (!fs.existsSync(path.join(packageDir, 'src'))) return { status: 'no-sources' };
  const built = fs.statSync(path.join(packageDir, 'dist', 'index.html'), { throwIfNoEntry: false });
  if (!built) return { status: 'missing' };
  const newestSource = Math.max(...INPUTS.map((input) => newestMtime(path.join(packageDir, input))));
  return newestSource > built.mtimeMs ? { status: 'stale' } : { status: 'fresh' };
}

/**
 * Builds the dashboard with Vite into a temporary folder and swaps it in, so a server reading
 * dist/ (or a build stopped half way by Ctrl-C) never sees half a build. The build runs in a
 * child process: in the server's own process Vite's bundling held the event loop for seconds at a
 * time (health checks answered after up to 24 s on the first start, so SDKs timed out and retried),
 * and a shutdown during the build waited for it. `signal` stops the child.
 */
export async function buildDashboard(packageDir: string = dashboardPackageDir(), signal?: AbortSignal): Promise<void> {
  const viteCli = path.join(path.dirname(createRequire(import.meta.url).resolve('vite/package.json')), 'bin', 'vite.js');
  removeAbandonedBuilds(packageDir);
  const outDir = path.join(packageDir, `dist.building-${process.pid}`);
  try {
    await new Promise<void>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        [viteCli, 'build', packageDir, '--config', path.join(packageDir, 'vite.config.ts'), '--outDir', outDir, '--emptyOutDir', '--logLevel', 'warn'],
        { cwd: packageDir, stdio: ['ignore', 'ignore', 'pipe'], signal },
      );
      let stderr = '';
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (chunk: string) => {
        // Only the end is kept: it names the failure; warnings before it are Vite's own.
        stderr = (stderr + chunk).slice(-4000);
      });
      child.once('error', reject);
      child.once('close', (code, killedBy) => {
        if (code === 0) resolve();
        else reject(new Error(killedBy ? `build stopped (${killedBy})` : `vite build exited with ${code}: ${lastLines(stderr, 5)}`));
      });
    });
    const dist = path.join(packageDir, 'dist');
    fs.rmSync(dist, { recursive: true, force: true });
    fs.renameSync(outDir, dist);
  } finally {
    fs.rmSync(outDir, { recursive: true, force: true });
  }
}

/** Build folders of processes that died mid-build (killed, machine off); a live one is left alone. */
function removeAbandonedBuilds(packageDir: string): void {
  for (const entry of fs.readdirSync(packageDir)) {
    const pid = /^dist\.building-(\d+)$/.exec(entry)?.[1];
    if (pid && Number(pid) !== process.pid && !processIsAlive(Number(pid))) fs.rmSync(path.join(packageDir, entry), { recursive: true, force: true });
  }
}

function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: alive, owned by another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function lastLines(text: string, count: number): string {
  return text.trim().split('\n').slice(-count).join(' | ');
}

/** `npm start`'s step: build when missing or stale; a failed build leaves the API running. */
export async function ensureDashboardBuilt(log: (message: string) => void, packageDir: string = dashboardPackageDir(), signal?: AbortSignal): Promise<void> {
  const state = dashboardBuildState(packageDir);
  if (state.status === 'fresh' || state.status === 'no-sources') return;
  log(`Building the dashboard (${state.status === 'missing' ? 'no build yet' : 'sources changed'}) …`);
  const started = Date.now();
  try {
    await buildDashboard(packageDir, signal);
    log(`Dashboard built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } catch (error) {
    if (signal?.aborted) {
      log('Dashboard build stopped by the shutdown; it starts again at the next start');
      return;
    }
    log(`The dashboard could not be built (${(error as Error).message}); the API runs without it`);
  }
}
