import type { Db } from '../storage/database.ts';
import { startPollingLoop } from '../worker/polling-loop.ts';
import { createDispatcher, type DispatcherOptions } from './dispatch.ts';
import { flushMessageEvents } from './messages.ts';
import { closeSmtpTransports } from './providers/smtp.ts';
import { secretsKey } from './secrets.ts';

// Due messages are looked for every 100 ms when idle (enqueue → provider call well under 1 s);
// under load batches run back to back. Crashed sends are looked for every 30 s.
const DISPATCH_POLL_MS = 100;
const RECONCILE_POLL_MS = 30_000;
const EVENTS_POLL_MS = 200;

/** The public base URL of this server (tracking links, provider callbacks). */
export function publicUrl(env: NodeJS.ProcessEnv = process.env): string {
  return env.TOUCHPOINT_PUBLIC_URL || `http://${env.TOUCHPOINT_HOST || '127.0.0.1'}:${env.TOUCHPOINT_PORT || '8080'}`;
}

/** The dispatcher, the reconcile step and the Message-event flusher as polling loops of the worker. */
export function startChannelLoops(db: Db, onError: (error: unknown, name: string) => void, overrides: Partial<DispatcherOptions> = {}) {
  const dispatcher = createDispatcher({ db, secretsKey, publicUrl: publicUrl(), ...overrides });
  const loops = [
    startPollingLoop({ name: 'message dispatch', drainOnce: () => dispatcher.dispatchOnce(), pollMs: DISPATCH_POLL_MS, onError }),
    startPollingLoop({ name: 'message reconcile', drainOnce: async () => (await dispatcher.reconcileOnce(), 0), pollMs: RECONCILE_POLL_MS, onError }),
    startPollingLoop({ name: 'message events', drainOnce: () => flushMessageEvents(db), pollMs: EVENTS_POLL_MS, onError }),
  ];
  return {
    async stop(): Promise<void> {
      await Promise.all(loops.map((loop) => loop.stop()));
      closeSmtpTransports();
    },
  };
}
