import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { answerWithin, connectRedis, describeRedisTarget, JobEvents, JobRecords, keys as makeKeys, pingRedis, QUEUE_NAME, redisTarget, subscribeCancels, ThroughputRecord } from '@pixelflow/queue';
import { openResultStore } from '@pixelflow/results';
import { loadModelDir, PngEncoderPool } from '@pixelflow/formats';
import { pino, type Logger } from 'pino';
import type { WorkerConfig } from './config.ts';
import { ExpirySweeper } from './expiry-sweeper.ts';
import { Heartbeat } from './heartbeat.ts';
import { jobEnder } from './job-ending.ts';
import { JobProcessor } from './job-processor.ts';
import { WorkerMetrics } from './metrics.ts';
import { hostModel } from './model-host.ts';
import { runJob } from './run-job.ts';
import { ThroughputMeter } from './throughput-meter.ts';

// The worker process, composed: Redis connections, its metrics endpoint, the
// heartbeat, the model, the job processor, cancel requests and the expiry
// sweeper. Each part started registers how to close it; a failed start closes
// exactly what was opened (an open timer, connection or server would keep the
// process alive, still announcing 'loading'), and stop() closes the same way.

export interface RunningWorker {
  readonly id: string;
  readonly metricsPort: number;
  /** Stops as on SIGTERM; resolves when everything is closed. */
  stop(): Promise<void>;
  readonly stopped: Promise<void>;
}

const QUIT_REDIS_MS = 2000;

/** What to close, in the reverse order of opening. */
class Closers {
  private readonly closers: { what: string; close: () => Promise<void> | void }[] = [];
  private readonly log: Logger;

  constructor(log: Logger) {
    this.log = log;
  }

  add(what: string, close: () => Promise<void> | void): void {
    this.closers.push({ what, close });
  }

  async closeAll(): Promise<void> {
    for (const { what, close } of this.closers.splice(0).reverse()) {
      try {
        await close();
      } catch (error) {
        this.log.warn({ err: error }, `closing the ${what} failed`);
      }
    }
  }
}

function openRedis(config: WorkerConfig, role: 'worker' | 'subscriber', name: string, log: Logger, closers: Closers): Redis {
  const target = redisTarget(config);
  const redis = connectRedis(target, role, name, (error) => log.error({ err: error }, `${describeRedisTarget(target)} is unreachable`));
  closers.add(`${role} Redis connection`, async () => {
    if (redis.status !== 'ready') return redis.disconnect();
    await answerWithin(redis.quit(), QUIT_REDIS_MS).catch(() => redis.disconnect());
  });
  return redis;
}

