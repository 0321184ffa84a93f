import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { connectRedis, JobEvents, JobQueue, JobRecords, keys as makeKeys, QUEUE_NAME, type Keys, type QueuedJobData } from '@pixelflow/queue';
import type { ResolvedGeneration } from '@pixelflow/schemas';
import { pino, type Logger } from 'pino';
import { loadWorkerConfig } from '../../src/config.ts';
import { MAX_STALLED_COUNT } from '../../src/job-processor.ts';
import { startWorker, type RunningWorker } from '../../src/worker.ts';

// Workers in the test process against the real Redis, under a key prefix of their own, with the
// committed tiny model: what the worker tests share. Jobs go in the way the API puts them in.

export const TINY = fileURLToPath(new URL('../../../../test/fixtures/tiny', import.meta.url));
export const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';

export interface WorkerHarness {
  redis: Redis;
  keys: Keys;
  records: JobRecords;
  events: JobEvents;
  queue: JobQueue;
  /** The workers' RESULTS_DIR. */
  results: string;
  /** Records and queues job `id` with parameters `p`. */
  submit(id: string, p: ResolvedGeneration): Promise<void>;
  statusOf(id: string): Promise<string | undefined>;
  /** Starts a worker on this prefix and folder; `env` overrides the test defaults; it logs to `log` (default: nowhere). */
  startWorker(env?: Record<string, string>, log?: Logger): Promise<RunningWorker>;
  /** Stops the workers it started that are still running. */
  stopWorkers(): Promise<void>;
  /** Stops the workers, deletes every key of the prefix and the results folder. */
  close(): Promise<void>;
}

/** A logger whose lines a test reads back (parsed pino JSON). */
export interface CapturedLog {
  log: Logger;
  lines: Record<string, unknown>[];
  /** Lines with this message (about job `jobId`, when given). */
  count(msg: string, jobId?: string): number;
}

export function captureLog(): CapturedLog {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { log, lines, count: (msg, jobId) => lines.filter((line) => line['msg'] === msg && (jobId === undefined || line['job_id'] === jobId)).length };
}

export async function openWorkerHarness(name: string): Promise<WorkerHarness> {
  const redis = connectRedis(REDIS_URL, 'client', `${name}-test`);
  const keys = makeKeys(`pftest-${randomBytes(4).toString('hex')}`);
  const records = new JobRecords(redis, keys);
  const queue = new JobQueue(connectRedis(REDIS_URL, 'worker', `${name}-test-queue`), keys);
  const results = await mkdtemp(join(tmpdir(), `pixelflow-${name}-`));
  const workers: RunningWorker[] = [];
  const stopWorkers = async (): Promise<void> => {
    for (const worker of workers.splice(0)) await worker.stop();
  };
  return {
    redis,
    keys,
    records,
    events: new JobEvents(redis, keys),
    queue,
    results,
    async submit(id, p) {
      await records.create({ id, model: 'tiny-random', parameters: p, createdAt: new Date() });
      await queue.add(id);
    },
    async statusOf(id) {
      return (await records.get(id))?.status;
    },
    async startWorker(env = {}, log = pino({ level: 'silent' })) {
      const config = loadWorkerConfig({
        REDIS_URL,
        REDIS_PREFIX: keys.prefix,
        MODEL_DIR: TINY,
        RESULTS_DIR: results,
        ORT_THREADS: '1',
        WORKER_METRICS_PORT: '0',
        WORKER_METRICS_HOST: '127.0.0.1',
        HEARTBEAT_INTERVAL_MS: '500',
        LOG_LEVEL: 'silent',
        ...env,
      });
      const worker = await startWorker(config, log);
      workers.push(worker);
      return worker;
    },
    stopWorkers,
    async close() {
      await stopWorkers();
      await queue.close();
      const stale = await redis.keys(`${keys.prefix}:*`);
      if (stale.length > 0) await redis.del(...stale);
      redis.disconnect();
      await rm(results, { recursive: true, force: true });
    },
  };
}

/**
 * Makes BullMQ fail job `id` (under `prefix`) for stalling too often, by its own mechanism: workers
 * take it and die holding it, MAX_STALLED_COUNT + 1 times. Nothing renews a dead worker's lock, which
 * lapses, and BullMQ's stalled check (at our limit) returns the job to the wait list, counting; past
 * the limit BullMQ marks it there to be failed by the next worker that takes it. The job must be the
 * next one waiting, and no other worker may run on the prefix meanwhile. `onTaken` runs after each
 * take (what our worker writes first: JobRecords.start). Takes about a second.
 */
export async function stallPastTheLimit(prefix: string, id: string, onTaken: () => Promise<unknown> = async () => undefined): Promise<void> {
  const connection = connectRedis(REDIS_URL, 'worker', `dying-workers-${id}`);
  const dying = new Worker<QueuedJobData>(QUEUE_NAME, null, { connection, prefix, autorun: false, lockDuration: 200, stalledInterval: 100, maxStalledCount: MAX_STALLED_COUNT });
  const within = async <T>(what: string, attempt: () => Promise<T | undefined>): Promise<T> => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const result = await attempt();
      if (result !== undefined) return result;
      if (Date.now() > deadline) throw new Error(`${what} did not happen within 10 s`);
      await sleep(50);
    }
  };
  try {
    void dying.startStalledCheckTimer();
    for (let death = 1; death <= MAX_STALLED_COUNT + 1; death++) {
      const job = await within(`taking job ${id} (death ${death})`, () => dying.getNextJob(`dying-${death}`, { block: false }));
      if (job.id !== id) throw new Error(`job ${id} is not the next waiting (${String(job.id)} is)`);
      await onTaken();
    }
    const wait = dying.keys.wait as string;
    await within(`job ${id} back in the wait list`, async () => ((await connection.lpos(wait, id)) === null ? undefined : true));
  } finally {
    await dying.close(true);
    connection.disconnect();
  }
}
