import type { Server } from 'node:http';
import { hostname } from 'node:os';
import { WaitingError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  clearHeartbeat,
  connectRedis,
  JobEvents,
  JobRecords,
  keys as makeKeys,
  QUEUE_NAME,
  sendHeartbeat,
  subscribeCancels,
  type Keys,
  type QueuedJobData,
  type WorkerHeartbeat,
} from '@pixelflow/queue';
import { LocalResultStore } from '@pixelflow/results';
import { loadModelDir, type ModelDir } from '@pixelflow/formats';
import { OnnxModel } from '@pixelflow/onnx';
import { pino, type Logger } from 'pino';
import type { WorkerConfig } from './config.ts';
import { WorkerMetrics } from './metrics.ts';
import { ABORT_CANCELED, ABORT_SHUTDOWN, HandBack, runJob } from './run-job.ts';

// The worker process: load the model once, announce readiness with a
// heartbeat, take jobs one at a time from BullMQ, stop a job when the API
// asks, sweep expired jobs, and on SIGTERM stop taking jobs, give the running
// one a grace period, then hand it back to the queue and close.

export interface RunningWorker {
  readonly id: string;
  readonly metricsPort: number;
  /** Stops as on SIGTERM; resolves when everything is closed. */
  stop(): Promise<void>;
  readonly stopped: Promise<void>;
}

const SWEEP_INTERVAL_MS = 60_000;
const TEARDOWN_REDIS_MS = 2000;

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

