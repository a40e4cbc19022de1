import type { Queryable } from './database.ts';

/**
 * Write statements of one transaction sent without waiting for each other's results: `pg` runs a
 * client's queries one after another in the order given, so the order (and every lock taken on
 * the way) is the same as awaiting each in turn, but Node builds the next statement's parameters
 * while PostgreSQL runs the previous one instead of each waiting for the other.
 *
 * Only for statements whose results the caller does not read. `flush` waits for all of them and
 * throws the first one's error (the later ones then fail only because the transaction is aborted).
 * A caller that awaits a statement of its own on the same client in between must, when that
 * fails, still `flush` (see `run`), so the first error is the one reported and no rejection is
 * left unhandled.
 */
export class StatementPipeline {
  private readonly pending: Array<Promise<unknown>> = [];
  private firstError: { error: unknown } | null = null;

  constructor(private readonly client: Queryable) {}

  send(sql: string, params: unknown[]): void {
    const sent = this.client.query(sql, params).then(
      () => undefined,
      (error: unknown) => {
        this.firstError ??= { error };
      },
    );
    this.pending.push(sent);
  }

  /** Waits for every statement sent; throws the first error. */
  async flush(): Promise<void> {
    await Promise.all(this.pending.splice(0));
    if (this.firstError) throw this.firstError.error;
  }

  /** Runs `work` (which may send and await statements of its own) and flushes; the first error wins. */
  async run<T>(work: () => Promise<T>): Promise<T> {
    let result: T;
    try {
      result = await work();
    } catch (error) {
      await Promise.all(this.pending.splice(0));
      throw this.firstError ? this.firstError.error : error;
    }
    await this.flush();
    return result;
  }
}
