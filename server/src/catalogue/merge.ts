import type { WorkspaceObservations } from './schemas.ts';

export interface CatalogueEventRow {
  workspaceId: string;
  type: string;
  name: string;
  firstSeen: string;
  lastSeen: string;
  volume: number;
}

export interface CataloguePropertyRow {
  workspaceId: string;
  type: string;
  name: string;
  scope: string;
  path: string;
  typeCounts: Record<string, number>;
  firstSeen: string;
  lastSeen: string;
  volume: number;
}

const earlier = (a: string, b: string) => (Date.parse(a) <= Date.parse(b) ? a : b);
const later = (a: string, b: string) => (Date.parse(a) >= Date.parse(b) ? a : b);

function compareKeys(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/**
 * Folds the observations of many requests into one row per catalogue key: volumes and type counts
 * add up, first/last seen widen. Rows come back sorted by primary key so concurrent drains lock
 * the same rows in the same order and cannot deadlock.
 */
export function mergeObservations(entries: readonly WorkspaceObservations[]): {
  events: CatalogueEventRow[];
  properties: CataloguePropertyRow[];
} {
  const events = new Map<string, { key: string[]; row: CatalogueEventRow }>();
  const properties = new Map<string, { key: string[]; row: CataloguePropertyRow }>();
  for (const { workspaceId, observations } of entries) {
    for (const observation of observations) {
      const eventKey = [workspaceId, observation.type, observation.name];
      const eventId = eventKey.join('\u0000');
      const event = events.get(eventId);
      if (event) {
        event.row.volume += observation.count;
        event.row.firstSeen = earlier(event.row.firstSeen, observation.firstSeen);
        event.row.lastSeen = later(event.row.lastSeen, observation.lastSeen);
      } else {
        events.set(eventId, {
          key: eventKey,
          row: {
            workspaceId,
            type: observation.type,
            name: observation.name,
            firstSeen: observation.firstSeen,
            lastSeen: observation.lastSeen,
            volume: observation.count,
          },
        });
      }

      for (const property of observation.properties) {
        const propertyKey = [...eventKey, property.scope, property.path];
        const propertyId = propertyKey.join('\u0000');
        const seen = Object.values(property.typeCounts).reduce((sum, count) => sum + count, 0);
        const existing = properties.get(propertyId);
        if (existing) {
          const row = existing.row;
          for (const [type, count] of Object.entries(property.typeCounts)) row.typeCounts[type] = (row.typeCounts[type] ?? 0) + count;
          row.volume += seen;
          row.firstSeen = earlier(row.firstSeen, observation.firstSeen);
          row.lastSeen = later(row.lastSeen, observation.lastSeen);
        } else {
          properties.set(propertyId, {
            key: propertyKey,
            row: {
              workspaceId,
              type: observation.type,
              name: observation.name,
              scope: property.scope,
              path: property.path,
              typeCounts: { ...property.typeCounts },
              firstSeen: observation.firstSeen,
              lastSeen: observation.lastSeen,
              volume: seen,
            },
          });
        }
      }
    }
  }
  const sorted = <T>(entries: Iterable<{ key: string[]; row: T }>) =>
    [...entries].sort((a, b) => compareKeys(a.key, b.key)).map((entry) => entry.row);
  return { events: sorted(events.values()), properties: sorted(properties.values()) };
}
