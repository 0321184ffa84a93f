import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { liveWorkers, publishCancel, type JobEvents, type JobQueue, type JobRecords, type Keys } from '@pixelflow/queue';
import { LocalResultStore, resultKey } from '@pixelflow/results';
import { readPngText } from '@pixelflow/formats';
import type { ResolvedGeneration } from '@pixelflow/schemas';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_STALLED_COUNT } from '../src/job-processor.ts';
import type { RunningWorker } from '../src/worker.ts';
import { openWorkerHarness, stallPastTheLimit, type WorkerHarness } from './support/worker-harness.ts';

// The worker in this process against the real Redis and the committed tiny model: jobs put on the
// queue the way the API puts them run to their images, report progress and previews, and stop
// when canceled. A lock shorter than the long job proves the lock is renewed while it computes.
// Each test has a key prefix, results folder and worker of its own, so that any one runs alone.

const LOCK_MS = 1000;
const STALLED_MS = 500;

let h: WorkerHarness;
let redis: Redis;
let k: Keys;
let records: JobRecords;
let events: JobEvents;
let queue: JobQueue;
let results: string;

function parameters(overrides: Partial<ResolvedGeneration> = {}): ResolvedGeneration {
  return { class_label: 3, class_name: 'class 3', num_images: 2, seed: 11, cfg_scale: 4, noise_shift: 1, steps: [2, 2, 2, 2], solver: 'euler', ...overrides };
}

/** The largest job there is: 8 images x 4 stages x 100 steps, CFG. */
const LONG = parameters({ num_images: 8, steps: [100, 100, 100, 100] });

function submit(id: string, p: ResolvedGeneration): Promise<void> {
  return h.submit(id, p);
}

function startWorker(): Promise<RunningWorker> {
  return h.startWorker({ LOCK_DURATION_MS: String(LOCK_MS), STALLED_INTERVAL_MS: String(STALLED_MS) });
}

beforeEach(async () => {
  h = await openWorkerHarness('worker');
  ({ redis, keys: k, records, events, queue, results } = h);
});

afterEach(() => h.close());

/** Runs job `id` to its end; resolves with its record. */
async function runToEnd(id: string, p: ResolvedGeneration, status = 'succeeded'): Promise<NonNullable<Awaited<ReturnType<JobRecords['get']>>>> {
  await submit(id, p);
  await expect.poll(async () => (await records.get(id))?.status, { timeout: 30_000, interval: 100 }).toBe(status);
  const record = await records.get(id);
  if (!record) throw new Error(`job ${id} is gone`);
  return record;
}

/** Submits a long job, cancels it once it has a preview; resolves once it ended canceled. */
async function cancelWhileRunning(id: string): Promise<void> {
  await submit(id, LONG);
  await expect.poll(async () => (await records.get(id))?.previews.length ?? 0, { timeout: 30_000, interval: 20 }).toBeGreaterThan(0);
  expect(await records.requestCancel(id, new Date(), 3600)).toBe('running');
  await publishCancel(redis, k, id);
  await expect.poll(async () => (await records.get(id))?.status, { timeout: 10_000, interval: 20 }).toBe('canceled');
}

/**
 * Queues a job whose record a worker cannot read (parameters from some other version): records.start
 * marks it running, then reading its parameters throws, outside the sampler.
 */
async function submitBroken(id: string): Promise<void> {
  await redis.hset(k.job(id), { id, status: 'queued', model: 'tiny-random', parameters: '{}', attempt: 0, created_at: new Date().toISOString() });
  await queue.add(id);
}

