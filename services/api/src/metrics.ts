import type { JobService } from '@pixelflow/queue';
import { collectProcessMetrics } from '@pixelflow/metrics';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

// The API's Prometheus metrics (GET /metrics). Queue depth is read from Redis
// at scrape time; jobs' outcomes, wait and run times and model-call durations
// are the worker's metrics, scraped from the worker (see the README).

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

  constructor(jobs: Pick<JobService, 'depth'>) {
    collectProcessMetrics(this.registry, 'pixelflow_api_');
    new Gauge({
      name: 'pixelflow_queue_jobs',
      help: 'Jobs in the queue by state, read from Redis at scrape time',
      labelNames: ['state'] as const,
      registers: [this.registry],
      async collect() {
        const depth = await jobs.depth();
        this.set({ state: 'waiting' }, depth.waiting);
        this.set({ state: 'active' }, depth.active);
      },
    });
  }
}
