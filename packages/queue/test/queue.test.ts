import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { ResolvedGeneration } from '@pixelflow/schemas';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connectRedis,
  isEventId,
  JobEventHub,
  JobEvents,
  JobQueue,
  JobRecords,
  keys as makeKeys,
  liveWorkers,
  publishCancel,
  sendHeartbeat,
  subscribeCancels,
  type Keys,
} from '../src/index.ts';

// Against the real Redis on 127.0.0.1:6379 (REDIS_URL overrides), under a key
// prefix of its own that is deleted afterwards.

const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const parameters: ResolvedGeneration = {
  class_label: 3,
  class_name: 'digit 3',
  num_images: 1,
  seed: 1,
  cfg_scale: 4,
  noise_shift: 1,
  steps: [2, 2, 2, 2],
  solver: 'euler',
};

let redis: Redis;
let subscriber: Redis;
let k: Keys;
let records: JobRecords;
let events: JobEvents;

beforeAll(async () => {
  redis = connectRedis(REDIS_URL, 'client', 'queue-test');
  subscriber = connectRedis(REDIS_URL, 'subscriber', 'queue-test-sub');
  k = makeKeys(`pftest-${randomBytes(4).toString('hex')}`);
  records = new JobRecords(redis, k);
  events = new JobEvents(redis, k);
});

afterAll(async () => {
  const stale = await redis.keys(`${k.prefix}:*`);
  if (stale.length > 0) await redis.del(...stale);
  redis.disconnect();
  subscriber.disconnect();
});

// Times a day ahead: finished records expire (PEXPIREAT) at their expires_at.
const T0 = Math.floor(Date.now() / 1000) * 1000 + 86_400_000;
const at = (s: number): Date => new Date(T0 + s * 1000);

