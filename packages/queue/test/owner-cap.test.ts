import { randomBytes } from 'node:crypto';
import { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ResolvedGeneration } from '@pixelflow/schemas';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRedis, JobQueue, keys as makeKeys, QUEUE_NAME, RedisJobService, type Keys } from '../src/index.ts';

// An owner's cap (an API key's max_active) on the real Redis: taken in the same script as the queue's
// place, counted from what BullMQ holds, so that a job handed back by a dead worker counts once, a job
// BullMQ no longer holds counts no more, and a place whose submission died lapses.

const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const parameters: ResolvedGeneration = { class_label: 3, class_name: 'digit 3', num_images: 1, seed: 1, cfg_scale: 4, noise_shift: 1, steps: [2, 2, 2, 2], solver: 'euler' };
const request = { model: 'tiny', parameters, owner: 'alice' };
const ALICE = { owner: 'alice', maxActive: 2 };

let redis: Redis;
let bullConnection: Redis;
const opened: { keys: Keys; queue: JobQueue }[] = [];

beforeAll(() => {
  redis = connectRedis(REDIS_URL, 'client', 'owner-cap-test');
  bullConnection = connectRedis(REDIS_URL, 'worker', 'owner-cap-test-bull');
});

afterAll(async () => {
  for (const { keys, queue } of opened) {
    await queue.close();
    const stale = await redis.keys(`${keys.prefix}:*`);
    if (stale.length > 0) await redis.del(...stale);
  }
  redis.disconnect();
  bullConnection.disconnect();
});

function fresh(reservationMs = 60_000) {
  const keys = makeKeys(`pftest-${randomBytes(4).toString('hex')}`);
  const queue = new JobQueue(bullConnection, keys, () => undefined, redis, { reservationMs });
  opened.push({ keys, queue });
  return { keys, queue, service: new RedisJobService({ redis, keys, queue, retentionSeconds: 60 }) };
}

describe("an owner's cap", () => {
  it('counts a job taken by a worker that died and handed back once, and frees the place of a job BullMQ removed', async () => {
    const { keys, queue, service } = fresh();
    const first = await service.submit(request, 100, ALICE);
    const second = await service.submit(request, 100, ALICE);
    expect([first.accepted, second.accepted]).toEqual([true, true]);
    expect(await service.submit(request, 100, ALICE)).toMatchObject({ accepted: false, ownerActive: 2, maxActive: 2 });
    // Another owner is counted apart, and the queue's own cap is still the queue's.
    expect(await service.submit({ ...request, owner: 'bob' }, 100, { owner: 'bob', maxActive: 1 })).toMatchObject({ accepted: true });
    expect(await service.submit({ ...request, owner: 'carol' }, 3, { owner: 'carol', maxActive: 5 })).toMatchObject({ accepted: false, inQueue: 3 });

    // A worker takes the first job and dies: BullMQ hands it back to the wait list, the same job.
    const worker = new Worker(QUEUE_NAME, null, { connection: bullConnection, prefix: keys.prefix, autorun: false });
    const taken = await worker.getNextJob('dead-worker', { block: false });
    await worker.close(true);
    expect(taken).toBeDefined();
    await taken?.moveToWait('dead-worker');
    expect(await service.submit(request, 100, ALICE)).toMatchObject({ accepted: false, ownerActive: 2 });

    // BullMQ removes a job that ends (removeOnComplete/removeOnFail, or a cancel's remove): one place frees.
    await queue.queue.remove(taken?.id as string);
    expect(await service.submit(request, 100, ALICE)).toMatchObject({ accepted: true });
    expect(await service.submit(request, 100, ALICE)).toMatchObject({ accepted: false, ownerActive: 2 });
  });

  it('lets the place of a submission that died before its add lapse, and not sooner', async () => {
    const { queue, service } = fresh(3000);
    expect(await queue.admit('j-died', 100, { owner: 'alice', maxActive: 1 })).toMatchObject({ admitted: true, ownerActive: 0 });
    expect(await service.submit(request, 100, { owner: 'alice', maxActive: 1 })).toMatchObject({ accepted: false, ownerActive: 1 });
    await new Promise((resolve) => setTimeout(resolve, 3200));
    expect(await service.submit(request, 100, { owner: 'alice', maxActive: 1 })).toMatchObject({ accepted: true });
  });
});
