/**
 * Paced load for the segment benchmark's real-time phase, run as a child process so its CPU is not
 * charged to the server: `POST /v1/batch` at a fixed rate (not as fast as possible), retail events
 * of known members (by userId, so identity resolution finds their generated profiles), and in every
 * request one probe event whose time of storage is recorded.
 *
 * A probe is `Latency Probe` with `state` "on" or "off", alternating per probe profile, so each
 * probe flips that profile's membership of the probe segment
 * (`event("Latency Probe").last_value(state) = "on"`): exactly one transition per probe, which the
 * parent watches for.
 *
 * Protocol: the parent forks this file, sends a LoadConfig, waits for 'ready', sends 'go', and
 * receives a LoadReport.
 */
import http from 'node:http';
import { post } from './client.ts';

export interface LoadConfig {
  url: string;
  writeKey: string;
  runTag: string;
  eventsPerSecond: number;
  seconds: number;
  /** Events per request, the probe included. */
  batchSize: number;
  /** userIds of members that get ordinary events. */
  userIds: string[];
  /** userIds of members that get probes (none of them in userIds). */
  probeUserIds: string[];
  /**
   * Probe userIds that are in the probe segment when the run starts (an earlier run on a kept
   * folder left them there): their first probe is "off", so every probe of the run flips them.
   */
  probeUserIdsOn?: string[];
}

export interface ProbeRecord {
  userId: string;
  state: 'on' | 'off';
  messageId: string;
  /** Epoch ms when the request carrying it was sent, and when the server answered 200. */
  sentAt: number;
  ackAt: number | null;
}

export interface LoadReport {
  requests: number;
  events: number;
  accepted: number;
  rejected: number;
  failures: Record<string, number>;
  firstFailure: string | null;
  seconds: number;
  /** Request latencies in ms, sorted. */
  latenciesMs: number[];
  /** Events sent in each whole second: shows whether the rate held. */
  sentPerSecond: number[];
  /** Requests sent later than scheduled by more than one interval (the client or server fell behind). */
  lateRequests: number;
  probes: ProbeRecord[];
  cpuSeconds: number;
}

/** mulberry32: the same load for the same run tag. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CATEGORIES = ['手机', '电脑', '家电', '服饰', '美妆', '食品', '母婴', '运动'];
const PRICES = [19, 39, 59, 99, 129, 199, 299, 499, 899, 1999];

/** An ordinary retail event of a member, roughly in the generator's proportions. */
function retailEvent(rand: () => number, userId: string, messageId: string, timestamp: string): Record<string, unknown> {
  const roll = rand();
  const category = CATEGORIES[Math.floor(rand() * CATEGORIES.length)]!;
  const price = PRICES[Math.floor(rand() * PRICES.length)]!;
  const product = { product_id: `SKU-${1000 + Math.floor(rand() * 800)}`, category, price };
  const base = { userId, messageId, timestamp };
  if (roll < 0.2) return { ...base, type: 'page', name: 'Product Detail', properties: { path: '/product-detail' } };
  if (roll < 0.55) return { ...base, type: 'track', event: 'Product Viewed', properties: product };
  if (roll < 0.67) return { ...base, type: 'track', event: 'Product Added', properties: { ...product, quantity: 1 } };
  if (roll < 0.77) return { ...base, type: 'track', event: 'App Opened', properties: { app_version: '5.2.0' } };
  if (roll < 0.83) return { ...base, type: 'track', event: 'Checkout Started', properties: { cart_value: price, product_count: 1 } };
  if (roll < 0.9) {
    return {
      ...base,
      type: 'track',
      event: 'Order Completed',
      properties: { order_id: `L-${messageId}`, revenue: price, product_count: 1, category, channel: 'app', currency: 'CNY' },
    };
  }
  if (roll < 0.95) return { ...base, type: 'track', event: 'Coupon Redeemed', properties: { coupon_id: 'C120', discount: 10 } };
  return { ...base, type: 'track', event: 'Store Visit', properties: { store_id: 'ST42', city: '上海' } };
}