describe('job records', () => {
  it('go queued -> running -> succeeded, keep the first ending and expire by the zset', async () => {
    await records.create({ id: 'a1', model: 'm', parameters, createdAt: at(0) });
    expect(await records.get('a1')).toMatchObject({ status: 'queued', attempt: 0, parameters, startedAt: null });
    // The record after the start comes back with it.
    expect(await records.start('a1', at(1))).toMatchObject({ id: 'a1', status: 'running', attempt: 1, startedAt: at(1), parameters });
    await events.append('a1', 'started', { attempt: 1, steps_total: 8 });
    await records.reportProgress('a1', { stage: 1, stages: 4, step: 3, steps_total: 8, fraction: 0.375 });
    expect((await events.read('a1')).map((e) => e.name)).toEqual(['started', 'progress']);
    await records.addPreview('a1', { stage: 1, resolution: 8, url: '/p/1' }, { stage: 1, stages: 4, resolution: 8, url: '/p/1' });
    await records.addPreview('a1', { stage: 0, resolution: 4, url: '/p/0' }, { stage: 0, stages: 4, resolution: 4, url: '/p/0', png_base64: 'iVBORw0=' });
    // Each preview's stage event went out in the same transaction as its record.
    expect((await events.read('a1')).filter((e) => e.name === 'stage').map((e) => e.data)).toEqual([
      { stage: 1, stages: 4, resolution: 8, url: '/p/1' },
      { stage: 0, stages: 4, resolution: 4, url: '/p/0', png_base64: 'iVBORw0=' },
    ]);
    const image = { url: '/jobs/a1/images/0', width: 32, height: 32, sha256: 'b'.repeat(64) };
    expect(await records.finish('a1', { status: 'succeeded', images: [image] }, at(2), 60)).toBe('succeeded');
    expect(await records.finish('a1', { status: 'failed', error: { type: 'x', message: 'y' } }, at(3), 60)).toBe('succeeded');
    const done = await records.get('a1');
    expect(done).toMatchObject({ status: 'succeeded', attempt: 1, images: [image], error: null });
    expect(done?.previews.map((p) => p.stage)).toEqual([0, 1]);
    expect(done?.progress?.step).toBe(3);
    expect(done?.expiresAt?.toISOString()).toBe(at(62).toISOString());
    expect(await records.expired(at(61))).toEqual([]);
    expect(await records.expired(at(62))).toEqual(['a1']);
    expect(await redis.pexpiretime(k.job('a1'))).toBe(at(62).getTime());
    expect(await redis.pexpiretime(k.events('a1'))).toBe(at(62).getTime());
    expect(await records.exists('a1')).toBe(true);
    await records.delete('a1');
    expect(await records.get('a1')).toBeNull();
  });

  it('cancel a queued job at once, flag a running one, and leave a finished one alone', async () => {
    await records.create({ id: 'c1', model: 'm', parameters, createdAt: at(0) });
    expect(await records.requestCancel('c1', at(1), 60)).toBe('queued');
    expect((await records.get('c1'))?.status).toBe('canceled');
    // The worker that dequeues it afterwards must not run it.
    expect((await records.start('c1', at(2)))?.status).toBe('canceled');

    await records.create({ id: 'c2', model: 'm', parameters, createdAt: at(0) });
    await records.start('c2', at(1));
    expect(await records.requestCancel('c2', at(2), 60)).toBe('running');
    expect((await records.get('c2'))?.cancelRequested).toBe(true);
    expect(await records.finish('c2', { status: 'canceled' }, at(3), 60)).toBe('canceled');
    expect(await records.requestCancel('c2', at(4), 60)).toBe('canceled');
    expect(await records.requestCancel('nope', at(4), 60)).toBeNull();
    expect(await records.start('nope', at(4))).toBeNull();
  });

  it('leave a job unfinished when its ending fails part-way, so that writing it again writes all of it', async () => {
    // Keys of the wrong type make the ending script fail at its expiry entry, then at its event.
    const own = makeKeys(`pftest-${randomBytes(4).toString('hex')}`);
    const mine = new JobRecords(redis, own);
    const image = { url: '/jobs/e1/images/0', width: 32, height: 32, sha256: 'e'.repeat(64) };
    const ending = { status: 'succeeded' as const, images: [image] };
    try {
      await mine.create({ id: 'e1', model: 'm', parameters, createdAt: at(0) });
      await mine.start('e1', at(1));
      await new JobEvents(redis, own).append('e1', 'started', { attempt: 1, steps_total: 8 });
      await redis.set(own.expiry, 'not a sorted set');
      await expect(mine.finish('e1', ending, at(2), 60)).rejects.toThrow(/WRONGTYPE/);
      await redis.del(own.expiry);
      const events = await redis.xrange(own.events('e1'), '-', '+');
      await redis.del(own.events('e1'));
      await redis.set(own.events('e1'), 'not a stream');
      await expect(mine.finish('e1', ending, at(2), 60)).rejects.toThrow(/WRONGTYPE/);
      expect(await mine.get('e1')).toMatchObject({ status: 'running', finishedAt: null });
      expect(await redis.pttl(own.job('e1'))).toBe(-1);
      await redis.del(own.events('e1'));
      for (const [, fields] of events) await redis.xadd(own.events('e1'), '*', ...fields);
      // Written again, all of it: status, one final event, expiry.
      expect(await mine.finish('e1', ending, at(3), 60)).toBe('succeeded');
      expect(await mine.get('e1')).toMatchObject({ status: 'succeeded', images: [image], finishedAt: at(3) });
      expect((await new JobEvents(redis, own).read('e1')).map((e) => e.name)).toEqual(['started', 'succeeded']);
      expect(await mine.expired(at(63))).toEqual(['e1']);
      expect(await redis.pexpiretime(own.job('e1'))).toBe(at(63).getTime());
    } finally {
      const stale = await redis.keys(`${own.prefix}:*`);
      if (stale.length > 0) await redis.del(...stale);
    }
  });

  it('count attempts when a job is started again after its worker died, dropping what the earlier attempt reported', async () => {
    await records.create({ id: 'r1', model: 'm', parameters, createdAt: at(0) });
    await records.start('r1', at(1));
    await records.reportProgress('r1', { stage: 1, stages: 4, step: 5, steps_total: 8, fraction: 0.625 });
    for (const stage of [0, 1]) {
      const preview = { stage, resolution: 4 << stage, url: `/jobs/r1/previews/${stage}` };
      await records.addPreview('r1', preview, { ...preview, stages: 4 });
    }
    expect(await records.requestCancel('r1', at(2), 60)).toBe('running');
    expect((await records.start('r1', at(5)))?.status).toBe('running');
    const again = await records.get('r1');
    expect(again).toMatchObject({ status: 'running', attempt: 2, progress: null, previews: [], startedAt: at(5) });
    // A cancel asked for meanwhile still holds for the new attempt.
    expect(again?.cancelRequested).toBe(true);
    expect(again?.parameters).toEqual(parameters);
  });
});

