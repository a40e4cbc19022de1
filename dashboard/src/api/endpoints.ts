import { apiRequest, type QueryValue } from './client.ts';
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
  TagList,
  Timeline,
  Transitions,
  UnbindResult,
  UnmergeResult,
  UpdateSegment,
} from './types.ts';

import type * as T from './types.ts';

const enc = encodeURIComponent;

/** The documented API the dashboard uses, one typed function per call. */
export const api = {
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
};
