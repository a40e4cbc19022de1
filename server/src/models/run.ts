import { createSegment } from '../segments/lifecycle.ts';
import { findSegmentByKey } from '../segments/store.ts';
import type { SystemEvent } from '../segments/transitions.ts';
import type { Db } from '../storage/database.ts';
import { loadActivity, loadBehaviourFeatures, loadOutcomes, loadPurchases, loadSegmentMembers, loadTraitValues, topEventNames, type FeatureSet } from './data.ts';
import type { ClvConfig, LifecycleConfig, LookalikeConfig, PropensityConfig, RfmConfig } from './schemas.ts';
import {
  createRun,
  getModelById,
  getRun,
  markFailed,
  markRunning,
  markSucceeded,
  modelTraitKeys,
  scheduleModel,
  type Model,
  type ModelRun,
} from './store.ts';
import { deciles, InsufficientData, scoreWith, trainClassifier, trainClv, trainLifecycle, trainRfm, type Trained } from './train.ts';
import { encodeTraitFeatures } from './trait-features.ts';
import { writeModelTraits, type TraitChange } from './traits.ts';
import { scrubLogLine } from '../privacy/log-scrub.ts';

/*
 * One training run: read the summaries the model needs, train and score (train.ts), write the
 * scores as traits (traits.ts: segments re-evaluate), record parameters, metrics and
 * diagnostics on the run. The worker task `models.run` calls runModelJob; a scheduled run (no run
 * id in the payload) re-queues the model's next one scheduleHours later, whatever the outcome.
 */

const DAY = 86_400_000;

export interface RunResult {
  run: ModelRun;
  outcome: 'succeeded' | 'failed' | 'skipped';
}

export async function runModelJob(db: Db, payload: unknown): Promise<void> {
  const { workspaceId, modelId, runId } = (payload ?? {}) as { workspaceId?: unknown; modelId?: unknown; runId?: unknown };
  if (typeof workspaceId !== 'string' || typeof modelId !== 'string' || (runId !== undefined && typeof runId !== 'string')) {
    throw new TypeError(`models.run needs { workspaceId, modelId, runId? }, got ${JSON.stringify(payload)}`);
  }
  await runModel(db, workspaceId, modelId, { runId });
}

export interface RunOptions {
  /** A run queued through the API; without it the run is the scheduled one. */
  runId?: string;
  /** The training instant (ms); the clock by default. */
  now?: number;
}

export async function runModel(db: Db, workspaceId: string, modelId: string, options: RunOptions = {}): Promise<RunResult | null> {
  const now = options.now ?? Date.now();
  const model = await getModelById(db, workspaceId, modelId);
  if (!model || model.status === 'archived') return null;
  const scheduled = options.runId === undefined;
  if (scheduled && model.status === 'paused') return null;
  const run = options.runId ? await getRun(db, workspaceId, options.runId) : await createRun(db, workspaceId, model, 'schedule');
  if (!run) return null;
  try {
    // One run of a model at a time: a second one (schedule and API together) gives way.
    const { rows } = await db.query<{ busy: boolean }>(
      `select exists (select 1 from model_runs where workspace_id = $1 and model_id = $2 and status = 'running' and id <> $3
                        and started_at > now() - interval '6 hours') as busy`,
      [workspaceId, model.id, run.id],
    );
    if (rows[0]!.busy) {
      await markFailed(db, workspaceId, run.id, 'another run of this model was in progress');
      return { run: (await getRun(db, workspaceId, run.id))!, outcome: 'skipped' };
    }
    await markRunning(db, workspaceId, run.id);
    try {
      const trained = await train(db, workspaceId, model, now);
      const keys = modelTraitKeys(model.key, model.kind);
      const values = new Map<string, Record<string, unknown>>();
      for (const [profileId, bySuffix] of trained.values) {
        values.set(profileId, Object.fromEntries(Object.entries(bySuffix).map(([suffix, value]) => [`${model.key}_${suffix}`, value])));
      }
      const changed = await writeModelTraits(db, workspaceId, model.key, keys, values, {
        at: new Date(now),
        ...(model.kind === 'lifecycle' ? { events: lifecycleEvents(model, now) } : {}),
      });
      if (model.kind === 'lookalike') trained.metrics.segment = await ensureAudienceSegment(db, workspaceId, model, now);
      await markSucceeded(db, workspaceId, run.id, {
        parameters: trained.parameters,
        metrics: trained.metrics,
        diagnostics: trained.diagnostics,
        profilesScored: trained.values.size,
        profilesChanged: changed,
      });
      return { run: (await getRun(db, workspaceId, run.id))!, outcome: 'succeeded' };
    } catch (error) {
      const message = error instanceof InsufficientData ? `not enough data: ${error.message}` : error instanceof Error ? error.message : String(error);
      await markFailed(db, workspaceId, run.id, message);
      if (!(error instanceof InsufficientData)) console.error(scrubLogLine(JSON.stringify({ level: 'error', msg: `model ${model.key} run failed`, error: message })));
      return { run: (await getRun(db, workspaceId, run.id))!, outcome: 'failed' };
    }
  } finally {
    if (scheduled) await scheduleModel(db, workspaceId, model.id, new Date(Date.now() + model.scheduleHours * 3_600_000));
  }
}

