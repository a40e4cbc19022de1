import type { Profile, VerboseTrait } from './schemas.ts';

function isVerbose(trait: unknown): trait is VerboseTrait {
  if (trait === null || typeof trait !== 'object') return false;
  const candidate = trait as Partial<Record<keyof VerboseTrait, unknown>>;
  return 'value' in candidate && Array.isArray(candidate.history) && typeof candidate.messageId === 'string' &&
    typeof candidate.observedAt === 'string' && typeof candidate.source === 'object' && candidate.source !== null;
}

function show(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function eventLabel(event: Profile['events'][number]): string {
  if (event.type === 'track') return event.event ?? '(unnamed)';
  if ((event.type === 'page' || event.type === 'screen') && event.name) return `${event.type} ${event.name}`;
  return event.type;
}

/** A profile as a terminal reader wants it: who, what we know, how we know them, what they did. */
export function formatProfile(profile: Profile): string {
  const lines: string[] = [`Profile ${profile.id}`];
  if (profile.mergedFrom) lines.push(`  (asked for ${profile.mergedFrom}, which was merged into this profile)`);
  if (profile.matchedBy) lines.push(`  found by ${profile.matchedBy.type} ${profile.matchedBy.value}`);
  lines.push(`  created ${profile.createdAt}   first seen ${profile.firstSeen ?? '-'}   last seen ${profile.lastSeen ?? '-'}`);

  const traits = Object.entries(profile.traits).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  lines.push('', `Traits (${traits.length})`);
  const width = Math.max(0, ...traits.map(([key]) => key.length));
  for (const [key, trait] of traits) {
    if (isVerbose(trait)) {
      lines.push(`  ${key.padEnd(width)}  ${show(trait.value)}   (${trait.source.name}, ${trait.observedAt}, event ${trait.messageId})`);
    } else {
      lines.push(`  ${key.padEnd(width)}  ${show(trait)}`);
    }
  }

  lines.push('', `Identifiers (${profile.identifiers.length})`);
  for (const identifier of profile.identifiers) {
    const source = identifier.source ? `${identifier.source.name} (${identifier.source.kind})` : 'no source';
    lines.push(
      `  ${identifier.type}: ${identifier.value}   via ${source}, ${identifier.firstSeen} .. ${identifier.lastSeen}` +
        (identifier.linkedBy.messageId ? `, linked by ${identifier.linkedBy.via} ${identifier.linkedBy.messageId}` : ''),
    );
  }

  lines.push('', `Tags (${profile.tags.length})`);
  for (const tag of profile.tags) lines.push(`  ${tag.name} [${tag.key}]   since ${tag.enteredAt}`);

  lines.push('', `Latest events (${profile.events.length}${profile.eventsNextCursor ? ', more available' : ''})`);
  for (const event of profile.events) lines.push(`  ${event.timestamp}  ${eventLabel(event)}   ${event.messageId}`);
  return lines.join('\n');
}
