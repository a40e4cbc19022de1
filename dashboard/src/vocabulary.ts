import type { BuiltInIdentifierType } from '../../server/src/identity/identifier-types.ts';
import type { EVENT_TYPES } from '../../server/src/ingest/schemas.ts';
import type { SOURCE_KINDS } from '../../server/src/workspaces/schemas.ts';

/** The server's vocabularies, repeated as values (the server modules are not bundled) and checked against its types. */
export const IDENTIFIER_TYPES = [
  'user_id',
  'email',
  'phone',
  'member_id',
  'anonymous_id',
  'device_id',
  'cookie_id',
  'wechat_openid',
  'wechat_unionid',
] as const satisfies readonly BuiltInIdentifierType[];

export const EVENT_TYPE_NAMES = ['track', 'identify', 'page', 'screen', 'group', 'alias'] as const satisfies readonly (typeof EVENT_TYPES)[number][];

export type SourceKind = (typeof SOURCE_KINDS)[number];
export const SOURCE_KIND_NAMES = ['web', 'app', 'mini_program', 'server', 'store', 'call_centre', 'crm_import', 'warehouse'] as const satisfies readonly SourceKind[];

/** One glyph per source kind on the timeline (with the kind as text beside it for screen readers). */
export const SOURCE_ICONS: Record<SourceKind, string> = {
  web: '🌐',
  app: '📱',
  mini_program: '🟢',
  server: '🖥️',
  store: '🏬',
  call_centre: '☎️',
  crm_import: '📇',
  warehouse: '🗄️',
};

import type { CHANNEL_KINDS } from '../../server/src/channels/schemas.ts';
export type ChannelKind = (typeof CHANNEL_KINDS)[number];
export const CHANNEL_KIND_NAMES = ['email', 'sms', 'wechat', 'wecom', 'push', 'webhook'] as const satisfies readonly ChannelKind[];
