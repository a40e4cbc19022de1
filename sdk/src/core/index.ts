/**
 * @touchpoint/sdk core: environment-independent. Browser, WeChat and Node.js builds supply a
 * `Transport` (how a batch reaches `/v1/batch`), a `KeyValueStorage` (where identity, consent and
 * the queue persist) and automatic `context`.
 */
export { createClient, memoryStorage, STORAGE_KEYS, type Client, type ClientOptions, type UserState } from './client.ts';
export { externalIds, IDENTIFIER_TYPES, type ExternalId } from './payload.ts';
export { backoffDelay } from './queue.ts';
export { uuid } from './ids.ts';
export { LIBRARY_NAME, LIBRARY_VERSION } from './version.ts';
export type * from './types.ts';
