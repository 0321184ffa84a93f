import { answerWithin, type JobService, type QueueDepth } from '@pixelflow/queue';
import { collectProcessMetrics } from '@pixelflow/metrics';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

// The API's Prometheus metrics (GET /metrics). Queue depth is read from Redis
// at scrape time; jobs' outcomes, wait and run times and model-call durations
// are the worker's metrics, scraped from the worker (docs/operators/monitoring.md).

/** How long a scrape waits for Redis before it reports Redis down (Prometheus's own scrape timeout is 10 s by default). */
export const REDIS_SCRAPE_TIMEOUT_MS = 2000;

export class ApiMetrics {
  readonly registry = new Registry();
  readonly httpDuration = new Histogram({
    name: 'pixelflow_http_request_duration_seconds',
    help: 'HTTP request duration by method, route and status code (SSE streams: until the stream ends)',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });
  readonly jobsCreated = new Counter({
    name: 'pixelflow_jobs_created_total',
    help: 'Jobs accepted by POST /jobs',
    registers: [this.registry],
  });
  readonly jobsRejected = new Counter({
    name: 'pixelflow_jobs_rejected_total',
    help: 'POST /jobs answered with an error, by reason (its problem type: validation, unsupported_media_type, body_too_large, queue_full, service_unavailable, ...)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly sseStreams = new Gauge({
    name: 'pixelflow_sse_streams',
    help: 'Open Server-Sent Event streams',
    registers: [this.registry],
  });
  /** This scrape's read of the queue, shared by the gauges that report it; undefined between scrapes. */
  private queueRead: Promise<QueueDepth | null> | undefined;

  constructor(jobs: Pick<JobService, 'depth' | 'connected'>) {
    collectProcessMetrics(this.registry, 'pixelflow_api_');
    // The queue lives in Redis, not in this process: every API replica reads the same lists and
    // reports the same numbers, so sum() over replicas would count the queue once per replica.
    // Dashboards and alerts take max() instead (the help says so). Exporting it from one process
    // kind only would not help, workers scale too; electing one exporter would need coordination
    // and would lose the metric whenever that process is down, while max() keeps it as long as any
    // replica is scraped. A replica that cannot read Redis exports no queue series (not a false 0),
    // so max() over the others is still the queue.
    const readQueue = (): Promise<QueueDepth | null> => this.readQueue(jobs);
    new Gauge({
      name: 'pixelflow_queue_jobs',
      help: 'Jobs in the queue by state, read from Redis at scrape time; every API replica reports the same queue: aggregate with max(), never sum()',
      labelNames: ['state'] as const,
      registers: [this.registry],
      async collect() {
        const depth = await readQueue();
        this.reset();
        if (!depth) return;
        this.set({ state: 'waiting' }, depth.waiting);
        this.set({ state: 'active' }, depth.active);
      },
    });
    // Whether this replica reaches Redis, from that same read: without it the scrape itself would
    // fail while Redis is away, and an outage of Redis would look like an outage of the API.
    new Gauge({
      name: 'pixelflow_redis_up',
      help: `1 when this process read from Redis at scrape time (within ${REDIS_SCRAPE_TIMEOUT_MS} ms), 0 when it could not`,
      registers: [this.registry],
      async collect() {
        this.set((await readQueue()) ? 1 : 0);
      },
    });
  }

  /**
   * The queue's depth, or null when Redis is not connected or did not answer in time. prom-client
   * collects every metric of a scrape at once, so both gauges above get the same single read.
   */
  private readQueue(jobs: Pick<JobService, 'depth' | 'connected'>): Promise<QueueDepth | null> {
    this.queueRead ??= (async () => {
      // Not connected: no round trip, as requests fail fast then too (it would only wait).
      if (!jobs.connected()) return null;
      return answerWithin(jobs.depth(), REDIS_SCRAPE_TIMEOUT_MS).catch(() => null);
    })().finally(() => (this.queueRead = undefined));
    return this.queueRead;
  }
}
