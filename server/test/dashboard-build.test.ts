import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ensureDashboardBuilt } from '../src/dashboard/build.ts';

// A package the size of a page, built by the same code path as the dashboard (Vite in a child
// process), so these tests take seconds instead of the dashboard's minute.
function tinyPackage(config = 'export default {};\n'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'touchpoint-dash-build-'));
  fs.mkdirSync(path.join(dir, 'src'));
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'tiny', private: true, type: 'module' }));
  fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html><html><body><script type="module" src="./src/main.js"></script></body></html>\n');
  fs.writeFileSync(path.join(dir, 'src', 'main.js'), 'document.body.textContent = "built";\n');
  fs.writeFileSync(path.join(dir, 'vite.config.ts'), config);
  return dir;
}

const made: string[] = [];
afterEach(() => {
  for (const dir of made.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

describe('dashboard build at start', () => {
  it('builds in a child process, swaps dist in whole and removes build folders of dead processes', async () => {
    const dir = tinyPackage();
    made.push(dir);
    // A folder left by a process that no longer exists (pid 2^22 + 1 is above Linux's pid_max default).
    const abandoned = path.join(dir, 'dist.building-4194305');
    fs.mkdirSync(abandoned);
    const lines: string[] = [];
    await ensureDashboardBuilt((line) => lines.push(line), dir);
    expect(lines.at(-1)).toMatch(/^Dashboard built in/);
    expect(fs.readFileSync(path.join(dir, 'dist', 'index.html'), 'utf8')).toContain('<script type="module"');
    expect(fs.readdirSync(dir).filter((entry) => entry.startsWith('dist.building-'))).toEqual([]);
    // Fresh now: a second start builds nothing.
    await ensureDashboardBuilt((line) => lines.push(line), dir);
    expect(lines.filter((line) => line.startsWith('Building'))).toHaveLength(1);
  });

  it('a shutdown stops the build: no dist, no half-built folder, and it says so', async () => {
    const dir = tinyPackage();
    made.push(dir);
    const stop = new AbortController();
    const lines: string[] = [];
    const building = ensureDashboardBuilt((line) => lines.push(line), dir, stop.signal);
    stop.abort();
    await building;
    expect(lines.at(-1)).toBe('Dashboard build stopped by the shutdown; it starts again at the next start');
    expect(fs.existsSync(path.join(dir, 'dist'))).toBe(false);
    expect(fs.readdirSync(dir).filter((entry) => entry.startsWith('dist.building-'))).toEqual([]);
  });

  it('a failing build leaves the API running and names the error from Vite', async () => {
    const dir = tinyPackage('export default { build: { rollupOptions: { input: "missing-entry.html" } } };\n');
    made.push(dir);
    const lines: string[] = [];
    await ensureDashboardBuilt((line) => lines.push(line), dir);
    expect(lines.at(-1)).toMatch(/^The dashboard could not be built \(vite build exited with 1: .*missing-entry/);
    expect(fs.existsSync(path.join(dir, 'dist'))).toBe(false);
  });
});