/** A stage change as a timeline event; the message id names the model, profile and run instant, so a retried write stores it once. */
function lifecycleEvents(model: Model, now: number) {
  const stageKey = `${model.key}_stage`;
  return (profileId: string, changes: readonly TraitChange[]): SystemEvent[] => {
    const change = changes.find((c) => c.key === stageKey);
    if (!change || change.value === undefined) return [];
    return [
      {
        messageId: `lifecycle-${model.id}-${profileId}-${now}`,
        event: 'Lifecycle Stage Changed',
        profileId,
        properties: { from: change.previous ?? null, to: change.value, model: model.key },
      },
    ];
  };
}

async function train(db: Db, workspaceId: string, model: Model, now: number): Promise<Trained> {
  const until = new Date(now);
  switch (model.config.kind) {
    case 'rfm': {
      const config = model.config as RfmConfig;
      return trainRfm(await loadPurchases(db, workspaceId, config, until), now);
    }
    case 'lifecycle': {
      const config = model.config as LifecycleConfig;
      const activity = await loadActivity(db, workspaceId, config.activityEvent, config.churnedDays, until);
      return trainLifecycle(activity, now, config);
    }
    case 'clv': {
      const config = model.config as ClvConfig;
      return trainClv(await loadPurchases(db, workspaceId, config, until), now, config);
    }
    case 'churn':
    case 'purchase':
      return trainPropensity(db, workspaceId, model.config as PropensityConfig, now);
    case 'lookalike':
      return trainLookalike(db, workspaceId, model.config as LookalikeConfig, now);
  }
}

/**
 * Churn: among profiles active in the lookback before the cut (now − horizon), did they do
 * nothing in the horizon after it? Purchase: did they purchase in it? Features at the cut train
 * the model; features at now score today's active profiles.
 */
async function trainPropensity(db: Db, workspaceId: string, config: PropensityConfig, now: number): Promise<Trained> {
  const cut = new Date(now - config.horizonDays * DAY);
  const eventNames = await topEventNames(db, workspaceId, new Date(cut.getTime() - config.lookbackDays * DAY), cut, config.purchaseEvent);
  const common = { lookbackDays: config.lookbackDays, purchaseEvent: config.purchaseEvent, revenueProperty: config.revenueProperty, eventNames };
  const training = await loadBehaviourFeatures(db, workspaceId, { ...common, at: cut });
  const outcomes = await loadOutcomes(db, workspaceId, cut, new Date(now), config.purchaseEvent);
  const labels = training.profiles.map((id) => {
    const outcome = outcomes.get(id);
    return config.kind === 'churn' ? (outcome?.active ? 0 : 1) : outcome?.purchased ? 1 : 0;
  });
  const classifier = trainClassifier(training, labels, config.l2);
  const current = await loadBehaviourFeatures(db, workspaceId, { ...common, at: new Date(now) });
  const scores = scoreWith(classifier, current);
  const decile = deciles(scores);
  const values = new Map<string, Record<string, unknown>>();
  current.profiles.forEach((id, i) => values.set(id, { score: Math.round(scores[i]! * 1000) / 1000, decile: decile[i] }));
  return {
    values,
    parameters: {
      label: config.kind === 'churn' ? `no event in the ${config.horizonDays} days after the cut` : `a purchase in the ${config.horizonDays} days after the cut`,
      features: classifier.names,
      intercept: classifier.model.intercept,
      coefficients: Object.fromEntries(classifier.names.map((name, j) => [name, classifier.model.coefficients[j]])),
      standardization: { means: classifier.scaler.means, scales: classifier.scaler.scales },
      trainingCut: cut.toISOString(),
    },
    metrics: { ...classifier.metrics, scored: current.profiles.length },
    diagnostics: { ...classifier.diagnostics, topFeatures: classifier.topFeatures },
  };
}

