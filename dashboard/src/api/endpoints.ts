import { currentWorkspace } from '../auth.ts';
import { apiRequest, ApiRequestError, uploadFile, type QueryValue } from './client.ts';
import type {
  CatalogueEventDetail,
  CatalogueList,
  ComputedTraitList,
  CreateSegment,
  DestinationList,
  IdentityGraph,
  Overview,
  Preview,
  PreviewBody,
  Profile,
  ProfileSearchResult,
  ProfileSegments,
  Segment,
  SegmentList,
  SegmentTrends,
  TagList,
  Timeline,
  Transitions,
  UnbindResult,
  UnmergeResult,
  UpdateSegment,
} from './types.ts';
import type {
  ApiKey,
  BulkReplayResult,
  ChannelAccount,
  ChannelAccountBody,
  CollectionSettings,
  CreateSource,
  IdentitySettingsView,
  IdentitySettings,
  IdentityStats,
  ImportJob,
  IssuedKey,
  Member,
  Policy,
  QuarantineDetail,
  QuarantineList,
  ReplayResult,
  Role,
  RotatedKey,
  Source,
  SubscriptionGroup,
  Tag,
  TagLibrary,
  User,
  Workspace,
} from './types.ts';

import type * as T from './types.ts';

const enc = encodeURIComponent;

/** `/admin/workspaces/{current}`: governance paths name the workspace; a server key cannot say which it is. */
function ws(): string {
  const workspace = currentWorkspace();
  if (!workspace) throw new ApiRequestError(0, 'user_required', 'Sign in with a user account to manage the workspace (a server key does not say which workspace it belongs to)');
  return `/admin/workspaces/${enc(workspace)}`;
}

type Items<T> = { items: T[] };

/** A request under /admin/workspaces/{current}; async, so a missing workspace is a rejected promise like any API error. */
async function adminRequest<T>(method: string, suffix: string, options?: Parameters<typeof apiRequest>[2]): Promise<T> {
  return apiRequest<T>(method, `${ws()}${suffix}`, options);
}

