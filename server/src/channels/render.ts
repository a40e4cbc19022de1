import type { RecipientFacts } from './recipients.ts';
import { localeOf, profileVariables } from './recipients.ts';
import type { StoredTemplate } from './template-store.ts';
import { pickLocale, renderFields, type TemplateFields } from './templates.ts';

export interface RenderedMessage {
  locale: string;
  fields: TemplateFields;
}

/** Renders a template version for one profile, in the profile's locale (or `locale` when given). */
export function renderForProfile(
  workspaceId: string,
  template: Pick<StoredTemplate, 'key' | 'version' | 'defaultLocale' | 'content'>,
  facts: RecipientFacts,
  variables: { event?: Record<string, unknown>; journey?: Record<string, unknown> },
  message: Record<string, unknown>,
  locale?: string,
): RenderedMessage {
  const chosen = pickLocale(template.content, template.defaultLocale, locale ?? localeOf(facts));
  const fields = renderFields(`${workspaceId}\u0000${template.key}\u0000${template.version}`, template.content[chosen]!, {
    profile: profileVariables(facts),
    traits: facts.traits,
    event: variables.event ?? {},
    journey: variables.journey ?? {},
    message,
  }, chosen);
  return { locale: chosen, fields };
}
