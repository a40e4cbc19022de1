declare module 'pg-copy-streams' {
  import type { Readable } from 'node:stream';
  import type { Submittable } from 'pg';
  /** COPY … TO STDOUT as a readable stream (pass it to client.query). */
  export function to(sql: string): Readable & Submittable;
}