export async function startWorker(config: WorkerConfig, log: Logger = pino({ level: config.LOG_LEVEL })): Promise<RunningWorker> {
  const k: Keys = makeKeys(config.REDIS_PREFIX);
  const id = config.WORKER_ID;
  log = log.child({ worker_id: id });
  const onRedisError = (error: Error): void => log.error({ err: error }, `Redis at ${config.REDIS_URL} is unreachable`);
  const redis: Redis = connectRedis(config.REDIS_URL, 'worker', `pixelflow-worker-${id}`, onRedisError);
  const subscriber: Redis = connectRedis(config.REDIS_URL, 'subscriber', `pixelflow-worker-${id}-cancel`, onRedisError);
  const records = new JobRecords(redis, k);
  const events = new JobEvents(redis, k);
  const store = new LocalResultStore(config.RESULTS_DIR);
  const metrics = new WorkerMetrics();
  const startedAt = new Date().toISOString();

  let state: WorkerHeartbeat['state'] = 'loading';
  let provider: string = config.ORT_PROVIDER;
  const running = new Map<string, AbortController>();

  // What start-up has opened so far: a failed start closes exactly that (an open timer, connection
  // or server would keep the process alive, still announcing 'loading'), and stop() ends the same way.
  let metricsServer: Server | undefined;
  let heartbeatTimer: NodeJS.Timeout | undefined;
  let sweepTimer: NodeJS.Timeout | undefined;
  let model: OnnxModel | undefined;
  let bull: Worker<QueuedJobData> | undefined;
  let metricsPort = 0;
  let beat = async (): Promise<void> => undefined;
  const teardown = async (): Promise<void> => {
    await bull?.close();
    clearInterval(heartbeatTimer);
    clearInterval(sweepTimer);
    // Unbounded: with Redis away, commands on this connection would wait for it forever.
    if (redis.status === 'ready') await withTimeout(clearHeartbeat(redis, k, id), TEARDOWN_REDIS_MS).catch(() => undefined);
    await model?.dispose().catch((error: unknown) => log.warn({ err: error }, 'disposing of the model failed'));
    const server = metricsServer;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    for (const connection of [subscriber, redis]) {
      if (connection.status === 'ready') await withTimeout(connection.quit(), TEARDOWN_REDIS_MS).catch(() => connection.disconnect());
      else connection.disconnect();
    }
  };

  try {
    const served = await metrics.serve(config.WORKER_METRICS_HOST, config.WORKER_METRICS_PORT);
    metricsServer = served.server;
    metricsPort = served.port;
    log.info({ port: served.port }, `worker metrics on http://${config.WORKER_METRICS_HOST}:${served.port}/metrics`);
    const modelDir: ModelDir = await loadModelDir(config.MODEL_DIR);
    const manifest = modelDir.manifest;
    const heartbeat = (): WorkerHeartbeat => ({
      worker_id: id,
      state,
      model: {
        name: manifest.name,
        resolution: manifest.resolution,
        stages: manifest.stages.map((s) => s.resolution),
        classes: manifest.classes.names.length,
        weights_sha256: manifest.source.weights_sha256,
      },
      provider,
      pid: process.pid,
      hostname: hostname(),
      started_at: startedAt,
      sent_at: new Date().toISOString(),
    });
    beat = async (): Promise<void> => {
      try {
        await sendHeartbeat(redis, k, heartbeat(), (config.HEARTBEAT_INTERVAL_MS * 3) / 1000);
      } catch (error) {
        log.warn({ err: error }, 'heartbeat failed');
      }
    };
    heartbeatTimer = setInterval(() => void beat(), config.HEARTBEAT_INTERVAL_MS);
    await beat();

    const loadStarted = performance.now();
    const loaded = await OnnxModel.load(modelDir, {
      provider: config.ORT_PROVIDER,
      deviceId: config.ORT_DEVICE_ID,
      fallbackToCpu: config.ORT_CPU_FALLBACK,
      ...(config.ORT_THREADS > 0 && { intraOpNumThreads: config.ORT_THREADS }),
    });
    model = loaded;
    provider = loaded.provider;
    // Jobs' calls are timed for pixelflow_model_call_seconds; warm-up's are not.
    const timedModel = metrics.timeModelCalls(loaded);
    if (loaded.fellBack) log.warn({ reason: loaded.fallbackReason }, 'CUDA unavailable: serving on the CPU (ORT_CPU_FALLBACK=true)');
    if (config.WARMUP) {
      // On CUDA the first call at each input shape is slow (cuDNN searches its algorithms, and
      // onnxruntime-node cannot turn that off), so pay it before saying ready, not in a user's job.
      const warmStarted = performance.now();
      const channels = manifest.architecture.in_channels;
      // A job of n images calls the model with batch n (a stage without guidance) or 2n (both CFG
      // halves): warm single-image jobs and jobs of the default size, one call per shape.
      const images = manifest.defaults.num_images;
      const batches = [...new Set([1, 2, images, 2 * images])];
      for (const stage of manifest.stages) {
        for (const batch of batches) {
          const side = stage.resolution;
          await loaded.predict(
            new Float32Array(batch * channels * side * side),
            [batch, channels, side, side],
            new Float32Array(batch).fill(stage.timestep_first),
            new BigInt64Array(batch).fill(BigInt(manifest.classes.null_label)),
          );
        }
      }
      log.info({ batches, seconds: Number(((performance.now() - warmStarted) / 1000).toFixed(2)) }, 'warmed up every stage resolution at the usual batch sizes');
    }
    log.info(
      { model: manifest.name, provider: loaded.provider, seconds: Number(((performance.now() - loadStarted) / 1000).toFixed(2)) },
      'model loaded',
    );

    await subscribeCancels(subscriber, k, (jobId) => {
      const controller = running.get(jobId);
      if (controller) {
        log.info({ job_id: jobId }, 'cancel requested');
        controller.abort(ABORT_CANCELED);
      }
    });

    const sweep = async (): Promise<void> => {
      try {
        for (const jobId of await records.expired(new Date())) {
          await store.deleteJob(jobId);
          await records.delete(jobId);
          log.debug({ job_id: jobId }, 'expired job deleted');
        }
      } catch (error) {
        log.warn({ err: error }, 'sweeping expired jobs failed');
      }
    };
    sweepTimer = setInterval(() => void sweep(), SWEEP_INTERVAL_MS);
    void sweep();

    // Ends a job that failed outside runJob's own handling; a job that already ended keeps its ending.
    const failLost = async (jobId: string, error: unknown): Promise<void> => {
      const message = (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
      const outcome = { status: 'failed', error: { type: 'worker_error', message } } as const;
      if ((await records.finish(jobId, outcome, new Date(), config.JOB_RETENTION_SECONDS)) === 'failed') metrics.jobsFinished.inc({ status: 'failed' });
    };
    const queueWorker = new Worker<QueuedJobData>(
      QUEUE_NAME,
      async (job: Job<QueuedJobData>, token?: string) => {
        const jobId = job.data.id;
        const controller = new AbortController();
        running.set(jobId, controller);
        const jobLog = log.child({ job_id: jobId });
        try {
          await runJob(
            {
              records,
              events,
              store,
              model: timedModel,
              modelDir,
              retentionSeconds: config.JOB_RETENTION_SECONDS,
              log: jobLog,
              metrics,
              onThroughput: async (seconds) => {
                await redis.hset(k.throughput, 'seconds_per_image_step', seconds, 'measured_at', new Date().toISOString());
              },
            },
            jobId,
            controller.signal,
          );
        } catch (error) {
          if (error instanceof HandBack) {
            await job.moveToWait(token);
            throw new WaitingError();
          }
          // Stopping or lock lost: the job is handed back or another worker owns it now; not ours to end.
          if (controller.signal.reason === ABORT_SHUTDOWN) throw error;
          jobLog.error({ err: error }, 'job failed outside the sampler');
          // Ended here, the job completes in BullMQ; if ending it fails, BullMQ fails it and 'failed' below tries again.
          await failLost(jobId, error).catch((finishError: unknown) => {
            jobLog.error({ err: finishError }, 'could not record the failure');
            throw error;
          });
        } finally {
          running.delete(jobId);
        }
      },
      {
        connection: redis,
        prefix: k.prefix,
        concurrency: 1,
        autorun: false,
        lockDuration: config.LOCK_DURATION_MS,
        stalledInterval: config.STALLED_INTERVAL_MS,
        // A job whose worker died is retried once more before BullMQ gives up on it.
        maxStalledCount: 2,
      },
    );
    bull = queueWorker;
    // BullMQ fails a job for reasons outside the processor too (one that stalled more than
    // maxStalledCount times); its record, left running, would then never end nor expire.
    queueWorker.on('failed', (job, error) => {
      if (!job) return;
      failLost(job.data.id, error).catch((finishError: unknown) =>
        log.error({ err: finishError, job_id: job.data.id }, 'could not record the failure of a job BullMQ failed'),
      );
    });
    queueWorker.on('error', (error) => log.error({ err: error }, 'queue error'));
    queueWorker.on('lockRenewalFailed', (ids) => {
      log.error({ job_ids: ids }, 'lost the lock of a running job: stopping it (another worker may take it over)');
      for (const jobId of ids) running.get(jobId)?.abort(ABORT_SHUTDOWN);
    });
    void queueWorker.run().catch((error: unknown) => log.error({ err: error }, 'worker loop failed'));
    state = 'ready';
    metrics.ready.set(1);
    await beat();
    log.info({ queue: `${k.prefix}:${QUEUE_NAME}` }, 'worker ready');
  } catch (error) {
    await teardown();
    throw error;
  }

  let stopping: Promise<void> | undefined;
  let markStopped!: () => void;
  const stopped = new Promise<void>((resolve) => {
    markStopped = resolve;
  });
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      log.info({ running: [...running.keys()] }, 'stopping: no new jobs');
      state = 'stopping';
      metrics.ready.set(0);
      await beat();
      const closing = bull?.close();
      // The running job gets SHUTDOWN_GRACE_MS to finish; then it is handed back.
      const grace = setTimeout(() => {
        for (const controller of running.values()) controller.abort(ABORT_SHUTDOWN);
      }, config.SHUTDOWN_GRACE_MS);
      await closing;
      clearTimeout(grace);
      await teardown();
      log.info('stopped');
      markStopped();
    })();
    return stopping;
  };

  return { id, metricsPort, stop, stopped };
}