/** The documented API the dashboard uses, one typed function per call. */
export const api = {
  segmentTrends: (range: { from: string; to: string }, key?: string, signal?: AbortSignal) =>
    apiRequest<SegmentTrends>('GET', '/v1/overview/segment-trends', { query: { ...range, key }, signal }),
  overview: (range: { from: string; to: string }, signal?: AbortSignal) => apiRequest<Overview>('GET', '/v1/overview', { query: range, signal }),

  searchProfiles: (query: Record<string, QueryValue>, signal?: AbortSignal) =>
    apiRequest<ProfileSearchResult>('GET', '/v1/profiles', { query, signal }),
  profile: (ref: string, signal?: AbortSignal) =>
    apiRequest<Profile>('GET', `/v1/profiles/${enc(ref)}`, { query: { verbose: true, events: 0 }, signal }),
  timeline: (ref: string, query: Record<string, QueryValue>, signal?: AbortSignal) =>
    apiRequest<Timeline>('GET', `/v1/profiles/${enc(ref)}/events`, { query, signal }),
  identity: (ref: string, signal?: AbortSignal) => apiRequest<IdentityGraph>('GET', `/v1/profiles/${enc(ref)}/identity`, { signal }),
  profileSegments: (ref: string, signal?: AbortSignal) => apiRequest<ProfileSegments>('GET', `/v1/profiles/${enc(ref)}/segments`, { signal }),
  unmerge: (ref: string, identifier: { type: string; value: string }) =>
    apiRequest<UnmergeResult>('POST', `/v1/profiles/${enc(ref)}/unmerge`, { body: { identifier } }),
  unbind: (ref: string, identifier: { type: string; value: string }, reason?: string) =>
    apiRequest<UnbindResult>('POST', `/v1/profiles/${enc(ref)}/unbind`, { body: { identifier, ...(reason ? { reason } : {}) } }),

  segments: (query: Record<string, QueryValue> = {}, signal?: AbortSignal) => apiRequest<SegmentList>('GET', '/v1/segments', { query, signal }),
  segment: (key: string, signal?: AbortSignal) => apiRequest<Segment>('GET', `/v1/segments/${enc(key)}`, { signal }),
  createSegment: (body: CreateSegment) => apiRequest<Segment>('POST', '/v1/segments', { body }),
  updateSegment: (key: string, body: UpdateSegment) => apiRequest<Segment>('PATCH', `/v1/segments/${enc(key)}`, { body }),
  previewSegment: (body: PreviewBody, signal?: AbortSignal) => apiRequest<Preview>('POST', '/v1/segments/preview', { body, signal }),
  transitions: (key: string, query: Record<string, QueryValue> = {}, signal?: AbortSignal) =>
    apiRequest<Transitions>('GET', `/v1/segments/${enc(key)}/transitions`, { query, signal }),
  segmentExportUrl: (key: string) => `/v1/segments/${enc(key)}/export.csv`,

  tags: (signal?: AbortSignal) => apiRequest<TagList>('GET', '/v1/tags', { query: { limit: 100 }, signal }),
  computedTraits: (signal?: AbortSignal) => apiRequest<ComputedTraitList>('GET', '/v1/computed-traits', { signal }),

  catalogue: (signal?: AbortSignal) => apiRequest<CatalogueList>('GET', '/v1/catalogue/events', { signal }),
  catalogueEvent: (type: string, name: string, signal?: AbortSignal) =>
    apiRequest<CatalogueEventDetail>('GET', name ? `/v1/catalogue/events/${enc(type)}/${enc(name)}` : `/v1/catalogue/events/${enc(type)}`, { signal }),

  destinations: (signal?: AbortSignal) => apiRequest<DestinationList>('GET', '/v1/destinations', { signal }),
  // ---- Journeys (canvas, live numbers, instances) ----
  journeys: (signal?: AbortSignal) => apiRequest<T.JourneyList>('GET', '/v1/journeys', { query: { limit: 200 }, signal }),
  journey: (key: string, signal?: AbortSignal) => apiRequest<T.Journey>('GET', `/v1/journeys/${enc(key)}`, { signal }),
  createJourney: (body: T.CreateJourney) => apiRequest<T.Journey>('POST', '/v1/journeys', { body }),
  updateJourney: (key: string, body: { name?: string; description?: string | null; definition?: T.JourneyDefinition }) =>
    apiRequest<T.Journey>('PATCH', `/v1/journeys/${enc(key)}`, { body }),
  validateJourney: (key: string, definition: T.JourneyDefinition, signal?: AbortSignal) =>
    apiRequest<T.JourneyProblems>('POST', `/v1/journeys/${enc(key)}/validate`, { body: { definition }, signal }),
  publishJourney: (key: string) => apiRequest<T.PublishResult>('POST', `/v1/journeys/${enc(key)}/publish`),
  migrateJourney: (key: string) => apiRequest<T.MigrateResult>('POST', `/v1/journeys/${enc(key)}/migrate`, { body: {} }),
  pauseJourney: (key: string) => apiRequest<T.Journey>('POST', `/v1/journeys/${enc(key)}/pause`),
  resumeJourney: (key: string) => apiRequest<T.Journey>('POST', `/v1/journeys/${enc(key)}/resume`),
  stopJourney: (key: string) => apiRequest<T.ArchiveResult>('POST', `/v1/journeys/${enc(key)}/archive`),
  enterJourney: (key: string, profile: string) => apiRequest<T.TestEntryResult>('POST', `/v1/journeys/${enc(key)}/entries`, { body: { profile } }),
  journeyVersions: (key: string, signal?: AbortSignal) => apiRequest<T.JourneyVersionList>('GET', `/v1/journeys/${enc(key)}/versions`, { signal }),
  journeyStats: (key: string, signal?: AbortSignal) => apiRequest<T.JourneyStats>('GET', `/v1/journeys/${enc(key)}/stats`, { signal }),
  journeyInstances: (key: string, query: Record<string, QueryValue>, signal?: AbortSignal) =>
    apiRequest<T.JourneyInstanceList>('GET', `/v1/journeys/${enc(key)}/instances`, { query, signal }),
  journeyInstance: (key: string, id: string, signal?: AbortSignal) =>
    apiRequest<T.JourneyInstanceDetail>('GET', `/v1/journeys/${enc(key)}/instances/${enc(id)}`, { signal }),
  removeInstance: (key: string, id: string) => apiRequest<T.JourneyInstance>('POST', `/v1/journeys/${enc(key)}/instances/${enc(id)}/remove`),
  journeyResults: (journeyId: string, range: { from: string; to: string }, signal?: AbortSignal) =>
    apiRequest<T.JourneyResults>('POST', '/v1/analytics/journeys', { body: { journeyId, range }, signal }),
  instanceMessages: (instanceId: string, signal?: AbortSignal) =>
    apiRequest<T.MessageList>('GET', '/v1/channels/messages', { query: { instanceId }, signal }),

  // ---- Channel templates (the send node's template editor) ----
  templates: (signal?: AbortSignal) => apiRequest<T.TemplateList>('GET', '/v1/channels/templates', { signal }),
  template: (key: string, signal?: AbortSignal) => apiRequest<T.Template>('GET', `/v1/channels/templates/${enc(key)}`, { signal }),
  createTemplate: (body: T.TemplateBody) => apiRequest<T.Template>('POST', '/v1/channels/templates', { body }),
  addTemplateVersion: (key: string, body: T.TemplateVersionBody) => apiRequest<T.Template>('POST', `/v1/channels/templates/${enc(key)}/versions`, { body }),
  previewTemplate: (key: string, body: { profileId: string; version?: number; locale?: string }, signal?: AbortSignal) =>
    apiRequest<T.TemplatePreview>('POST', `/v1/channels/templates/${enc(key)}/preview`, { body, signal }),

  // ---- Analytics ----
  funnel: (body: T.FunnelQuery, signal?: AbortSignal) => apiRequest<T.FunnelResult>('POST', '/v1/analytics/funnels', { body, signal }),
  retention: (body: T.RetentionQuery, signal?: AbortSignal) => apiRequest<T.RetentionResult>('POST', '/v1/analytics/retention', { body, signal }),
  paths: (body: T.PathsQuery, signal?: AbortSignal) => apiRequest<T.PathsResult>('POST', '/v1/analytics/paths', { body, signal }),
  trends: (body: T.TrendQuery, signal?: AbortSignal) => apiRequest<T.TrendResult>('POST', '/v1/analytics/trends', { body, signal }),
  touchpoints: (body: T.TouchpointQuery, signal?: AbortSignal) => apiRequest<T.TouchpointResult>('POST', '/v1/analytics/touchpoints', { body, signal }),
  attribution: (body: T.AttributionQuery, signal?: AbortSignal) => apiRequest<T.AttributionResult>('POST', '/v1/analytics/attribution', { body, signal }),
  dropOffSegment: (body: T.DropOffSegmentBody) => apiRequest<T.DropOffSegmentResult>('POST', '/v1/analytics/funnels/drop-off-segment', { body }),
  reports: (signal?: AbortSignal) => apiRequest<T.ReportList>('GET', '/v1/analytics/reports', { signal }),
  createReport: (body: T.CreateReport) => apiRequest<T.Report>('POST', '/v1/analytics/reports', { body }),
  runReport: (key: string, range: { from: string; to: string } | undefined, signal?: AbortSignal) =>
    apiRequest<T.ReportRun>('POST', `/v1/analytics/reports/${enc(key)}/run`, { body: range ? { range } : {}, signal }),
  archiveReport: (key: string) => apiRequest<T.Report>('DELETE', `/v1/analytics/reports/${enc(key)}`),

  // ---- Data: sources and keys, imports, quarantine, identity settings
  workspace: (signal?: AbortSignal) => adminRequest<Workspace>('GET', '', { signal }),
  updateWorkspace: (body: { name?: string; timeZone?: string }) => adminRequest<Workspace>('PATCH', '', { body }),
  sources: (signal?: AbortSignal) => adminRequest<Items<Source>>('GET', `/sources`, { signal }),
  createSource: (body: CreateSource) => adminRequest<{ source: Source; writeKey: IssuedKey }>('POST', `/sources`, { body }),
  updateSource: (id: string, body: { status?: 'active' | 'disabled'; name?: string; rateLimitPerSecond?: number | null }) =>
    adminRequest<Source>('PATCH', `/sources/${enc(id)}`, { body }),
  keys: (signal?: AbortSignal) => adminRequest<Items<ApiKey>>('GET', `/keys`, { signal }),
  createKey: (body: { kind: 'write' | 'server'; sourceId?: string; permissions?: string[] }) => adminRequest<IssuedKey>('POST', `/keys`, { body }),
  setKeyStatus: (id: string, status: 'active' | 'disabled') => adminRequest<ApiKey>('PATCH', `/keys/${enc(id)}`, { body: { status } }),
  rotateKey: (id: string, graceSeconds: number) => adminRequest<RotatedKey>('POST', `/keys/${enc(id)}/rotate`, { body: { graceSeconds } }),

  imports: (signal?: AbortSignal) => apiRequest<Items<ImportJob>>('GET', '/v1/imports', { signal }),
  importJob: (id: string, signal?: AbortSignal) => apiRequest<ImportJob>('GET', `/v1/imports/${enc(id)}`, { signal }),
  startImport: (file: File, query: Record<string, QueryValue>, onProgress?: (sent: number, total: number) => void) =>
    uploadFile<ImportJob>('/v1/imports', file, { query: { fileName: file.name, ...query }, onProgress }),
  importRejectsUrl: (id: string) => `/v1/imports/${enc(id)}/rejects.ndjson`,

  quarantine: (query: Record<string, QueryValue>, signal?: AbortSignal) => adminRequest<QuarantineList>('GET', `/quarantine`, { query, signal }),
  quarantineItem: (id: string, signal?: AbortSignal) => adminRequest<QuarantineDetail>('GET', `/quarantine/${enc(id)}`, { signal }),
  replay: (id: string, payload?: unknown) => adminRequest<ReplayResult>('POST', `/quarantine/${enc(id)}/replay`, { body: payload === undefined ? {} : { payload } }),
  discard: (id: string) => adminRequest<unknown>('POST', `/quarantine/${enc(id)}/discard`),
  replayAll: (body: { reason?: string; sourceId?: string }) => adminRequest<BulkReplayResult>('POST', `/quarantine/replay`, { body }),

  identitySettings: (signal?: AbortSignal) => adminRequest<IdentitySettingsView>('GET', `/identity-settings`, { signal }),
  putIdentitySettings: (identity: IdentitySettings) => adminRequest<IdentitySettingsView>('PUT', `/identity-settings`, { body: { identity } }),
  identityStats: (signal?: AbortSignal) => adminRequest<IdentityStats>('GET', `/identity/stats`, { signal }),

  // ---- Settings: workspace, collection consent, members and roles, channels, caps and quiet hours
  collectionSettings: (signal?: AbortSignal) => apiRequest<CollectionSettings>('GET', '/v1/workspace/collection-settings', { signal }),
  putCollectionSettings: (body: Partial<CollectionSettings>) => apiRequest<CollectionSettings>('PATCH', '/v1/workspace/collection-settings', { body }),
  members: (signal?: AbortSignal) => adminRequest<Items<Member>>('GET', `/members`, { signal }),
  putMember: (userId: string, role: string) => adminRequest<Member>('PUT', `/members/${enc(userId)}`, { body: { role } }),
  removeMember: (userId: string) => adminRequest<null>('DELETE', `/members/${enc(userId)}`),
  roles: (signal?: AbortSignal) => adminRequest<Items<Role>>('GET', `/roles`, { signal }),
  users: (signal?: AbortSignal) => apiRequest<Items<User>>('GET', '/admin/users', { signal }),
  createUser: (body: { email: string; name?: string; password: string }) => apiRequest<User>('POST', '/admin/users', { body }),

  channelAccounts: (signal?: AbortSignal) => apiRequest<Items<ChannelAccount>>('GET', '/v1/channels/accounts', { signal }),
  putChannelAccount: (body: ChannelAccountBody) => apiRequest<ChannelAccount>('PUT', `/v1/channels/accounts/${enc(body.key)}`, { body }),
  deleteChannelAccount: (key: string) => apiRequest<unknown>('DELETE', `/v1/channels/accounts/${enc(key)}`),
  subscriptionGroups: (signal?: AbortSignal) => apiRequest<Items<SubscriptionGroup>>('GET', '/v1/channels/subscription-groups', { signal }),
  putSubscriptionGroup: (body: { key: string; name: string; channel?: string; mode?: 'opt_in' | 'opt_out' }) =>
    apiRequest<SubscriptionGroup>('PUT', `/v1/channels/subscription-groups/${enc(body.key)}`, { body }),
  policy: (signal?: AbortSignal) => apiRequest<Policy>('GET', '/v1/channels/policy', { signal }),
  putPolicy: (body: Policy) => apiRequest<Policy>('PUT', '/v1/channels/policy', { body }),

  tagLibrary: (locale: string, signal?: AbortSignal) => apiRequest<TagLibrary>('GET', '/v1/tags/library', { query: { locale }, signal }),
  enableTag: (template: string, locale: string) => apiRequest<Tag>('POST', '/v1/tags', { body: { template, locale } }),
  disableTag: (key: string) => apiRequest<Tag>('DELETE', `/v1/tags/${enc(key)}`),
  refreshSegment: (key: string) => apiRequest<{ segment: Segment; computed: unknown[] }>('POST', `/v1/segments/${enc(key)}/refresh`),
};
