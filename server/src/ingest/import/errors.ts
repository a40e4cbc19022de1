/**
 * A problem with the import as a whole (bad option, unknown write key, unreadable file): nothing
 * was imported, or the import stopped. Problems with single rows go to the rejects file instead.
 */
export class ImportError extends Error {
  override name = 'ImportError';
  constructor(
    /** Machine code, e.g. `invalid_mapping`, `unauthorized`, `unknown_column`. */
    readonly code: string,
    message: string,
    /** The option or column at fault, e.g. `--map`. */
    readonly field?: string,
  ) {
    super(message);
  }
}
