import { Type, type Static } from '@sinclair/typebox';
import type { ConsentRequirement } from '../ingest/consent.ts';
import type { Queryable } from '../storage/database.ts';
import { NotFoundError } from './store.ts';

/** Matches the categories a segment's consent("…") can name (identity/consents.ts). */
const Category = Type.String({ minLength: 1, maxLength: 64, pattern: '^\\S(.*\\S)?$', description: 'A consent category, e.g. analytics' });

export const CollectionSettingsSchema = Type.Object({
  requireConsent: Type.Boolean({
    description:
      'Events are stored only when their context.consent.categoryPreferences grants consentCategories; the SDKs hold events on the device until then',
  }),
  consentCategories: Type.Array(Category, {
    maxItems: 20,
    description: 'Categories that must all be granted; empty means at least one granted category',
  }),
});
export type CollectionSettings = Static<typeof CollectionSettingsSchema>;

export const UpdateCollectionSettingsSchema = Type.Object(
  {
    requireConsent: Type.Optional(CollectionSettingsSchema.properties.requireConsent),
    consentCategories: Type.Optional(CollectionSettingsSchema.properties.consentCategories),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type UpdateCollectionSettings = Static<typeof UpdateCollectionSettingsSchema>;

/** What ingestion enforces for these settings: null when consent is not required. */
export function consentRequirement(settings: CollectionSettings): ConsentRequirement | null {
  return settings.requireConsent ? { categories: settings.consentCategories } : null;
}

interface SettingsRow {
  require_consent: boolean;
  consent_categories: string[];
}
const toSettings = (row: SettingsRow): CollectionSettings => ({ requireConsent: row.require_consent, consentCategories: row.consent_categories });

export async function getCollectionSettings(db: Queryable, workspaceId: string): Promise<CollectionSettings> {
  const { rows } = await db.query<SettingsRow>('select require_consent, consent_categories from workspaces where id = $1', [workspaceId]);
  if (!rows[0]) throw new NotFoundError(`Workspace "${workspaceId}" not found`);
  return toSettings(rows[0]);
}

/** Changes the given settings; absent fields keep their value. Categories are kept once each, in order. */
export async function updateCollectionSettings(db: Queryable, workspaceId: string, input: UpdateCollectionSettings): Promise<CollectionSettings> {
  const categories = input.consentCategories === undefined ? null : [...new Set(input.consentCategories)];
  const { rows } = await db.query<SettingsRow>(
    `update workspaces set
       require_consent = coalesce($2, require_consent),
       consent_categories = coalesce($3::text[], consent_categories),
       updated_at = now()
     where id = $1 returning require_consent, consent_categories`,
    [workspaceId, input.requireConsent ?? null, categories],
  );
  if (!rows[0]) throw new NotFoundError(`Workspace "${workspaceId}" not found`);
  return toSettings(rows[0]);
}
