import crypto from 'node:crypto';

/**
 * The messageId of a row that has none: a hash of the source, the line number and the row's
 * text. Importing the same file again yields the same ids, so its rows are counted as
 * duplicates instead of stored twice; identical rows on different lines stay distinct events.
 */
export function rowMessageId(sourceId: string, line: number, rowText: string): string {
  const digest = crypto.hash('sha256', `${sourceId}\n${line}\n${rowText}`, 'hex');
  return `import-${digest.slice(0, 40)}`;
}
