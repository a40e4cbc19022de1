/*
 * Attribution models, pure. A conversion's path is its touches in time order (channel and age in
 * seconds before the conversion); each rule model splits one conversion (and its value) over them.
 * The data-driven model is a first-order Markov chain over all paths, converting and not, crediting
 * each channel by its removal effect.
 */

export const RULE_MODELS = ['first_touch', 'last_touch', 'last_non_direct', 'linear', 'time_decay', 'position_based'] as const;
export type RuleModel = (typeof RULE_MODELS)[number];
export type Model = RuleModel | 'markov';

export interface Touch {
  channel: string;
  /** Seconds before the conversion. */
  ageSeconds: number;
}

export interface ModelOptions {
  /** The channel name of direct visits, skipped by last_non_direct. */
  direct: string;
  /** Half-life of time_decay, in seconds. */
  halfLifeSeconds: number;
}

/** Each touch's share of one conversion under a rule model (shares add up to 1; an empty path gives none). */
export function ruleWeights(model: RuleModel, path: readonly Touch[], options: ModelOptions): number[] {
  const n = path.length;
  if (n === 0) return [];
  const weights = new Array<number>(n).fill(0);
  switch (model) {
    case 'first_touch':
      weights[0] = 1;
      return weights;
    case 'last_touch':
      weights[n - 1] = 1;
      return weights;
    case 'last_non_direct': {
      let index = n - 1;
      while (index > 0 && path[index]!.channel === options.direct) index--;
      weights[index === 0 && path[0]!.channel === options.direct ? n - 1 : index] = 1;
      return weights;
    }
    case 'linear':
      return weights.fill(1 / n);
    case 'time_decay': {
      const raw = path.map((touch) => 2 ** (-touch.ageSeconds / options.halfLifeSeconds));
      const total = raw.reduce((sum, w) => sum + w, 0);
      return raw.map((w) => w / total);
    }
    case 'position_based': {
      if (n === 1) return [1];
      if (n === 2) return [0.5, 0.5];
      weights.fill(0.2 / (n - 2));
      weights[0] = 0.4;
      weights[n - 1] = 0.4;
      return weights;
    }
  }
}

export interface ConversionPath {
  touches: Touch[];
  value: number;
}

export interface Credit {
  channel: string;
  conversions: number;
  value: number;
}

/** Credits per channel under a rule model, biggest first. */
export function ruleCredits(model: RuleModel, paths: readonly ConversionPath[], options: ModelOptions): Credit[] {
  const credits = new Map<string, Credit>();
  for (const path of paths) {
    ruleWeights(model, path.touches, options).forEach((weight, index) => {
      const channel = path.touches[index]!.channel;
      const credit = credits.get(channel) ?? { channel, conversions: 0, value: 0 };
      credit.conversions += weight;
      credit.value += weight * path.value;
      credits.set(channel, credit);
    });
  }
  return sortCredits([...credits.values()]);
}

function sortCredits(credits: Credit[]): Credit[] {
  return credits.sort((a, b) => b.conversions - a.conversions || a.channel.localeCompare(b.channel));
}

/** A sequence of channels and how many journeys followed it, converting or not. */
export interface ChannelJourney {
  channels: readonly string[];
  converted: boolean;
  count: number;
}

const START = '\u0000start';
const CONVERSION = '\u0000conversion';
const NULL = '\u0000null';

/**
 * Probability of reaching conversion from the start of a first-order chain fitted to `journeys`,
 * with `removed` (if any) turned into a dead end. Solved by Gauss–Seidel iteration on the
 * absorption probabilities (p(conversion) = 1, p(null) = 0, p(s) = Σ T(s, t) p(t)).
 */
export function conversionProbability(journeys: readonly ChannelJourney[], removed?: string): number {
  const transitions = new Map<string, Map<string, number>>();
  const add = (from: string, to: string, count: number) => {
    const row = transitions.get(from) ?? new Map<string, number>();
    row.set(to, (row.get(to) ?? 0) + count);
    transitions.set(from, row);
  };
  for (const journey of journeys) {
    if (journey.channels.length === 0) continue;
    let previous = START;
    for (const channel of journey.channels) {
      add(previous, channel, journey.count);
      previous = channel;
    }
    add(previous, journey.converted ? CONVERSION : NULL, journey.count);
  }
  const states = [...transitions.keys()];
  const probability = new Map<string, number>([[CONVERSION, 1], [NULL, 0]]);
  if (removed !== undefined) probability.set(removed, 0);
  const rows = new Map(states.map((state) => {
    const row = transitions.get(state)!;
    const total = [...row.values()].reduce((sum, count) => sum + count, 0);
    return [state, [...row.entries()].map(([to, count]) => [to, count / total] as const)];
  }));
  for (let iteration = 0; iteration < 10_000; iteration++) {
    let change = 0;
    for (const state of states) {
      if (state === removed) continue;
      let p = 0;
      for (const [to, share] of rows.get(state)!) p += share * (probability.get(to) ?? 0);
      change = Math.max(change, Math.abs(p - (probability.get(state) ?? 0)));
      probability.set(state, p);
    }
    if (change < 1e-13) break;
  }
  return probability.get(START) ?? 0;
}

/**
 * Data-driven credits: each channel's removal effect (the share of conversions lost when the
 * channel becomes a dead end), normalised over channels and applied to the observed conversions
 * and value of the converting paths.
 */
export function markovCredits(journeys: readonly ChannelJourney[], conversions: number, value: number): Array<Credit & { removalEffect: number }> {
  const base = conversionProbability(journeys);
  const channels = [...new Set(journeys.flatMap((journey) => journey.channels))];
  if (base === 0) return channels.map((channel) => ({ channel, conversions: 0, value: 0, removalEffect: 0 }));
  const effects = channels.map((channel) => ({ channel, removalEffect: 1 - conversionProbability(journeys, channel) / base }));
  const total = effects.reduce((sum, effect) => sum + effect.removalEffect, 0);
  return sortCredits(
    effects.map((effect) => ({
      channel: effect.channel,
      removalEffect: effect.removalEffect,
      conversions: total === 0 ? 0 : (conversions * effect.removalEffect) / total,
      value: total === 0 ? 0 : (value * effect.removalEffect) / total,
    })),
  ) as Array<Credit & { removalEffect: number }>;
}
