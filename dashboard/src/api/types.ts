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
import type { OverviewSchema, SegmentTrendsSchema } from '../../../server/src/dashboard/schemas.ts';
import type { StoredEventSchema } from '../../../server/src/ingest/recent-events.ts';
import type { ApiErrorBody } from '../../../server/src/api/errors.ts';

export type { ApiErrorBody };
export type Overview = Static<typeof OverviewSchema>;
export type SegmentTrends = Static<typeof SegmentTrendsSchema>;
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

import type { UserSchema } from '../../../server/src/privacy/users.ts';
export type User = Static<typeof UserSchema>;
/** The answer of POST /v1/auth/login and GET /v1/auth/session (its schema is private to the route module). */
export interface LoginAnswer {
  kind: string;
  user?: User;
  workspaces: Array<{ id: string; slug: string; name: string; role: string }>;
  csrfToken?: string;
}

// ---- Journeys, channels' templates and messages, analytics (journeys canvas and analytics pages) ----
import type { JourneyDefinitionSchema, NodeSchema, TriggerSchema } from '../../../server/src/journeys/definition.ts';
import type {
  ArchiveResultSchema,
  CreateJourneySchema,
  InstanceDetailSchema,
  InstanceListSchema,
  InstanceSchema,
  JourneyListSchema,
  JourneySchema,
  JourneyVersionListSchema,
  MigrateResultSchema,
  NodeCountsSchema,
  ProblemSchema,
  ProblemsSchema,
  PublishResultSchema,
  TestEntryResultSchema,
} from '../../../server/src/journeys/schemas.ts';
import type {
  MessageListSchema,
  PreviewSchema as TemplatePreviewSchema,
  TemplateBodySchema,
  TemplateListSchema,
  TemplateSchema,
  TemplateVersionBodySchema,
} from '../../../server/src/channels/schemas.ts';
import type { FunnelQuerySchema, FunnelResultSchema } from '../../../server/src/analytics/funnel.ts';
import type { RetentionQuerySchema, RetentionResultSchema } from '../../../server/src/analytics/retention.ts';
import type { PathsQuerySchema, PathsResultSchema } from '../../../server/src/analytics/paths.ts';
import type { TrendQuerySchema, TrendResultSchema } from '../../../server/src/analytics/trends.ts';
import type { TouchpointQuerySchema, TouchpointResultSchema } from '../../../server/src/analytics/touchpoints.ts';
import type { AttributionQuerySchema, AttributionResultSchema } from '../../../server/src/analytics/attribution.ts';
import type { JourneyResultsSchema } from '../../../server/src/analytics/experiments.ts';
import type { BreakdownSchema, EventSelectorSchema } from '../../../server/src/analytics/definition.ts';
import type { CreateReportSchema, ReportListSchema, ReportRunSchema, ReportSchema } from '../../../server/src/analytics/reports.ts';
import type { DropOffSegmentBodySchema, DropOffSegmentResultSchema } from '../../../server/src/dashboard/schemas.ts';