describe('the worker', () => {
  it('announces itself ready with its model', async () => {
    const worker = await startWorker();
    const [live] = await liveWorkers(redis, k);
    expect(live).toMatchObject({ worker_id: worker.id, state: 'ready', provider: 'cpu', model: { name: 'tiny-random', stages: [4, 8, 16, 32] } });
  });

  it('runs a job to its images, with progress, stage previews and events in order', async () => {
    await startWorker();
    const record = await runToEnd('ok1', parameters());
    expect(record.progress).toEqual({ stage: 3, stages: 4, step: 8, steps_total: 8, fraction: 1 });
    expect(record.previews.map((p) => p.resolution)).toEqual([4, 8, 16, 32]);
    expect(record.images).toHaveLength(2);
    const store = new LocalResultStore(results);
    for (const [index, image] of (record.images ?? []).entries()) {
      const png = await store.get(resultKey('ok1', `image-${index}.png`));
      expect(png).not.toBeNull();
      expect(createHash('sha256').update(png as Buffer).digest('hex')).toBe(image.sha256);
      expect(JSON.parse(readPngText(png as Buffer)['parameters'] ?? '{}')).toMatchObject({ seed: 11, image_index: index, class_label: 3 });
    }
    const names = (await events.read('ok1')).map((e) => e.name);
    expect(names[0]).toBe('started');
    expect(names.filter((n) => n === 'progress')).toHaveLength(8);
    expect(names.filter((n) => n === 'stage')).toHaveLength(4);
    expect(names.at(-1)).toBe('succeeded');
  });

  it('keeps the lock of a job that runs longer than the lock duration (no stall, no second attempt)', async () => {
    // The largest job there is (8 images x 4 stages x 100 steps, CFG), three at once so that their
    // merged calls share the worker: each runs about three times as long as it would alone (over a
    // second alone on this VM), well past a lock plus a stalled check even on a faster machine.
    const ids = ['long1', 'long2', 'long3'];
    await startWorker();
    await Promise.all(ids.map((id) => submit(id, LONG)));
    for (const id of ids) {
      await expect.poll(async () => (await records.get(id))?.status, { timeout: 60_000, interval: 100 }).toBe('succeeded');
      const record = await records.get(id);
      const ranMs = (record?.finishedAt?.getTime() ?? 0) - (record?.startedAt?.getTime() ?? 0);
      // Longer than a lock plus a stalled check: without renewal, its lock would have expired mid-job.
      expect(ranMs).toBeGreaterThan(LOCK_MS + STALLED_MS);
      // A lost lock would have made BullMQ's stalled check (every 500 ms) start it again.
      expect(record?.attempt).toBe(1);
      expect((await events.read(id)).filter((e) => e.name === 'started')).toHaveLength(1);
    }
  });

  it('stops a running job within a model call when canceled, keeping the previews it reached', async () => {
    await startWorker();
    await cancelWhileRunning('cancel1');
    const record = await records.get('cancel1');
    expect(record?.previews.length).toBeGreaterThan(0);
    expect(record?.progress?.step).toBeLessThan(400);
    expect(record?.images).toBeNull();
    expect((await events.read('cancel1')).at(-1)?.name).toBe('canceled');
  });

  it('lets go of a job whose lock it lost, which BullMQ\'s stalled check returns to the queue to run again, ending once', async () => {
    await startWorker();
    await submit('lost1', LONG);
    await expect.poll(async () => (await records.get('lost1'))?.progress?.step ?? 0, { timeout: 30_000, interval: 20 }).toBeGreaterThan(0);
    // As if Redis had been away longer than the lock: the lock key is gone at the next renewal.
    await redis.del(`${k.prefix}:generate:lost1:lock`);
    await expect.poll(async () => (await records.get('lost1'))?.status, { timeout: 60_000, interval: 100 }).toBe('succeeded');
    const record = await records.get('lost1');
    expect(record?.attempt).toBe(2);
    const names = (await events.read('lost1')).map((e) => e.name);
    expect(names.filter((n) => n === 'started')).toHaveLength(2);
    expect(names.filter((n) => n === 'succeeded' || n === 'failed' || n === 'canceled')).toEqual(['succeeded']);
  });

  it('ends a job as failed, with its final event, when a step outside the sampler throws', async () => {
    // The record must not stay running forever.
    await startWorker();
    await submitBroken('broken1');
    await expect.poll(() => redis.hget(k.job('broken1'), 'status'), { timeout: 10_000, interval: 50 }).toBe('failed');
    expect(JSON.parse((await redis.hget(k.job('broken1'), 'error')) ?? 'null')).toMatchObject({ type: 'worker_error' });
    expect(await redis.pexpiretime(k.job('broken1'))).toBeGreaterThan(Date.now());
    const final = (await events.read('broken1')).at(-1);
    expect(final?.name).toBe('failed');
    expect(final?.data).toMatchObject({ error: { type: 'worker_error' } });
    // Once only: BullMQ completes the job, so nothing fails it a second time.
    expect((await events.read('broken1')).filter((e) => e.name === 'failed')).toHaveLength(1);
  });

  it('ends a job as failed when BullMQ fails it for stalling too often: workers died holding it, more times than MAX_STALLED_COUNT', async () => {
    await submit('stalled1', parameters());
    // Workers take it, start it as ours do, and die, until BullMQ's stalled check marks it to be failed.
    let deaths = 0;
    await stallPastTheLimit(k.prefix, 'stalled1', async () => expect((await records.start('stalled1', new Date()))?.attempt).toBe(++deaths));
    // Our worker takes it next, and BullMQ fails it: the record, left running, must end.
    await startWorker();
    await expect.poll(() => redis.hget(k.job('stalled1'), 'status'), { timeout: 10_000, interval: 50 }).toBe('failed');
    const final = (await events.read('stalled1')).at(-1);
    expect(final?.name).toBe('failed');
    expect(final?.data).toMatchObject({ error: { type: 'worker_error', message: 'job stalled more than allowable limit' } });
    // It never ran here.
    expect((await records.get('stalled1'))?.attempt).toBe(MAX_STALLED_COUNT + 1);
  });

  it('serves its metrics: ready, finished jobs by status, images, failures by type, wait, run and whole latency, model calls by resolution', async () => {
    const worker = await startWorker();
    // One job of each ending, its own: two images succeeded, one canceled, one failed.
    await runToEnd('metrics-ok', parameters());
    await cancelWhileRunning('metrics-cancel');
    await submitBroken('metrics-broken');
    await expect.poll(() => redis.hget(k.job('metrics-broken'), 'status'), { timeout: 10_000, interval: 50 }).toBe('failed');
    const text = await (await fetch(`http://127.0.0.1:${worker.metricsPort}/metrics`)).text();
    expect(text).toMatch(/^pixelflow_worker_ready 1$/m);
    for (const name of ['pixelflow_job_wait_seconds_count', 'pixelflow_job_run_seconds_count', 'pixelflow_model_call_seconds_bucket{le="0.001",resolution="4"}', 'pixelflow_sampler_steps_per_second', 'pixelflow_worker_process_cpu_seconds_total']) {
      expect(text).toContain(name);
    }
    // Finished jobs, images made, failures by type and the whole latency, each counted where the job ended.
    const value = (series: string): number => Number(new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
    for (const status of ['succeeded', 'canceled', 'failed']) expect(value(`pixelflow_jobs_finished_total{status="${status}"}`), status).toBe(1);
    // (The broken job failed before its start was known: it has no latency.)
    for (const status of ['succeeded', 'canceled']) expect(value(`pixelflow_job_latency_seconds_count{status="${status}"}`), status).toBe(1);
    expect(value('pixelflow_images_generated_total')).toBe(2);
    expect(value('pixelflow_job_failures_total{type="worker_error"}')).toBe(1);
    // onnxruntime's own time, within each call's time from start to velocity.
    const total = (name: string): number => [...text.matchAll(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'gm'))].reduce((sum, match) => sum + Number(match[1]), 0);
    expect(total('pixelflow_onnxruntime_run_seconds_count')).toBe(total('pixelflow_model_call_seconds_count'));
    expect(total('pixelflow_onnxruntime_run_seconds_sum')).toBeGreaterThan(0);
    expect(total('pixelflow_onnxruntime_run_seconds_sum')).toBeLessThanOrEqual(total('pixelflow_model_call_seconds_sum'));
    expect(text).toMatch(/^pixelflow_onnxruntime_run_seconds_count\{resolution="4",batch="\d+"\} \d+$/m);
    expect((await fetch(`http://127.0.0.1:${worker.metricsPort}/other`)).status).toBe(404);
  });
});
