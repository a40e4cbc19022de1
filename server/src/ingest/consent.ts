/**
 * The workspace's consent requirement on collection, as a pure rule over one event's context.
 * Consent travels the way Segment's consent spec puts it: `context.consent.categoryPreferences`,
 * e.g. `{ "analytics": true, "advertising": false }`. Category names are compared exactly.
 */
export interface ConsentRequirement {
  /** Categories that must all be granted (`true`); empty means at least one granted category. */
  categories: readonly string[];
}

export interface ConsentFailure {
  field: string;
  message: string;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const listed = (categories: readonly string[]) => categories.map((category) => `"${category}"`).join(', ');

/** Why an event's context does not meet the requirement, or null when it does. */
export function consentFailure(context: unknown, requirement: ConsentRequirement): ConsentFailure | null {
  const { categories } = requirement;
  const needs = categories.length === 0 ? 'consent to at least one category' : `consent to ${listed(categories)}`;
  const consent = isObject(context) ? context.consent : undefined;
  const preferences = isObject(consent) ? consent.categoryPreferences : undefined;
  if (!isObject(preferences)) {
    return {
      field: 'context.consent.categoryPreferences',
      message: `This workspace stores events only with ${needs}; the event has no context.consent.categoryPreferences`,
    };
  }
  if (categories.length === 0) {
    if (Object.values(preferences).some((granted) => granted === true)) return null;
    return { field: 'context.consent.categoryPreferences', message: `This workspace stores events only with ${needs}; none is granted` };
  }
  const missing = categories.find((category) => preferences[category] !== true);
  if (missing === undefined) return null;
  const state = preferences[missing] === false ? 'refused' : 'not granted';
  return {
    field: `context.consent.categoryPreferences.${missing}`,
    message: `This workspace stores events only with ${needs}; "${missing}" is ${state}`,
  };
}
