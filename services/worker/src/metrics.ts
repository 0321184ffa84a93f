import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { VelocityModel } from '@pixelflow/sampler';
import { collectProcessMetrics } from '@pixelflow/metrics';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** How long a scrape waits for Redis's answer to PING before it reports Redis down. */
export const REDIS_SCRAPE_TIMEOUT_MS = 2000;

// The worker's Prometheus metrics, served from its own small HTTP endpoint
// (the API cannot see inside this process). Names follow Prometheus
// conventions with the pixelflow_ prefix; the API exports the queue-side ones.
// Which to aggregate how across workers: docs/operators/monitoring.md.

export class WorkerMetrics {
  readonly registry = new Registry();
  readonly ready = new Gauge({ name: 'pixelflow_worker_ready', help: '1 when the model is loaded and jobs are taken', registers: [this.registry] });
  readonly jobsFinished = new Counter({
    name: 'pixelflow_jobs_finished_total',
    help: 'Jobs this worker ended, by final status',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });
  readonly imagesGenerated = new Counter({
    name: 'pixelflow_images_generated_total',
    help: 'Images of the jobs this worker ended succeeded',
    registers: [this.registry],
  });
  readonly jobFailures = new Counter({
    name: 'pixelflow_job_failures_total',
    help: 'Jobs this worker ended failed, by error type (sampling_failed, worker_error)',
    labelNames: ['type'] as const,
    registers: [this.registry],
  });
  readonly jobLatency = new Histogram({
    name: 'pixelflow_job_latency_seconds',
    help: 'Time from job creation to its ending, queue wait included (what a client waits), by final status',
    labelNames: ['status'] as const,
    buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800],
    registers: [this.registry],
  });
  readonly jobWait = new Histogram({
    name: 'pixelflow_job_wait_seconds',
    help: 'Time from job creation to its start on a worker',
    buckets: [0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800],
    registers: [this.registry],
  });
  readonly jobRun = new Histogram({
    name: 'pixelflow_job_run_seconds',
    help: 'Time a job ran on this worker, whatever its outcome',
    buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600],
    registers: [this.registry],
  });
  readonly modelCall = new Histogram({
    name: 'pixelflow_model_call_seconds',
    help: 'One onnxruntime call (jobs merged; both CFG halves), from its start to its velocity, by input resolution',
    labelNames: ['resolution'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly onnxruntimeRun = new Histogram({
    name: 'pixelflow_onnxruntime_run_seconds',
    help: "onnxruntime's own time in one session run (no thread hop, no waiting), by input resolution and batch (rows, padding included)",
    labelNames: ['resolution', 'batch'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly jobsRunning = new Gauge({ name: 'pixelflow_jobs_running', help: 'Jobs this worker is running now', registers: [this.registry] });
  // One series per worker process, 0 or 1, whatever MAX_CONCURRENT_JOBS is: sum() over workers is
  // how many are busy, beside sum(pixelflow_worker_ready), how many could be. (sum() of
  // pixelflow_jobs_running counts jobs, which a worker running 8 at once would inflate.)
  readonly busy = new Gauge({
    name: 'pixelflow_worker_busy',
    help: '1 while this worker runs at least one job, 0 when it is idle',
    registers: [this.registry],
  });
  readonly batchImages = new Histogram({
    name: 'pixelflow_model_batch_images',
    help: 'Images (rows, both CFG halves counted) in one onnxruntime call, jobs merged, padding not counted, by input resolution',
    labelNames: ['resolution'] as const,
    buckets: [1, 2, 4, 8, 16, 32, 64, 128],
    registers: [this.registry],
  });
  readonly batchJobs = new Histogram({
    name: 'pixelflow_model_batch_jobs',
    help: 'Job calls merged into one onnxruntime call',
    buckets: [1, 2, 3, 4, 6, 8, 12, 16, 32],
    registers: [this.registry],
  });
  readonly paddedImages = new Counter({
    name: 'pixelflow_model_padded_images_total',
    help: 'Rows added to onnxruntime calls to reach a warmed batch size (BATCH_BUCKETS): computed and thrown away',
    registers: [this.registry],
  });
  readonly stepsPerSecond = new Gauge({
    name: 'pixelflow_sampler_steps_per_second',
    help: 'Sampler steps per second of the last job (one step = one model call for the whole batch)',
    registers: [this.registry],
  });

  /** Which worker this is (always 1; the labels say who), so that dashboards tell the workers of one machine apart by GPU. */
  readonly info = new Gauge({
    name: 'pixelflow_worker_info',
    help: 'Always 1; labels: worker_id (WORKER_ID), provider (the execution provider serving), device_id (ORT_DEVICE_ID with a GPU, empty on the CPU), hostname',
    labelNames: ['worker_id', 'provider', 'device_id', 'hostname'],
    registers: [this.registry],
  });

  /** How this process reaches Redis, once it has a connection (watchRedis); until then it reports 0. */
  private pingRedis: (() => Promise<void>) | undefined;

  constructor() {
    collectProcessMetrics(this.registry, 'pixelflow_worker_');
    // The same name and meaning as the API's: an alert on pixelflow_redis_up == 0 names whichever
    // process lost Redis, a worker cut off alone included (it can take and end no job then).
    const ping = (): Promise<void> => this.pingRedis?.() ?? Promise.reject(new Error('no Redis connection yet'));
    new Gauge({
      name: 'pixelflow_redis_up',
      help: `1 when this process got an answer from Redis at scrape time (within ${REDIS_SCRAPE_TIMEOUT_MS} ms), 0 when it did not`,
      registers: [this.registry],
      async collect() {
        this.set(await ping().then(
          () => 1,
          () => 0,
        ));
      },
    });
  }

  /** Reports pixelflow_redis_up from `ping` (a PING that rejects after REDIS_SCRAPE_TIMEOUT_MS) at each scrape. */
  watchRedis(ping: (timeoutMs: number) => Promise<void>): void {
    this.pingRedis = () => ping(REDIS_SCRAPE_TIMEOUT_MS);
  }

  /** Sets pixelflow_worker_info's one series (the provider may change once the model says which it got). */
  identify(labels: { worker_id: string; provider: string; device_id: string; hostname: string }): void {
    this.info.reset();
    this.info.set(labels, 1);
  }

  /** The number of jobs running now, and so whether this worker is busy. */
  running(count: number): void {
    this.jobsRunning.set(count);
    this.busy.set(count > 0 ? 1 : 0);
  }

  /**
   * `model`, with each call's duration observed in pixelflow_model_call_seconds: from the call to
   * its velocity, so neither the sampler's own work between calls nor progress writes count. A
   * model that keeps onnxruntime's own time (OnnxModel.stats) also has each call's share of it
   * observed in pixelflow_onnxruntime_run_seconds, by resolution and batch; the batcher makes one
   * call at a time, so the difference of the totals around a call is that call's.
   */
  timeModelCalls(model: VelocityModel & { stats?: () => { runMs: number } }, now: () => number = () => performance.now()): VelocityModel {
    return {
      predict: async (x, shape, timestep, classLabels) => {
        const started = now();
        const runMsBefore = model.stats?.().runMs;
        try {
          const velocity = await model.predict(x, shape, timestep, classLabels);
          const runMsAfter = model.stats?.().runMs;
          if (runMsBefore !== undefined && runMsAfter !== undefined) {
            this.onnxruntimeRun.observe({ resolution: shape[2], batch: shape[0] }, (runMsAfter - runMsBefore) / 1000);
          }
          return velocity;
        } finally {
          this.modelCall.observe({ resolution: shape[2] }, (now() - started) / 1000);
        }
      },
    };
  }

  /** Serves GET /metrics; resolves with the bound port. */
  async serve(host: string, port: number): Promise<{ server: Server; port: number }> {
    const server = createServer((request, response) => {
      if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
        response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      this.registry.metrics().then(
        (text) => response.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
        (error: unknown) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(error)}\n`),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    return { server, port: (server.address() as AddressInfo).port };
  }
}
