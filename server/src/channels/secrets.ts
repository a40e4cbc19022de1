import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/*
 * Channel account secrets (API keys, passwords, private keys) are sealed with AES-256-GCM under
 * one instance key: TOUCHPOINT_SECRETS_KEY (32 bytes, base64 or hex), or the file named by
 * TOUCHPOINT_SECRETS_KEY_FILE, or `<data dir>/secrets.key`, generated on first use (mode 0600).
 * A database dump alone therefore never reveals a provider credential.
 */

const FORMAT = 'v1';

export function parseSecretsKey(text: string): Buffer {
  const trimmed = text.trim();
  const key = /^[0-9a-f]{64}$/i.test(trimmed) ? Buffer.from(trimmed, 'hex') : Buffer.from(trimmed, 'base64');
  if (key.length !== 32) throw new Error('The secrets key must be 32 bytes, written as 64 hex digits or base64');
  return key;
}

/** The instance secrets key, from the environment or the data directory (created when missing). */
export function loadSecretsKey(env: NodeJS.ProcessEnv, dataDir: string): Buffer {
  if (env.TOUCHPOINT_SECRETS_KEY) return parseSecretsKey(env.TOUCHPOINT_SECRETS_KEY);
  if (env.TOUCHPOINT_SECRETS_KEY_FILE) return parseSecretsKey(fs.readFileSync(env.TOUCHPOINT_SECRETS_KEY_FILE, 'utf8'));
  const file = path.join(dataDir, 'secrets.key');
  try {
    return parseSecretsKey(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  fs.mkdirSync(dataDir, { recursive: true });
  try {
    // 'wx': two processes starting together never overwrite each other's key.
    fs.writeFileSync(file, crypto.randomBytes(32).toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  return parseSecretsKey(fs.readFileSync(file, 'utf8'));
}

export function sealSecrets(key: Buffer, secrets: Record<string, string>): string {
  const iv = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([cipher.update(JSON.stringify(secrets), 'utf8'), cipher.final()]);
  return [FORMAT, iv.toString('base64'), cipher.getAuthTag().toString('base64'), body.toString('base64')].join(':');
}

export function openSecrets(key: Buffer, sealed: string): Record<string, string> {
  const [format, iv, tag, body] = sealed.split(':');
  if (format !== FORMAT || !iv || !tag || body === undefined) throw new Error('Unreadable sealed secrets');
  const decipher = crypto.createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64'));
  decipher.setAuthTag(Buffer.from(tag, 'base64'));
  try {
    const text = Buffer.concat([decipher.update(Buffer.from(body, 'base64')), decipher.final()]).toString('utf8');
    return JSON.parse(text) as Record<string, string>;
  } catch {
    throw new Error('The channel secrets cannot be opened with this secrets key (was TOUCHPOINT_SECRETS_KEY changed?)');
  }
}

let processKey: Buffer | undefined;

/** The key of this process, read once (TOUCHPOINT_DATA_DIR as in config.ts). */
export function secretsKey(): Buffer {
  processKey ??= loadSecretsKey(process.env, path.resolve(process.env.TOUCHPOINT_DATA_DIR || '.touchpoint'));
  return processKey;
}
