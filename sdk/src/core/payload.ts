import { LIBRARY_NAME, LIBRARY_VERSION } from './version.ts';
import type { Identifiers, Message, MessageType, Properties } from './types.ts';

export const IDENTIFIER_TYPES = ['phone', 'email', 'member_id', 'wechat_openid', 'wechat_unionid', 'device_id', 'cookie_id'] as const;

export interface ExternalId {
  id: string;
  type: string;
  collection: 'users';
  encoding: 'none';
}

/** Typed identifiers as Segment's `context.externalIds`; empty values are left out, unknown types throw. */
export function externalIds(identifiers: Identifiers): ExternalId[] {
  const result: ExternalId[] = [];
  for (const [type, id] of Object.entries(identifiers)) {
    if (!(IDENTIFIER_TYPES as readonly string[]).includes(type)) {
      throw new TypeError(`touchpoint: unknown identifier type "${type}"; expected one of ${IDENTIFIER_TYPES.join(', ')}`);
    }
    if (id === undefined || id === null || String(id).trim() === '') continue;
    result.push({ id: String(id), type, collection: 'users', encoding: 'none' });
  }
  return result;
}

export interface MessageInput {
  type: MessageType;
  messageId: string;
  timestamp: Date;
  anonymousId: string;
  userId: string | null;
  fields: Partial<Pick<Message, 'event' | 'name' | 'properties' | 'traits' | 'groupId' | 'previousId'>>;
  /** Context from the environment (page, locale…) and the call, shallow-merged in that order. */
  context: Properties[];
  identifiers?: Identifiers;
}

/** One Segment-spec message. `sentAt` is added to the batch when it is sent. */
export function buildMessage(input: MessageInput): Message {
  const context: Properties = { library: { name: LIBRARY_NAME, version: LIBRARY_VERSION } };
  for (const part of input.context) Object.assign(context, part);
  context.library = { name: LIBRARY_NAME, version: LIBRARY_VERSION };
  const ids = input.identifiers ? externalIds(input.identifiers) : [];
  if (ids.length > 0) context.externalIds = [...((context.externalIds as ExternalId[] | undefined) ?? []), ...ids];
  const message: Message = {
    type: input.type,
    messageId: input.messageId,
    timestamp: input.timestamp.toISOString(),
    anonymousId: input.anonymousId,
    context,
  };
  if (input.userId !== null) message.userId = input.userId;
  for (const [key, value] of Object.entries(input.fields)) {
    if (value !== undefined) (message as unknown as Record<string, unknown>)[key] = value;
  }
  return message;
}