/**
 * Lookalike: the seed segment's members against every other profile active in the lookback, a
 * regularised logistic regression on behaviour features and the configured traits; the non-seed profiles ranked by it and
 * the top N (or top %) given `<key>_rank` 1…N and `<key>_score`, which the audience segment
 * (`trait.<key>_rank exists`) reads.
 */
async function trainLookalike(db: Db, workspaceId: string, config: LookalikeConfig, now: number): Promise<Trained> {
  const seeds = await loadSegmentMembers(db, workspaceId, config.seedSegment);
  if (!seeds) throw new InsufficientData(`seed segment "${config.seedSegment}" does not exist`);
  const at = new Date(now);
  const eventNames = await topEventNames(db, workspaceId, new Date(now - config.lookbackDays * DAY), at, config.purchaseEvent);
  const behaviour: FeatureSet = await loadBehaviourFeatures(db, workspaceId, {
    at,
    lookbackDays: config.lookbackDays,
    purchaseEvent: config.purchaseEvent,
    revenueProperty: config.revenueProperty,
    eventNames,
  });
  // Models stored before traits were a setting have none in their config.
  const traitKeys = config.traits ?? [];
  const traitColumns = encodeTraitFeatures(traitKeys, behaviour.profiles, await loadTraitValues(db, workspaceId, traitKeys));
  const features: FeatureSet = {
    names: [...behaviour.names, ...traitColumns.names],
    profiles: behaviour.profiles,
    rows: behaviour.rows.map((row, i) => [...row, ...traitColumns.rows[i]!]),
  };
  const labels: number[] = features.profiles.map((id) => (seeds.has(id) ? 1 : 0));
  const classifier = trainClassifier(features, labels, config.l2);
  const scores = scoreWith(classifier, features);
  const candidates = features.profiles.map((id, i) => ({ id, score: scores[i]! })).filter((c) => !seeds.has(c.id));
  candidates.sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : 1));
  const size = 'count' in config.size ? config.size.count : Math.ceil((config.size.percent / 100) * candidates.length);
  const audience = candidates.slice(0, size);
  const values = new Map<string, Record<string, unknown>>();
  audience.forEach((c, rank) => values.set(c.id, { score: Math.round(c.score * 10_000) / 10_000, rank: rank + 1 }));
  return {
    values,
    parameters: {
      seedSegment: config.seedSegment,
      traits: traitKeys,
      features: classifier.names,
      intercept: classifier.model.intercept,
      coefficients: Object.fromEntries(classifier.names.map((name, j) => [name, classifier.model.coefficients[j]])),
    },
    metrics: {
      ...classifier.metrics,
      seeds: seeds.size,
      seedsWithActivity: labels.reduce((s, v) => s + v, 0),
      candidates: candidates.length,
      audience: audience.length,
      minimumScore: audience.at(-1)?.score ?? null,
    },
    diagnostics: { ...classifier.diagnostics, topFeatures: classifier.topFeatures },
  };
}

/** The audience segment, created on the first run (real-time, on the rank trait); an existing one is left as its owner made it. */
async function ensureAudienceSegment(db: Db, workspaceId: string, model: Model, now: number): Promise<{ key: string; created: boolean }> {
  const config = model.config as LookalikeConfig;
  const key = config.segmentKey ?? model.key;
  if (await findSegmentByKey(db, workspaceId, key)) return { key, created: false };
  await createSegment(
    db,
    workspaceId,
    {
      key,
      name: `Lookalike: ${model.name}`,
      description: `Profiles most like the members of "${config.seedSegment}" (model ${model.key})`,
      kind: 'realtime',
      text: `trait.${model.key}_rank exists`,
    },
    new Date(now),
  );
  return { key, created: true };
}
