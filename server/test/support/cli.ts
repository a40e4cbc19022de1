import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI_BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'touchpoint.js');

/** Runs the `touchpoint` command as a real process on the given database. */
export function cli(args: string[], databaseUrl: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI_BIN, ...args], {
    env: { ...process.env, DATABASE_URL: databaseUrl, TOUCHPOINT_ADMIN_TOKEN: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
}
