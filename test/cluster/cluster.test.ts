import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRedis, JobQueue, jobShape, keys as makeKeys, liveWorkers, poolThroughput, type Keys } from '@pixelflow/queue';
import type { Job } from '@pixelflow/schemas';
import { startS3Server, type S3Server } from '../../packages/results/test/support/s3-server.ts';
import { readSse, REDIS_URL, TINY } from '../service/support.ts';
import { Cluster, type ApiProcess, type WorkerProcess } from './cluster.ts';

// Past one machine, on this one: 3 worker processes and 2 API processes (their sources, through tsx) on the real Redis under a key prefix of their own, with the S3 result
// store on a real S3-protocol server process (s3rver). Jobs go in through both APIs and are read
// back through the other one: each runs exactly once and its images are the same bytes from
// either replica; readiness and /models count the three workers; ETAs count them too; a job
// canceled on one replica stops on whichever worker runs it; and one worker holds the
// maintenance role.

const JOBS = 60;
/** Jobs of the burst followed over SSE, each on the replica it was not submitted to. */
const FOLLOWED = 10;
/** One slot per worker: a queue of equal jobs then drains three at a time, which the ETA check counts on. */
const WORKER_SLOTS = 1;

let s3: S3Server;
let cluster: Cluster;
let redis: Redis;
let keys: Keys;
let apis: ApiProcess[];
let workers: WorkerProcess[];

async function getJob(api: ApiProcess, id: string): Promise<Job> {
  const response = await fetch(`${api.url}/jobs/${id}`);
  expect(response.status).toBe(200);
  return (await response.json()) as Job;
}

