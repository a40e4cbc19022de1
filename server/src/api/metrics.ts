import client from 'prom-client';

/** Prometheus metrics of one server instance (own registry, so tests can run several servers). */
export function createMetrics() {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'touchpoint_process_' });
  return {
    registry,
    httpRequests: new client.Counter({
      name: 'touchpoint_http_requests_total',
      help: 'HTTP requests by route and status code',
      labelNames: ['method', 'route', 'status'] as const,
      registers: [registry],
    }),
    httpDuration: new client.Histogram({
      name: 'touchpoint_http_request_duration_seconds',
      help: 'HTTP request latency by route',
      labelNames: ['method', 'route'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    eventsAccepted: new client.Counter({
      name: 'touchpoint_events_accepted_total',
      help: 'Events stored (first copy of each messageId)',
      labelNames: ['endpoint'] as const,
      registers: [registry],
    }),
    eventsDuplicate: new client.Counter({
      name: 'touchpoint_events_duplicate_total',
      help: 'Events whose messageId was already stored (client retries)',
      labelNames: ['endpoint'] as const,
      registers: [registry],
    }),
    eventsRejected: new client.Counter({
      name: 'touchpoint_events_rejected_total',
      help: 'Events that failed validation and went to quarantine, by reason',
      labelNames: ['endpoint', 'reason'] as const,
      registers: [registry],
    }),
    requestsRejected: new client.Counter({
      name: 'touchpoint_ingest_requests_rejected_total',
      help: 'Collection requests refused as a whole (auth, malformed, oversize, rate limit)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
