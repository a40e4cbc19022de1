/**
 * Response and request types of the API, derived from the server's TypeBox schemas (the same ones
 * that validate requests and generate the OpenAPI document). Type-only imports: no server code is
 * bundled, and a schema change on the server fails the dashboard's typecheck.
 */
import type { Static } from '@sinclair/typebox';
import type {
  IdentityGraphSchema,
  ProfileSchema,
  SearchResultSchema,
  TimelineSchema,
  UnbindResultSchema,
  UnmergeResultSchema,
  VerboseTraitSchema,
} from '../../../server/src/profiles/schemas.ts';
import type {
  CreateSegmentSchema,
  PreviewBodySchema,
  PreviewSchema,
  ProfileSegmentsSchema,
  SegmentListSchema,
  SegmentSchema,
  TransitionsSchema,
  UpdateSegmentSchema,
} from '../../../server/src/segments/schemas.ts';
import type { CatalogueEventDetailSchema, CatalogueListSchema } from '../../../server/src/catalogue/schemas.ts';
import type { DestinationListSchema, DestinationSchema } from '../../../server/src/activation/schemas.ts';
import type { ComputedTraitListSchema } from '../../../server/src/segments/computed/schemas.ts';
import type { TagListSchema } from '../../../server/src/segments/tags/schemas.ts';
import type { OverviewSchema } from '../../../server/src/dashboard/schemas.ts';
import type { StoredEventSchema } from '../../../server/src/ingest/recent-events.ts';
import type { ApiErrorBody } from '../../../server/src/api/errors.ts';

export type { ApiErrorBody };
export type Overview = Static<typeof OverviewSchema>;
export type Profile = Static<typeof ProfileSchema>;
export type VerboseTrait = Static<typeof VerboseTraitSchema>;
export type ProfileSearchResult = Static<typeof SearchResultSchema>;
export type ProfileSummary = ProfileSearchResult['items'][number];
export type Timeline = Static<typeof TimelineSchema>;
export type StoredEvent = Static<typeof StoredEventSchema>;
export type IdentityGraph = Static<typeof IdentityGraphSchema>;
export type UnmergeResult = Static<typeof UnmergeResultSchema>;
export type UnbindResult = Static<typeof UnbindResultSchema>;
export type Segment = Static<typeof SegmentSchema>;
export type SegmentList = Static<typeof SegmentListSchema>;
export type CreateSegment = Static<typeof CreateSegmentSchema>;
export type UpdateSegment = Static<typeof UpdateSegmentSchema>;
export type PreviewBody = Static<typeof PreviewBodySchema>;
export type Preview = Static<typeof PreviewSchema>;
export type Transitions = Static<typeof TransitionsSchema>;
export type ProfileSegments = Static<typeof ProfileSegmentsSchema>;
export type CatalogueList = Static<typeof CatalogueListSchema>;
export type CatalogueEventDetail = Static<typeof CatalogueEventDetailSchema>;
export type Destination = Static<typeof DestinationSchema>;
export type DestinationList = Static<typeof DestinationListSchema>;
export type ComputedTraitList = Static<typeof ComputedTraitListSchema>;
export type TagList = Static<typeof TagListSchema>;
