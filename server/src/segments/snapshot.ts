/**
 * What the incremental evaluator knows of one profile: everything a segment condition can read.
 * The SQL compiler reads the same facts from their tables (profile_traits, profile_identifiers,
 * profile_consents, segment_memberships, events), so a snapshot loaded from the database and the
 * database itself must give the same answer.
 */
export interface ProfileSnapshot {
  profileId: string;
  /** profile_traits: key → JSON value. */
  traits: Readonly<Record<string, unknown>>;
  /** Types of the profile's live identifiers (profile_identifiers with unbound_at null). */
  identifierTypes: ReadonlySet<string>;
  /** profile_consents: category → granted. */
  consents: ReadonlyMap<string, boolean>;
  /** Keys of the segments the profile is a member of now. */
  memberships: ReadonlySet<string>;
  /**
   * The profile's events, in any order. A loader may leave out events no condition can match
   * (other names, types other than track/page/screen), never one that could.
   */
  events: readonly ProfileEvent[];
}

export interface ProfileEvent {
  seq: number;
  type: 'track' | 'identify' | 'page' | 'screen' | 'group' | 'alias';
  /** events.event (track). */
  event: string | null;
  /** events.name (page/screen). */
  name: string | null;
  /** Milliseconds since the epoch. */
  timestamp: number;
  properties: Readonly<Record<string, unknown>> | null;
  context: Readonly<Record<string, unknown>> | null;
}

export interface Evaluation {
  member: boolean;
  /**
   * The earliest moment after `now` at which the answer may change with no new data (an event
   * leaving a window, a negated sequence's wait ending, a date coming into range); null if none.
   * Early is allowed (a wasted re-check), late is not (a missed exit).
   */
  recheckAt: number | null;
}
