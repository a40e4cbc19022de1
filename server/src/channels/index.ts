/** The public surface of channels/: the contract's implementations (contract.ts) and the routes. */
export { checkTemplate } from './template-store.ts';
export { channelRoutes } from './routes.ts';
export type * from './contract.ts';