export type JourneyDefinition = Static<typeof JourneyDefinitionSchema>;
export type JourneyNode = Static<typeof NodeSchema>;
export type JourneyTrigger = Static<typeof TriggerSchema>;
export type Journey = Static<typeof JourneySchema>;
export type JourneyList = Static<typeof JourneyListSchema>;
export type JourneyVersionList = Static<typeof JourneyVersionListSchema>;
export type CreateJourney = Static<typeof CreateJourneySchema>;
export type JourneyProblem = Static<typeof ProblemSchema>;
export type JourneyProblems = Static<typeof ProblemsSchema>;
export type PublishResult = Static<typeof PublishResultSchema>;
export type MigrateResult = Static<typeof MigrateResultSchema>;
export type ArchiveResult = Static<typeof ArchiveResultSchema>;
export type TestEntryResult = Static<typeof TestEntryResultSchema>;
export type JourneyInstance = Static<typeof InstanceSchema>;
export type JourneyInstanceList = Static<typeof InstanceListSchema>;
export type JourneyInstanceDetail = Static<typeof InstanceDetailSchema>;
export type JourneyStats = Static<typeof NodeCountsSchema>;
export type JourneyResults = Static<typeof JourneyResultsSchema>;
export type Template = Static<typeof TemplateSchema>;
export type TemplateList = Static<typeof TemplateListSchema>;
export type TemplateBody = Static<typeof TemplateBodySchema>;
export type TemplateVersionBody = Static<typeof TemplateVersionBodySchema>;
export type TemplatePreview = Static<typeof TemplatePreviewSchema>;
export type MessageList = Static<typeof MessageListSchema>;
export type EventSelector = Static<typeof EventSelectorSchema>;
export type Breakdown = Static<typeof BreakdownSchema>;
export type FunnelQuery = Static<typeof FunnelQuerySchema>;
export type FunnelResult = Static<typeof FunnelResultSchema>;
export type RetentionQuery = Static<typeof RetentionQuerySchema>;
export type RetentionResult = Static<typeof RetentionResultSchema>;
export type PathsQuery = Static<typeof PathsQuerySchema>;
export type PathsResult = Static<typeof PathsResultSchema>;
export type TrendQuery = Static<typeof TrendQuerySchema>;
export type TrendResult = Static<typeof TrendResultSchema>;
export type TouchpointQuery = Static<typeof TouchpointQuerySchema>;
export type TouchpointResult = Static<typeof TouchpointResultSchema>;
export type AttributionQuery = Static<typeof AttributionQuerySchema>;
export type AttributionResult = Static<typeof AttributionResultSchema>;
export type Report = Static<typeof ReportSchema>;
export type ReportList = Static<typeof ReportListSchema>;
export type ReportRun = Static<typeof ReportRunSchema>;
export type CreateReport = Static<typeof CreateReportSchema>;
export type DropOffSegmentBody = Static<typeof DropOffSegmentBodySchema>;
export type DropOffSegmentResult = Static<typeof DropOffSegmentResultSchema>;
// ---- Data and Settings pages (sources, keys, imports, quarantine, identity, workspace, members, channels)
import type { ApiKeySchema, IssuedKeySchema, RotatedKeySchema, SourceSchema, WorkspaceSchema, CreateSourceSchema } from '../../../server/src/workspaces/schemas.ts';
import type { CollectionSettingsSchema } from '../../../server/src/workspaces/collection-settings.ts';
import type { ImportJobSchema } from '../../../server/src/ingest/import/jobs.ts';
import type { BulkReplayResultSchema, QuarantineDetailSchema, QuarantineListSchema, ReplayResultSchema } from '../../../server/src/ingest/quarantine.ts';
import type { IdentitySettingsViewSchema, IdentityStatsSchema } from '../../../server/src/profiles/schemas.ts';
import type { IdentitySettingsSchema } from '../../../server/src/identity/identifier-types.ts';
import type { MemberSchema, RoleSchema } from '../../../server/src/privacy/users.ts';
import type { AccountBodySchema, AccountSchema, PolicySchema, SubscriptionGroupSchema } from '../../../server/src/channels/schemas.ts';
import type { LibrarySchema, TagSchema } from '../../../server/src/segments/tags/schemas.ts';

export type Workspace = Static<typeof WorkspaceSchema>;
export type Source = Static<typeof SourceSchema>;
export type CreateSource = Static<typeof CreateSourceSchema>;
export type ApiKey = Static<typeof ApiKeySchema>;
export type IssuedKey = Static<typeof IssuedKeySchema>;
export type RotatedKey = Static<typeof RotatedKeySchema>;
export type CollectionSettings = Static<typeof CollectionSettingsSchema>;
export type ImportJob = Static<typeof ImportJobSchema>;
export type QuarantineList = Static<typeof QuarantineListSchema>;
export type QuarantineItem = QuarantineList['items'][number];
export type QuarantineDetail = Static<typeof QuarantineDetailSchema>;
export type ReplayResult = Static<typeof ReplayResultSchema>;
export type BulkReplayResult = Static<typeof BulkReplayResultSchema>;
export type IdentitySettingsView = Static<typeof IdentitySettingsViewSchema>;
export type IdentitySettings = Static<typeof IdentitySettingsSchema>;
export type IdentityStats = Static<typeof IdentityStatsSchema>;
export type Member = Static<typeof MemberSchema>;
export type Role = Static<typeof RoleSchema>;
export type ChannelAccount = Static<typeof AccountSchema>;
export type ChannelAccountBody = Static<typeof AccountBodySchema>;
export type Policy = Static<typeof PolicySchema>;
export type SubscriptionGroup = Static<typeof SubscriptionGroupSchema>;
export type TagLibrary = Static<typeof LibrarySchema>;
export type Tag = Static<typeof TagSchema>;