async function submit(api: ApiProcess, body: Record<string, unknown>): Promise<string> {
  const response = await fetch(`${api.url}/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(response.status, await response.clone().text()).toBe(202);
  return ((await response.json()) as { id: string }).id;
}

/**
 * `actual` is `expected` as the job view shows it: rounded to tenths of a second (job-view.ts), with
 * 1% for the heartbeat read the API's estimate used (at most a second old) against the test's.
 */
function expectEstimate(actual: number, expected: number): void {
  expect(Math.abs(actual - expected), `eta_seconds ${actual}, expected ${expected}`).toBeLessThanOrEqual(0.05 + expected / 100);
}

/** Polls the job on `api` until `done` says so, for up to `timeoutMs`. */
async function until(api: ApiProcess, id: string, done: (job: Job) => boolean, timeoutMs = 60_000): Promise<Job> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await getJob(api, id);
    if (done(job)) return job;
    if (Date.now() > deadline) throw new Error(`job ${id} is still ${job.status} after ${timeoutMs} ms`);
    await sleep(100);
  }
}

const finished = (job: Job): boolean => !['queued', 'running'].includes(job.status);

async function readiness(api: ApiProcess): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${api.url}/readyz`);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function failureContext(): Promise<string> {
  const tails = await Promise.all([...apis, ...workers].map(async (p) => `--- ${p.name}\n${await p.tail(8)}`));
  return tails.join('\n');
}

beforeAll(async () => {
  s3 = await startS3Server();
  cluster = await Cluster.create({
    redisUrl: REDIS_URL,
    model: TINY,
    logLevel: 'info',
    fromSource: true,
    env: {
      ...s3.env,
      ORT_THREADS: '1',
      MAX_CONCURRENT_JOBS: String(WORKER_SLOTS),
      HEARTBEAT_INTERVAL_MS: '500',
      WORKER_STALE_MS: '3000',
      SSE_HEARTBEAT_MS: '1000',
      MAINTENANCE_LOCK_MS: '3000',
    },
  });
  keys = makeKeys(cluster.prefix);
  redis = cluster.redis();
  apis = await Promise.all([cluster.startApi(), cluster.startApi()]);
  workers = await Promise.all([cluster.startWorker(), cluster.startWorker(), cluster.startWorker()]);
}, 180_000);

afterAll(async () => {
  redis?.disconnect();
  await cluster?.stop({ graceMs: 10_000 });
  await s3?.stop();
}, 60_000);

describe('3 workers and 2 APIs on one Redis', () => {
  it('count three live workers on both replicas, in /readyz and /models, each naming itself in its heartbeat', async () => {
    // A worker reports ready in its metrics a moment before its heartbeat says so.
    const deadline = Date.now() + 10_000;
    while ((await readiness(apis[0] as ApiProcess)).body['workers'] !== 3 && Date.now() < deadline) await sleep(100);
    for (const api of apis) {
      expect(await readiness(api)).toEqual({ status: 200, body: { status: 'ready', workers: 3 } });
      const models = (await (await fetch(`${api.url}/models`)).json()) as { models: { status: string; workers: number }[] };
      expect(models.models[0]).toMatchObject({ status: 'ready', workers: 3 });
    }
    const heartbeats = await liveWorkers(redis, keys);
    expect(heartbeats.map((h) => h.worker_id).sort()).toEqual(['worker-1', 'worker-2', 'worker-3']);
    expect(heartbeats.every((h) => h.concurrency === WORKER_SLOTS && h.state === 'ready')).toBe(true);
    expect(new Set(heartbeats.map((h) => h.pid)).size).toBe(3);
  });

  it('gives the maintenance role to exactly one worker', async () => {
    const owner = await redis.get(keys.maintenanceLock);
    expect(owner).not.toBeNull();
    const holders = workers.filter((w) => owner?.startsWith(`${w.workerId}:`));
    expect(holders).toHaveLength(1);
    const logs = await Promise.all(workers.map((w) => w.log()));
    expect(logs.filter((log) => log.includes('maintenance role taken'))).toHaveLength(1);
  });

  it(`runs ${JOBS} jobs submitted over both replicas exactly once each, read and streamed through the other, with images both serve alike`, async () => {
    const started = Date.now();
    const submitted = await Promise.all(
      Array.from({ length: JOBS }, async (_, i) => {
        const via = apis[i % 2] as ApiProcess;
        const other = apis[(i + 1) % 2] as ApiProcess;
        const numImages = i % 5 === 0 ? 2 : 1;
        const id = await submit(via, { class: i % 10, num_images: numImages, seed: 1000 + i, steps: 3 });
        return { id, via, other, numImages };
      }),
    );
    // Followed over SSE on the replica the job did not go in through: the stream ends with the job.
    const streams = submitted.slice(0, FOLLOWED).map(async ({ id, other }) => readSse(await fetch(`${other.url}/jobs/${id}/events`)));
    const jobs = await Promise.all(submitted.map(({ id, other }) => until(other, id, finished, 120_000)));
    const seconds = (Date.now() - started) / 1000;
    expect(jobs.map((job) => job.status), await failureContext()).toEqual(Array(JOBS).fill('succeeded'));

    for (const { events } of await Promise.all(streams)) {
      const names = events.map((e) => e.event);
      expect(names.filter((name) => name === 'started')).toHaveLength(1);
      expect(names.at(-1)).toBe('succeeded');
    }

    // Exactly once: started once (no second attempt), and the workers together ended 60 jobs.
    for (const { id } of submitted) expect(await redis.hget(keys.job(id), 'attempt'), id).toBe('1');
    const ended = await Promise.all(workers.map((w) => w.metric('pixelflow_jobs_finished_total{status="succeeded"}')));
    expect(ended.reduce((a, b) => (a ?? 0) + (b ?? 0), 0)).toBe(JOBS);
    // The queue was shared: every worker ran some of the burst.
    expect(ended.every((count) => (count ?? 0) > 0), `succeeded per worker: ${ended.join(', ')}`).toBe(true);

    // One set of images each, the same bytes from either replica, as recorded.
    let images = 0;
    for (const [i, job] of jobs.entries()) {
      const { numImages } = submitted[i] as (typeof submitted)[number];
      expect(job.result?.images).toHaveLength(numImages);
      for (const image of job.result?.images ?? []) {
        for (const api of apis) {
          const response = await fetch(`${api.url}${image.url}`);
          expect(response.status, `${api.name} ${image.url}`).toBe(200);
          const bytes = Buffer.from(await response.arrayBuffer());
          expect(createHash('sha256').update(bytes).digest('hex')).toBe(image.sha256);
        }
        images += 1;
      }
    }
    expect(images).toBe(submitted.reduce((n, job) => n + job.numImages, 0));
    // Every process has a results folder of its own, and none holds an image: they went through S3.
    const onDisk = (await readdir(cluster.results, { recursive: true }).catch(() => [])).filter((file) => file.endsWith('.png'));
    expect(onDisk).toEqual([]);
    console.log(`cluster: ${JOBS} jobs (${images} images) on 3 workers in ${seconds.toFixed(1)} s; succeeded per worker: ${ended.join(', ')}`);
  });

  it('estimates a queued job for the three workers, and for one once two are gone', async () => {
    // Workers measured their own rate in the burst above, and send it with their heartbeats.
    const heartbeats = await liveWorkers(redis, keys);
    expect(heartbeats.every((h) => typeof h.seconds_per_image_step === 'number'), JSON.stringify(heartbeats)).toBe(true);

    // A held queue (BullMQ's pause: workers take nothing) of 12 equal jobs.
    const bullConnection = connectRedis(REDIS_URL, 'worker', 'cluster-test-queue');
    const { queue } = new JobQueue(bullConnection, keys);
    await queue.pause();
    try {
      const request = { class: 1, num_images: 1, seed: 7, steps: 10 };
      const ids: string[] = [];
      for (let i = 0; i < 12; i++) ids.push(await submit(apis[i % 2] as ApiProcess, request));
      const last = ids.at(-1) as string;
      const work = jobShape({ steps: [10, 10, 10, 10], num_images: 1 });
      const unitWork = work.steps * work.images;

      // Three workers of one slot: the last of 12 ends after 4 rounds of 3 jobs, one job per worker.
      const pool3 = poolThroughput(
        (await liveWorkers(redis, keys)).map((h) => ({ concurrency: h.concurrency ?? null, secondsPerImageStep: h.seconds_per_image_step ?? null })),
        null,
      );
      expect(pool3?.workers).toBe(3);
      const eta3 = (await getJob(apis[1] as ApiProcess, last)).eta_seconds as number;
      expectEstimate(eta3, 4 * unitWork * (pool3?.secondsPerImageStep as number));

      // Two workers paused past their heartbeat's life: the replicas count one, and the same job's
      // estimate is one worker's: all 12 jobs in turn, at the rate of the one left.
      (workers[1] as WorkerProcess).signal('SIGSTOP');
      (workers[2] as WorkerProcess).signal('SIGSTOP');
      const deadline = Date.now() + 15_000;
      while ((await readiness(apis[0] as ApiProcess)).body['workers'] !== 1) {
        if (Date.now() > deadline) throw new Error('the replicas still count the paused workers');
        await sleep(200);
      }
      await sleep(1200); // the job service's heartbeat read for ETAs is at most a second old
      const [alone] = await liveWorkers(redis, keys);
      expect(alone?.worker_id).toBe('worker-1');
      const eta1 = (await getJob(apis[0] as ApiProcess, last)).eta_seconds as number;
      expectEstimate(eta1, 12 * unitWork * (alone?.seconds_per_image_step as number));
      // The workers measured similar rates on one machine: one worker's estimate is about 3x three's.
      expect(eta1 / eta3).toBeGreaterThan(2);
      expect(eta1 / eta3).toBeLessThan(4.5);

      for (const id of ids) expect((await fetch(`${apis[0]?.url}/jobs/${id}`, { method: 'DELETE' })).status).toBeLessThan(300);
    } finally {
      (workers[1] as WorkerProcess).signal('SIGCONT');
      (workers[2] as WorkerProcess).signal('SIGCONT');
      await queue.resume();
      await queue.close();
      bullConnection.disconnect();
    }
    const back = Date.now() + 15_000;
    while ((await readiness(apis[1] as ApiProcess)).body['workers'] !== 3) {
      if (Date.now() > back) throw new Error('the resumed workers do not count again');
      await sleep(200);
    }
  });

  it('stops a job canceled on one replica on whichever worker runs it', async () => {
    // Long enough (8 images x 400 steps, about 3 s alone on this machine) to be canceled while it runs.
    const id = await submit(apis[1] as ApiProcess, { class: 2, num_images: 8, seed: 3, steps: 100 });
    await until(apis[0] as ApiProcess, id, (job) => job.status === 'running' || finished(job), 30_000);
    const runs = await Promise.all(workers.map((w) => w.metric('pixelflow_jobs_running')));
    const runner = workers[runs.indexOf(1)];
    expect(runner, `jobs running per worker: ${runs.join(', ')}`).toBeDefined();
    const canceledBefore = (await runner?.metric('pixelflow_jobs_finished_total{status="canceled"}')) ?? 0;

    const cancel = await fetch(`${apis[0]?.url}/jobs/${id}`, { method: 'DELETE' });
    expect(cancel.status).toBe(202);
    const job = await until(apis[1] as ApiProcess, id, finished, 30_000);
    expect(job.status).toBe('canceled');
    expect(job.progress?.fraction ?? 0).toBeLessThan(1);
    expect(await runner?.metric('pixelflow_jobs_finished_total{status="canceled"}')).toBe(canceledBefore + 1);
    expect(await runner?.log()).toContain(id);
  });
});