export async function startWorker(config: WorkerConfig, baseLog: Logger = pino({ level: config.LOG_LEVEL })): Promise<RunningWorker> {
  const id = config.WORKER_ID;
  // The GPU, where there is one: operators running one worker per GPU tell them apart by it in logs, heartbeats and metrics.
  const deviceId = config.ORT_PROVIDER === 'cuda' ? config.ORT_DEVICE_ID : undefined;
  const log = baseLog.child({ worker_id: id, ...(deviceId !== undefined && { device_id: deviceId }) });
  const keys = makeKeys(config.REDIS_PREFIX);
  const closers = new Closers(log);
  const metrics = new WorkerMetrics();
  let heartbeat: Heartbeat | undefined;
  let processor: JobProcessor | undefined;
  let metricsPort = 0;
  try {
    // First: a result store that cannot work stops the start with its one line, before the model loads.
    const store = await openResultStore(config);
    closers.add('result store', () => store.close());
    const redis = openRedis(config, 'worker', `pixelflow-worker-${id}`, log, closers);
    const subscriber = openRedis(config, 'subscriber', `pixelflow-worker-${id}-cancel`, log, closers);
    metrics.watchRedis((timeoutMs) => pingRedis(redis, timeoutMs));
    const served = await metrics.serve(config.WORKER_METRICS_HOST, config.WORKER_METRICS_PORT);
    closers.add('metrics server', () => new Promise<void>((resolve) => served.server.close(() => resolve())));
    metricsPort = served.port;
    log.info({ port: served.port }, `worker metrics on http://${config.WORKER_METRICS_HOST}:${served.port}/metrics`);

    const modelDir = await loadModelDir(config.MODEL_DIR);
    const identity = { worker_id: id, device_id: deviceId === undefined ? '' : String(deviceId), hostname: hostname() };
    metrics.identify({ ...identity, provider: config.ORT_PROVIDER });
    const beat = new Heartbeat({
      redis,
      keys,
      workerId: id,
      manifest: modelDir.manifest,
      intervalMs: config.HEARTBEAT_INTERVAL_MS,
      log,
      provider: config.ORT_PROVIDER,
      concurrency: config.MAX_CONCURRENT_JOBS,
      deviceId,
    });
    heartbeat = beat;
    closers.add('heartbeat', () => beat.stop());
    await beat.start();

    const host = await hostModel(modelDir, config, metrics, log);
    closers.add('model', () => host.dispose());
    beat.provider = host.provider;
    metrics.identify({ ...identity, provider: host.provider });

    const records = new JobRecords(redis, keys);
    const throughput = new ThroughputMeter();
    const throughputRecord = new ThroughputRecord(redis, keys);
    const pngs = new PngEncoderPool();
    closers.add('PNG encoder', () => pngs.close());
    const deps = { records, events: new JobEvents(redis, keys), store, model: host.model, modelDir, pngs, metrics, onImageSteps: (n: number) => throughput.worked(n) };
    const jobs = new JobProcessor({
      connection: redis,
      keys,
      records,
      concurrency: config.MAX_CONCURRENT_JOBS,
      lockDurationMs: config.LOCK_DURATION_MS,
      stalledIntervalMs: config.STALLED_INTERVAL_MS,
      run: (jobId, signal, jobLog) => runJob({ ...deps, log: jobLog }, jobId, signal),
      ender: jobEnder(records, metrics, config.JOB_RETENTION_SECONDS, log),
      throughput,
      onRunning: (count) => metrics.running(count),
      onThroughput: (seconds) => {
        // Its own rate goes out with its heartbeat (the ETA's pool of workers); the shared record stays for older APIs.
        beat.secondsPerImageStep = seconds;
        return throughputRecord.record({ secondsPerImageStep: seconds, concurrency: config.MAX_CONCURRENT_JOBS });
      },
      log,
    });
    processor = jobs;
    // Closing the processor a second time (after stop() closed it) returns at once.
    closers.add('job processor', () => jobs.stop(0));

    await subscribeCancels(subscriber, keys, (jobId) => {
      if (jobs.cancel(jobId)) log.info({ job_id: jobId }, 'cancel requested');
    });
    const sweeper = new ExpirySweeper({ redis, keys, workerId: id, records, store, log, lockMs: config.MAINTENANCE_LOCK_MS });
    sweeper.start();
    closers.add('expiry sweeper', () => sweeper.stop());

    jobs.start();
    beat.state = 'ready';
    metrics.ready.set(1);
    await beat.beat();
    log.info({ queue: `${keys.prefix}:${QUEUE_NAME}` }, 'worker ready');
  } catch (error) {
    await closers.closeAll();
    throw error;
  }

  let stopping: Promise<void> | undefined;
  let markStopped!: () => void;
  const stopped = new Promise<void>((resolve) => (markStopped = resolve));
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      log.info({ running: processor?.runningIds ?? [] }, 'stopping: no new jobs');
      metrics.ready.set(0);
      if (heartbeat) {
        heartbeat.state = 'stopping';
        await heartbeat.beat();
      }
      // Running jobs get SHUTDOWN_GRACE_MS to finish; the rest are handed back to the queue.
      await processor?.stop(config.SHUTDOWN_GRACE_MS);
      await closers.closeAll();
      log.info('stopped');
      markStopped();
    })();
    return stopping;
  };
  return { id, metricsPort, stop, stopped };
}
