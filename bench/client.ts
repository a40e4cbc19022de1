/**
 * Load generator, run as a child process so its CPU is not charged to the server's event loop:
 * `connections` keep-alive connections each send one batch at a time until `events` are sent.
 * Protocol: the parent forks it with a ClientConfig as argv[2]; it answers 'ready' once the
 * bodies are built, waits for 'go', then sends back a ClientReport.
 */
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { createBatchSource, TEMPLATES } from './events.ts';

export interface ClientConfig {
  /** Endpoint taking Segment batch bodies, e.g. http://127.0.0.1:8080/v1/batch. */
  url: string;
  writeKey: string;
  runTag: string;
  events: number;
  batchSize: number;
  connections: number;
}

export interface ClientReport {
  requests: number;
  events: number;
  accepted: number;
  duplicates: number;
  rejected: number;
  /** Requests not answered 200, by status (or network error message). */
  failures: Record<string, number>;
  firstFailure: string | null;
  seconds: number;
  /** Milliseconds per request, sorted ascending. */
  latenciesMs: number[];
  /** The same, of the requests of each third of the run (by the order batches were sent), each sorted: where the tail sits. */
  latenciesByThirdMs: [number[], number[], number[]];
  /** Events acknowledged in each whole second of the run. */
  eventsPerSecond: number[];
  cpuSeconds: number;
  requestBytes: number;
}

interface BatchAnswer {
  accepted?: number;
  duplicates?: number;
  rejected?: unknown[];
}

/** POSTs a JSON body over a keep-alive agent; the answer's status and text. */
export function post(agent: http.Agent, url: URL, authorization: string, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      url,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

export async function runClient(config: ClientConfig, waitForGo: () => Promise<void> = async () => undefined): Promise<ClientReport> {
  const url = new URL(config.url);
  const authorization = `Basic ${Buffer.from(`${config.writeKey}:`).toString('base64')}`;
  const source = createBatchSource(config.runTag, config.batchSize);
  for (let template = 0; template < TEMPLATES; template++) source.body(template);
  const agent = new http.Agent({ keepAlive: true, maxSockets: config.connections });
  const batches = Math.ceil(config.events / config.batchSize);
  // The last batch may be short when events is not a multiple of batchSize.
  const lastSize = config.events - (batches - 1) * config.batchSize;
  const lastSource = lastSize === config.batchSize ? source : createBatchSource(config.runTag, lastSize);

  await waitForGo();
  const report: ClientReport = {
    requests: 0,
    events: 0,
    accepted: 0,
    duplicates: 0,
    rejected: 0,
    failures: {},
    firstFailure: null,
    seconds: 0,
    latenciesMs: [],
    latenciesByThirdMs: [[], [], []],
    eventsPerSecond: [],
    cpuSeconds: 0,
    requestBytes: 0,
  };
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  let next = 0;

  const fail = (key: string, detail: string) => {
    report.failures[key] = (report.failures[key] ?? 0) + 1;
    report.firstFailure ??= detail;
  };

  async function connection(): Promise<void> {
    while (next < batches) {
      const batchIndex = next++;
      const size = batchIndex === batches - 1 ? lastSize : config.batchSize;
      const body = size === config.batchSize ? source.body(batchIndex) : lastSource.body(batchIndex);
      report.requestBytes += Buffer.byteLength(body);
      const sent = performance.now();
      try {
        const { status, text } = await post(agent, url, authorization, body);
        const done = performance.now();
        report.requests++;
        report.events += size;
        report.latenciesMs.push(done - sent);
        report.latenciesByThirdMs[Math.min(2, Math.floor((3 * batchIndex) / batches))]!.push(done - sent);
        if (status !== 200) {
          fail(String(status), `HTTP ${status}: ${text.slice(0, 300)}`);
          continue;
        }
        const answer = JSON.parse(text) as BatchAnswer;
        const accepted = answer.accepted ?? 0;
        report.accepted += accepted;
        report.duplicates += answer.duplicates ?? 0;
        report.rejected += answer.rejected?.length ?? 0;
        if (answer.rejected?.length) report.firstFailure ??= `rejected items: ${JSON.stringify(answer.rejected.slice(0, 2))}`;
        const second = Math.floor((done - start) / 1000);
        while (report.eventsPerSecond.length <= second) report.eventsPerSecond.push(0);
        report.eventsPerSecond[second]! += accepted;
      } catch (error) {
        report.requests++;
        fail('network', `network error: ${(error as Error).message}`);
      }
    }
  }

  await Promise.all(Array.from({ length: config.connections }, () => connection()));
  report.seconds = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  report.cpuSeconds = (cpu.user + cpu.system) / 1e6;
  report.latenciesMs.sort((a, b) => a - b);
  for (const third of report.latenciesByThirdMs) third.sort((a, b) => a - b);
  agent.destroy();
  return report;
}

// Run as a forked child: config in argv, results over IPC. Only when this file is the child's
// entry point: bench/segments-load.ts imports it and is forked with its own arguments.
if (process.send && process.argv[2] && process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const config = JSON.parse(process.argv[2]) as ClientConfig;
  const go = () =>
    new Promise<void>((resolve) => {
      process.once('message', () => resolve());
      process.send!('ready');
    });
  runClient(config, go).then(
    (report) => process.send!({ report }, () => process.exit(0)),
    (error: Error) => process.send!({ error: error.stack ?? error.message }, () => process.exit(1)),
  );
}