describe('job events', () => {
  it('are read in order, after a given id, with stream ids usable as SSE ids', async () => {
    const first = await events.append('e1', 'queued', { position: 2 });
    const second = await events.append('e1', 'started', { attempt: 1, steps_total: 8 });
    await events.append('e1', 'progress', { stage: 0, stages: 4, step: 1, steps_total: 8, fraction: 0.125 });
    expect(isEventId(first) && isEventId(second)).toBe(true);
    expect((await events.read('e1')).map((e) => e.name)).toEqual(['queued', 'started', 'progress']);
    const after = await events.read('e1', first);
    expect(after.map((e) => e.id)[0]).toBe(second);
    expect(after[0]?.data).toEqual({ attempt: 1, steps_total: 8 });
    expect(await events.read('e1', after.at(-1)?.id)).toEqual([]);
    expect(isEventId('12-x')).toBe(false);
  });

  it('wake the followers of that job only, through one subscriber connection', async () => {
    const hub = new JobEventHub(subscriber.duplicate(), k);
    await hub.start();
    const woken: string[] = [];
    const stopA = hub.follow('h1', () => woken.push('h1'));
    const stopB = hub.follow('h2', () => woken.push('h2'));
    expect(hub.followed).toBe(2);
    await events.append('h1', 'canceled', { reason: 'test' });
    await expect.poll(() => woken).toEqual(['h1']);
    stopA();
    stopB();
    expect(hub.followed).toBe(0);
  });
});

describe('progress reports sent together', () => {
  it('become one event each, in order, the record keeping the last, with followers woken once', async () => {
    const hub = new JobEventHub(subscriber.duplicate(), k);
    await hub.start();
    let wakes = 0;
    const stop = hub.follow('p1', () => wakes++);
    const reports = [1, 2, 3].map((step) => ({ stage: 0, stages: 4, step, steps_total: 8, fraction: step / 8 }));
    await records.create({ id: 'p1', model: 'm', parameters, createdAt: new Date() });
    await records.reportProgresses('p1', reports);
    const stored = await events.read('p1');
    expect(stored.map((e) => e.name)).toEqual(['progress', 'progress', 'progress']);
    expect(stored.map((e) => e.data)).toEqual(reports);
    expect((await records.get('p1'))?.progress).toEqual(reports[2]);
    await expect.poll(() => wakes).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(wakes).toBe(1);
    await records.reportProgresses('p1', []);
    expect(await events.read('p1')).toHaveLength(3);
    stop();
  });

  it('can ride with a stage end: its progress, then the stage, one event each, followers woken once', async () => {
    const connection = subscriber.duplicate();
    const hub = new JobEventHub(connection, k);
    await hub.start();
    let wakes = 0;
    const stop = hub.follow('p2', () => wakes++);
    const reports = [9, 10].map((step) => ({ stage: 0, stages: 4, step, steps_total: 40, fraction: step / 40 }));
    const preview = { stage: 0, resolution: 4, url: '/jobs/p2/previews/0' };
    await records.create({ id: 'p2', model: 'm', parameters, createdAt: new Date() });
    await records.addPreview('p2', preview, { ...preview, stages: 4 }, reports);
    const stored = await events.read('p2');
    expect(stored.map((e) => e.name)).toEqual(['progress', 'progress', 'stage']);
    expect(stored.map((e) => e.data)).toEqual([...reports, { ...preview, stages: 4 }]);
    const record = await records.get('p2');
    expect(record?.progress).toEqual(reports[1]);
    expect(record?.previews).toEqual([preview]);
    await expect.poll(() => wakes).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(wakes).toBe(1);
    stop();
    connection.disconnect();
  });
});

