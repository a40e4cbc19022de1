import type { Queryable } from '../storage/database.ts';

/** Everything known to identify one person in one workspace, gathered before erasure or export. */
export interface DataSubject {
  workspaceId: string;
  /** The profile and every profile merged into it. */
  profileIds: string[];
  /** Every identifier ever linked to those profiles (unbound ones too), as stored. */
  identifiers: Array<{ type: string; value: string }>;
  /** Distinct identifier values, for tables that hold them as plain text (payloads, ids). */
  values: string[];
  /** Keyed-hash tokens of the PII identifiers among them, as profile_identifiers and identity logs store them (privacy/pii-codec.ts). */
  tokens?: string[];
}

/**
 * A table (or group of tables) that holds personal data. Every module that stores data about a
 * person registers one in privacy/steps.ts: `export` returns what it holds about the subject for
 * an access request; `erase` deletes it or anonymises it irreversibly and returns rows affected.
 * Both run inside the request's transaction.
 */
export interface PersonalDataStep {
  name: string;
  /** 'data' runs first; 'profile' (the profile rows themselves) last. */
  phase?: 'data' | 'profile';
  export?(db: Queryable, subject: DataSubject): Promise<unknown>;
  erase(db: Queryable, subject: DataSubject): Promise<number>;
}

const steps: PersonalDataStep[] = [];

export function registerPersonalData(step: PersonalDataStep): void {
  if (steps.some((existing) => existing.name === step.name)) throw new Error(`Personal-data step "${step.name}" is registered twice`);
  steps.push(step);
}

/** Registered steps, data before profiles. */
export function personalDataSteps(): readonly PersonalDataStep[] {
  return [...steps.filter((step) => step.phase !== 'profile'), ...steps.filter((step) => step.phase === 'profile')];
}
