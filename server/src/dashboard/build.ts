import fs from 'node:fs';
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
 * dist/ (or a build stopped half way by Ctrl-C) never sees half a build.
 */
export async function buildDashboard(packageDir: string = dashboardPackageDir()): Promise<void> {
  const vite = await import('vite');
  const outDir = path.join(packageDir, `dist.building-${process.pid}`);
  try {
    await vite.build({
      root: packageDir,
      configFile: path.join(packageDir, 'vite.config.ts'),
      logLevel: 'warn',
      build: { outDir, emptyOutDir: true },
    });
    const dist = path.join(packageDir, 'dist');
    fs.rmSync(dist, { recursive: true, force: true });
    fs.renameSync(outDir, dist);
  } finally {
    fs.rmSync(outDir, { recursive: true, force: true });
  }
}

/** `npm start`'s step: build when missing or stale; a failed build leaves the API running. */
export async function ensureDashboardBuilt(log: (message: string) => void, packageDir: string = dashboardPackageDir()): Promise<void> {
  const state = dashboardBuildState(packageDir);
  if (state.status === 'fresh' || state.status === 'no-sources') return;
  log(`Building the dashboard (${state.status === 'missing' ? 'no build yet' : 'sources changed'}) …`);
  const started = Date.now();
  try {
    await buildDashboard(packageDir);
    log(`Dashboard built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } catch (error) {
    log(`The dashboard could not be built (${(error as Error).message}); the API runs without it`);
  }
}
