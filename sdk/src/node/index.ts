/** @touchpoint/sdk/node: the server-side client. */
export { createNodeClient, type CallFields, type NodeClient, type NodeClientOptions, type Who } from './client.ts';
export { nodeTransport, parseRetryAfter, type NodeTransportOptions } from './transport.ts';
export type { DeliveryError, Identifiers, Properties } from '../core/types.ts';
