/**
 * CPU per event of identity resolution's in-memory part alone (extraction, normalisation, the
 * decision, traits: `startBatch` … `finish`), no database: the identity benchmark's events
 * (bench/identity.ts) resolved in batches of IDENTITY_BATCH against the graph the earlier batches
 * built, as the resolver would load it. `node --import tsx bench/identity-memory.ts`
 * (MEMORY_EVENTS, default 100,000; MEMORY_ROUNDS, default 5; prints the best and median round).
 */
import crypto from 'node:crypto';
import { startBatch, type KnownProfile } from '../server/src/identity/batch.ts';
import { extractIdentifiers, identifierKey } from '../server/src/identity/extract.ts';
import { defaultIdentityConfig } from '../server/src/identity/identifier-types.ts';
import { IDENTITY_BATCH } from '../server/src/identity/loop.ts';
import type { QueuedEvent } from '../server/src/identity/batch.ts';
import { arrivalOrder } from './identity.ts';

const count = Number(process.env.MEMORY_EVENTS ?? 100_000);
const rounds = Number(process.env.MEMORY_ROUNDS ?? 5);
const events: QueuedEvent[] = arrivalOrder(Math.ceil(count / 10)).map((event, seq) => ({
  seq,
  messageId: event.messageId,
  timestamp: new Date(event.timestamp),
  sourceId: 'src',
  type: event.type,
  userId: event.userId,
  anonymousId: event.anonymousId,
  previousId: event.previousId,
  traits: event.traits,
  context: event.context,
}));
const config = defaultIdentityConfig();
const strategies = { traits: { visits: { kind: 'sum' as const } } };
const sources = new Map([['src', { kind: 'web', name: 'Web shop' }]]);

function runOnce(): number {
  // The stored graph between batches, as loadOwnerGraph would return it.
  const stored = new Map<string, KnownProfile>();
  const ownerOf = new Map<string, string>();
  let micros = 0;
  for (let start = 0; start < events.length; start += IDENTITY_BATCH) {
    const chunk = events.slice(start, start + IDENTITY_BATCH);
    const started = process.cpuUsage();
    const owners = new Set<string>();
    const extractions = chunk.map((event) => extractIdentifiers(event, config));
    for (const extraction of extractions) {
      for (const identifier of extraction.identifiers) {
        const owner = ownerOf.get(identifierKey(identifier));
        if (owner) owners.add(owner);
      }
    }
    const batch = startBatch({
      config, strategies, sources, splits: new Set(), now: new Date(),
      profiles: [...owners].map((id) => stored.get(id)!),
      newProfileId: () => crypto.randomUUID(),
    });
    chunk.forEach((event, i) => batch.add(event, extractions[i]));
    const result = batch.finish();
    const used = process.cpuUsage(started);
    micros += used.user + used.system;
    for (const merge of result.merges) for (const absorbed of merge.absorbed) stored.delete(absorbed.profileId);
    for (const profile of result.newProfiles) stored.set(profile.id, { id: profile.id, createdAt: profile.createdAt, identifiers: [], traits: {} });
    for (const link of result.links) {
      ownerOf.set(identifierKey(link), link.profileId);
    }
    for (const merge of result.merges) for (const absorbed of merge.absorbed) for (const identifier of absorbed.identifiers) ownerOf.set(identifierKey(identifier), merge.survivorId);
    // Rebuild each live profile's identifiers and traits from the owner map and the result.
    const byProfile = new Map<string, Array<{ type: string; value: string }>>();
    for (const [key, profileId] of ownerOf) {
      if (!result.activity.has(profileId)) continue;
      const at = key.indexOf(':');
      const list = byProfile.get(profileId) ?? [];
      list.push({ type: key.slice(0, at), value: key.slice(at + 1) });
      byProfile.set(profileId, list);
    }
    for (const [profileId, identifiers] of byProfile) {
      const profile = stored.get(profileId);
      if (profile) profile.identifiers = identifiers;
    }
    for (const [profileId, traits] of result.traits) {
      const profile = stored.get(profileId);
      if (profile) profile.traits = traits;
    }
  }
  return micros / events.length;
}

const results: number[] = [];
for (let round = 0; round < rounds; round++) results.push(runOnce());
results.sort((a, b) => a - b);
console.log(`in-memory resolution, ${events.length.toLocaleString('en')} events, batch ${IDENTITY_BATCH}: best ${results[0]!.toFixed(1)} µs/event, median ${results[Math.floor(results.length / 2)]!.toFixed(1)} µs/event`);