describe('cancel requests and worker heartbeats', () => {
  it('reach a subscriber in another connection', async () => {
    const received: string[] = [];
    const listener = subscriber.duplicate();
    await subscribeCancels(listener, k, (id) => received.push(id));
    await publishCancel(redis, k, 'x9');
    await expect.poll(() => received).toEqual(['x9']);
    listener.disconnect();
  });

  it('list the workers whose heartbeat is alive', async () => {
    expect(await liveWorkers(redis, k)).toEqual([]);
    const heartbeat = {
      worker_id: 'w1',
      state: 'ready' as const,
      model: { name: 'm', resolution: 32, stages: [4, 8, 16, 32], classes: 10, weights_sha256: 'c'.repeat(64) },
      provider: 'cpu',
      pid: process.pid,
      hostname: 'here',
      started_at: at(0).toISOString(),
      sent_at: at(1).toISOString(),
    };
    await sendHeartbeat(redis, k, heartbeat, 1);
    expect(await liveWorkers(redis, k)).toEqual([heartbeat]);
    await expect.poll(() => liveWorkers(redis, k), { timeout: 3000, interval: 200 }).toEqual([]);
  });
});

describe('the BullMQ queue', () => {
  it('reports waiting order and depth, and removes a waiting job', async () => {
    const queue = new JobQueue(connectRedis(REDIS_URL, 'worker', 'queue-test-bull'), k);
    try {
      for (const id of ['q1', 'q2', 'q3']) await queue.add(id);
      expect(await queue.standing('q1', 5)).toEqual({ position: 1, ahead: [], behind: ['q2', 'q3'] });
      expect(await queue.standing('q2', 5)).toEqual({ position: 2, ahead: ['q1'], behind: ['q3'] });
      expect(await queue.standing('q3', 5)).toEqual({ position: 3, ahead: ['q2', 'q1'], behind: [] });
      expect(await queue.standing('q3', 1)).toEqual({ position: 3, ahead: ['q2'], behind: [] });
      expect(await queue.standing('q1', 1)).toEqual({ position: 1, ahead: [], behind: ['q2'] });
      expect(await queue.standing('nope', 5)).toBeNull();
      expect(await queue.next(5)).toEqual(['q1', 'q2', 'q3']);
      expect(await queue.next(2)).toEqual(['q1', 'q2']);
      expect(await queue.activeIds()).toEqual([]);
      expect(await queue.depth()).toEqual({ waiting: 3, active: 0 });
      expect(await queue.removeWaiting('q2')).toBe(true);
      expect(await queue.removeWaiting('q2')).toBe(false);
      expect(await queue.standing('q3', 5)).toEqual({ position: 2, ahead: ['q1'], behind: [] });
    } finally {
      await queue.close();
    }
  });

  it('answers where jobs stand from its fail-fast connection: an error at once while Redis is away, not a wait', async () => {
    const away = 'redis://127.0.0.1:1';
    const bullConnection = connectRedis(away, 'worker', 'queue-test-away-bull');
    const reads = connectRedis(away, 'client', 'queue-test-away');
    const queue = new JobQueue(bullConnection, k, () => undefined, reads);
    try {
      const started = Date.now();
      await expect(queue.depth()).rejects.toThrow();
      await expect(queue.activeIds()).rejects.toThrow();
      await expect(queue.standing('q1', 5)).rejects.toThrow();
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      bullConnection.disconnect();
      reads.disconnect();
    }
  });
});
