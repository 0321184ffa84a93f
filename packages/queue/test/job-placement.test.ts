import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { ResolvedGeneration } from '@pixelflow/schemas';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectRedis, JobEvents, JobQueue, JobRecords, keys as makeKeys, RedisJobService, type Keys } from '../src/index.ts';
import { HandDrivenWorker } from './support/hand-driven-worker.ts';

// A job's status as the record and BullMQ's lists say it together, against the real Redis: a job
// that a worker has taken but not yet started, or that went back to the wait list (its worker
// stopped or died), reads as it stands in the queue, and its record is queued again with an event.
// The worker here is driven by hand, taking and handing back as ours do.

const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const parameters: ResolvedGeneration = { class_label: 3, class_name: 'digit 3', num_images: 1, seed: 1, cfg_scale: 4, noise_shift: 1, steps: [2, 2, 2, 2], solver: 'euler' };
const request = { model: 'tiny', parameters };
const progress = { stage: 1, stages: 4, step: 3, steps_total: 8, fraction: 3 / 8 };
const preview = { stage: 0, resolution: 4, url: '/jobs/x/previews/0' };

let redis: Redis;
let bullConnection: Redis;
let keys: Keys;
let queue: JobQueue;
let records: JobRecords;
let events: JobEvents;
let service: RedisJobService;
let worker: HandDrivenWorker;

beforeAll(() => {
  redis = connectRedis(REDIS_URL, 'client', 'job-placement-test');
  bullConnection = connectRedis(REDIS_URL, 'worker', 'job-placement-test-bull');
});

afterAll(() => {
  redis.disconnect();
  bullConnection.disconnect();
});

afterEach(async () => {
  await worker.close();
  await queue.close();
  const stale = await redis.keys(`${keys.prefix}:*`);
  if (stale.length > 0) await redis.del(...stale);
});

/** Each test's own prefix (so that positions are its own), service and BullMQ worker. */
function fresh(): void {
  keys = makeKeys(`pftest-${randomBytes(4).toString('hex')}`);
  queue = new JobQueue(bullConnection, keys, () => undefined, redis);
  records = new JobRecords(redis, keys);
  events = new JobEvents(redis, keys);
  service = new RedisJobService({ redis, keys, queue, retentionSeconds: 60 });
  worker = new HandDrivenWorker(bullConnection, keys.prefix);
}

async function submitted(): Promise<string> {
  const submission = await service.submit(request, 10);
  if (!submission.accepted) throw new Error('refused');
  return submission.id;
}

describe('a job between the record and the queue', () => {
  it('reads as queued, first in line with an estimate, once a worker has taken it and before its start is written', async () => {
    fresh();
    await service.recordThroughput({ secondsPerImageStep: 0.01, concurrency: 1 });
    const id = await submitted();
    await worker.take('taker');
    // BullMQ lists it as active; the record says queued: the worker has not written its start yet.
    expect((await records.get(id))?.status).toBe('queued');
    const snapshot = await service.snapshot(id);
    expect(snapshot).toMatchObject({ record: { status: 'queued', startedAt: null, progress: null }, queuePosition: 1 });
    // Its own work: 8 image-steps at 0.01 s.
    expect(snapshot?.etaSeconds).toBeCloseTo(0.08, 5);
    // Once its start is written, it is running.
    await records.start(id, new Date());
    expect(await service.snapshot(id)).toMatchObject({ record: { status: 'running' }, queuePosition: null });
  });

  it('reads as queued with its place, without the stopped attempt\'s progress, once handed back to the wait list', async () => {
    fresh();
    const first = await submitted();
    const second = await submitted();
    const job = await worker.take('stopping');
    expect(job.id).toBe(first);
    await records.start(first, new Date());
    await records.reportProgress(first, progress);
    await records.addPreview(first, preview, { ...preview, stages: 4 });
    await job.handBack();
    // The record still says running, with what the stopped attempt reported.
    expect(await records.get(first)).toMatchObject({ status: 'running', progress });

    // Handed back to the end that workers take from: next again, ahead of the job queued after it.
    expect(await service.snapshot(first)).toMatchObject({ record: { status: 'queued', progress: null, previews: [], startedAt: null, attempt: 1 }, queuePosition: 1 });
    expect(await service.snapshot(second)).toMatchObject({ record: { status: 'queued' }, queuePosition: 2 });
  });
});

describe('JobRecords.requeue', () => {
  it('queues a running job again, once it waits and no worker holds it, with a queued event giving its place', async () => {
    fresh();
    const id = await submitted();
    await submitted();
    const job = await worker.take('first');
    await records.start(id, new Date());
    await records.reportProgress(id, progress);
    await records.addPreview(id, preview, { ...preview, stages: 4 });

    // Still held by its worker: nothing changes.
    expect(await records.requeue(id, worker.queueKeysOf(id))).toBe('running');
    expect((await events.read(id)).map((event) => event.name)).toEqual(['queued', 'progress', 'stage']);

    await job.handBack();
    expect(await records.requeue(id, worker.queueKeysOf(id))).toBe('queued');
    expect(await records.get(id)).toMatchObject({ status: 'queued', progress: null, previews: [], startedAt: null, attempt: 1 });
    const last = (await events.read(id)).at(-1);
    expect(last).toMatchObject({ name: 'queued', data: { position: 1 } });
    // Once only: a queued record is left alone.
    expect(await records.requeue(id, worker.queueKeysOf(id))).toBe('queued');
    expect((await events.read(id)).filter((event) => event.name === 'queued')).toHaveLength(2);

    // Taken again and started before a late requeue (another worker's stalled check): the new attempt stands.
    const again = await worker.take('second');
    expect(again.id).toBe(id);
    expect((await records.start(id, new Date()))?.attempt).toBe(2);
    expect(await records.requeue(id, worker.queueKeysOf(id))).toBe('running');
    expect((await records.get(id))?.status).toBe('running');
  });

  it('leaves a finished job, and a job gone, as they are', async () => {
    fresh();
    const id = await submitted();
    const job = await worker.take('worker');
    await records.start(id, new Date());
    await records.finish(id, { status: 'failed', error: { type: 'worker_error', message: 'test' } }, new Date(), 60);
    await job.handBack();
    expect(await records.requeue(id, worker.queueKeysOf(id))).toBe('failed');
    expect((await events.read(id)).at(-1)?.name).toBe('failed');
    expect(await records.requeue('nothing', worker.queueKeysOf('nothing'))).toBeNull();
  });
});
