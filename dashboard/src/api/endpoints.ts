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
};
