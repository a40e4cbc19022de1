/**
 * The public surface of channels/: the contract's implementations (contract.ts: enqueueMessage,
 * checkTemplate, listMessages, holdMessages, cancelMessages), a batch enqueue for broadcasts, and
 * the routes.
 */
export { checkTemplate } from './template-store.ts';
export { enqueueMessage, enqueueMessages } from './enqueue.ts';
export { listMessages, holdMessages, cancelMessages } from './messages.ts';
export { channelRoutes } from './routes.ts';
export type * from './contract.ts';