export async function runLoad(config: LoadConfig, waitForGo: () => Promise<void> = async () => undefined): Promise<LoadReport> {
  if (config.userIds.length === 0 || config.probeUserIds.length === 0) throw new Error('the load needs member userIds and probe userIds');
  const url = new URL(config.url);
  const authorization = `Basic ${Buffer.from(`${config.writeKey}:`).toString('base64')}`;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  const rand = random(Number.parseInt(config.runTag.slice(0, 8), 16) || 1);
  const probeState = new Map<string, 'on' | 'off'>((config.probeUserIdsOn ?? []).map((userId) => [userId, 'on'] as const));
  const totalRequests = Math.round((config.eventsPerSecond * config.seconds) / config.batchSize);
  const intervalMs = (1000 * config.batchSize) / config.eventsPerSecond;
  const report: LoadReport = {
    requests: 0,
    events: 0,
    accepted: 0,
    rejected: 0,
    failures: {},
    firstFailure: null,
    seconds: 0,
    latenciesMs: [],
    sentPerSecond: [],
    lateRequests: 0,
    probes: [],
    cpuSeconds: 0,
  };
  const fail = (key: string, detail: string) => {
    report.failures[key] = (report.failures[key] ?? 0) + 1;
    report.firstFailure ??= detail;
  };

  await waitForGo();
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  const inFlight = new Set<Promise<void>>();

  const send = (index: number): Promise<void> => {
    const timestamp = new Date().toISOString();
    const events: Array<Record<string, unknown>> = [];
    for (let item = 0; item < config.batchSize - 1; item++) {
      const userId = config.userIds[Math.floor(rand() * config.userIds.length)]!;
      events.push(retailEvent(rand, userId, `load-${config.runTag}-${index}-${item}`, timestamp));
    }
    const probeUser = config.probeUserIds[index % config.probeUserIds.length]!;
    const state = probeState.get(probeUser) === 'on' ? 'off' : 'on';
    probeState.set(probeUser, state);
    const probe: ProbeRecord = { userId: probeUser, state, messageId: `probe-${config.runTag}-${index}`, sentAt: Date.now(), ackAt: null };
    events.push({ type: 'track', event: 'Latency Probe', userId: probeUser, messageId: probe.messageId, timestamp, properties: { state } });
    report.probes.push(probe);
    const body = JSON.stringify({ batch: events });
    const second = Math.floor((performance.now() - start) / 1000);
    while (report.sentPerSecond.length <= second) report.sentPerSecond.push(0);
    report.sentPerSecond[second]! += events.length;
    report.events += events.length;
    const sent = performance.now();
    return post(agent, url, authorization, body).then(
      ({ status, text }) => {
        report.requests++;
        report.latenciesMs.push(performance.now() - sent);
        if (status !== 200) return fail(String(status), `HTTP ${status}: ${text.slice(0, 300)}`);
        probe.ackAt = Date.now();
        const answer = JSON.parse(text) as { accepted?: number; rejected?: unknown[] };
        report.accepted += answer.accepted ?? 0;
        report.rejected += answer.rejected?.length ?? 0;
        if (answer.rejected?.length) report.firstFailure ??= `rejected: ${JSON.stringify(answer.rejected.slice(0, 2))}`;
      },
      (error: Error) => {
        report.requests++;
        fail('network', `network error: ${error.message}`);
      },
    );
  };

  for (let index = 0; index < totalRequests; index++) {
    const due = start + index * intervalMs;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    else if (-wait > intervalMs) report.lateRequests++;
    const request = send(index).finally(() => inFlight.delete(request));
    inFlight.add(request);
  }
  await Promise.all(inFlight);
  report.seconds = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  report.cpuSeconds = (cpu.user + cpu.system) / 1e6;
  report.latenciesMs.sort((a, b) => a - b);
  agent.destroy();
  return report;
}

// Run as a forked child: the config comes as the first message (it is too large for argv).
if (process.send && process.argv[2] === 'child') {
  process.once('message', (config: LoadConfig) => {
    const go = () =>
      new Promise<void>((resolve) => {
        process.once('message', () => resolve());
        process.send!('ready');
      });
    runLoad(config, go).then(
      (report) => process.send!({ report }, () => process.exit(0)),
      (error: Error) => process.send!({ error: error.stack ?? error.message }, () => process.exit(1)),
    );
  });
}
