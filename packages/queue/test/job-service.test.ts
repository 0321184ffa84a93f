import { randomBytes } from 'node:crypto';
import { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { JobId, type ResolvedGeneration } from '@pixelflow/schemas';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  connectRedis,
  JobQueue,
  JobRecords,
  keys as makeKeys,
  NO_WORKER_RETRY_AFTER_SECONDS,
  QUEUE_NAME,
  RedisJobService,
  sendHeartbeat,
  subscribeCancels,
  type Keys,
  type WorkerHeartbeat,
} from '../src/index.ts';

// The job service against the real Redis on 127.0.0.1:6379 (REDIS_URL overrides). Each test has
// a key prefix of its own, so queue depths and positions are its own; all are deleted afterwards.

const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
/** 8 units of work (steps x images). */
const parameters: ResolvedGeneration = { class_label: 3, class_name: 'digit 3', num_images: 1, seed: 1, cfg_scale: 4, noise_shift: 1, steps: [2, 2, 2, 2], solver: 'euler' };
const request = { model: 'tiny', parameters };

let redis: Redis;
let bullConnection: Redis;
const opened: { keys: Keys; queue: JobQueue }[] = [];

beforeAll(() => {
  redis = connectRedis(REDIS_URL, 'client', 'job-service-test');
  bullConnection = connectRedis(REDIS_URL, 'worker', 'job-service-test-bull');
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

/** A service (and the lower-level pieces a worker would use) under a prefix of its own. */
function fresh(makeQueue = (keys: Keys) => new JobQueue(bullConnection, keys, () => undefined, redis), keys = makeKeys(`pftest-${randomBytes(4).toString('hex')}`)) {
  const queue = makeQueue(keys);
  opened.push({ keys, queue });
  return { keys, queue, records: new JobRecords(redis, keys), service: new RedisJobService({ redis, keys, queue, retentionSeconds: 60 }) };
}

/** Takes the next waiting job as a worker does (BullMQ moves it to its active list). */
async function takeNext(keys: Keys): Promise<string | undefined> {
  const worker = new Worker(QUEUE_NAME, null, { connection: bullConnection, prefix: keys.prefix, autorun: false });
  try {
    return (await worker.getNextJob('test-token', { block: false }))?.id;
  } finally {
    await worker.close(true);
  }
}

function accepted<T extends { accepted: boolean }>(submission: T): Extract<T, { accepted: true }> {
  if (!submission.accepted) throw new Error(`refused: ${JSON.stringify(submission)}`);
  return submission as Extract<T, { accepted: true }>;
}

function heartbeat(workerId: string, state: WorkerHeartbeat['state']): WorkerHeartbeat {
  const now = new Date().toISOString();
  return {
    worker_id: workerId,
    state,
    model: { name: 'tiny', resolution: 32, stages: [4, 8, 16, 32], classes: 10, weights_sha256: 'c'.repeat(64) },
    provider: 'cpu',
    pid: process.pid,
    hostname: 'here',
    started_at: now,
    sent_at: now,
  };
}

describe('submitting', () => {
  it('records the job, appends its queued event with its place and queues it', async () => {
    const { service } = fresh();
    const first = accepted(await service.submit(request, 10));
    const second = accepted(await service.submit(request, 10));
    expect(JobId.safeParse(first.id).success).toBe(true);
    expect([first.position, second.position]).toEqual([1, 2]);
    expect(await service.record(second.id)).toMatchObject({ id: second.id, status: 'queued', model: 'tiny', parameters, attempt: 0 });
    expect((await service.events(second.id)).map(({ name, data }) => ({ name, data }))).toEqual([{ name: 'queued', data: { position: 2 } }]);
    expect(await service.depth()).toEqual({ waiting: 2, active: 0 });
    expect(await service.snapshot(second.id)).toMatchObject({ queuePosition: 2, etaSeconds: null });
  });

  it('refuses a job once the queue holds the cap, with a Retry-After of the queue’s wait, and says when no worker is alive', async () => {
    const { keys, service } = fresh();
    accepted(await service.submit(request, 2));
    accepted(await service.submit(request, 2));
    expect(await service.submit(request, 2)).toEqual({ accepted: false, inQueue: 2, retryAfterSeconds: NO_WORKER_RETRY_AFTER_SECONDS, workersAlive: 0 });
    await sendHeartbeat(redis, keys, heartbeat('w1', 'ready'), 5);
    expect(await service.submit(request, 2)).toEqual({ accepted: false, inQueue: 2, retryAfterSeconds: 10, workersAlive: 1 });
    // The two jobs ahead, 8 units each, at 0.75 s a unit: 12 s, whatever the size of the job refused.
    await service.recordThroughput({ secondsPerImageStep: 0.75, concurrency: 1 });
    expect(await service.submit({ ...request, parameters: { ...parameters, num_images: 8 } }, 2)).toEqual({ accepted: false, inQueue: 2, retryAfterSeconds: 12, workersAlive: 1 });
    expect(await service.depth()).toEqual({ waiting: 2, active: 0 });
  });

  it('admits exactly the cap of many submissions at once, through several API processes', async () => {
    const keys = makeKeys(`pftest-${randomBytes(4).toString('hex')}`);
    // Two APIs on one Redis: connections of their own, one queue.
    const api = (name: string) => {
      const client = connectRedis(REDIS_URL, 'client', `job-service-test-${name}`);
      const bull = connectRedis(REDIS_URL, 'worker', `job-service-test-${name}-bull`);
      return { client, bull, ...fresh((k) => new JobQueue(bull, k, () => undefined, client), keys) };
    };
    const [one, two] = [api('api1'), api('api2')];
    try {
      for (let round = 0; round < 3; round++) {
        const submissions = await Promise.all(Array.from({ length: 60 }, (_, i) => (i % 2 === 0 ? one : two).service.submit(request, 10)));
        const admitted = submissions.filter((submission) => submission.accepted);
        expect(admitted).toHaveLength(10);
        expect(admitted.map((submission) => submission.position).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        for (const refused of submissions.filter((submission) => !submission.accepted)) expect(refused).toMatchObject({ inQueue: 10 });
        expect(await one.service.depth()).toEqual({ waiting: 10, active: 0 });
        for (const { id } of admitted) expect(await one.service.cancel(id)).toEqual({ outcome: 'canceled' });
        expect(await two.service.depth()).toEqual({ waiting: 0, active: 0 });
      }
    } finally {
      for (const api of [one, two]) {
        api.client.disconnect();
        api.bull.disconnect();
      }
    }
  });

  it('counts a job on its way in once, and lets the place of one whose submission died lapse', async () => {
    const { keys, queue, service } = fresh((k) => new JobQueue(bullConnection, k, () => undefined, redis, { reservationMs: 1000 }));
    // Admitted, its add not landed: it counts.
    expect(await queue.admit('j-on-its-way', 2)).toEqual({ admitted: true, waiting: 0, active: 0 });
    expect(await service.depth()).toEqual({ waiting: 1, active: 0 });
    // Its add landed but the place was not let go (Redis away that instant): it counts once, in BullMQ's list.
    await queue.queue.add('generate', { id: 'j-on-its-way' }, { jobId: 'j-on-its-way' });
    expect(await redis.zscore(keys.admissions, 'j-on-its-way')).not.toBeNull();
    expect(await service.depth()).toEqual({ waiting: 1, active: 0 });
    // A submission that died between its admission and its add (an API that crashed) holds its place a while ...
    expect(await queue.admit('j-crashed', 2)).toEqual({ admitted: true, waiting: 1, active: 0 });
    expect(await service.submit(request, 2)).toMatchObject({ accepted: false, inQueue: 2 });
    // ... and then no more: the queue admits again, and the lapsed places are gone.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect(await service.depth()).toEqual({ waiting: 1, active: 0 });
    accepted(await service.submit(request, 2));
    expect(await redis.zcard(keys.admissions)).toBe(0);
  });

  it('leaves no record behind when the job cannot be queued', async () => {
    class UnreachableQueue extends JobQueue {
      override async add(): Promise<void> {
        throw new Error('the queue is unreachable');
      }
    }
    const { keys, service } = fresh((k) => new UnreachableQueue(bullConnection, k, () => undefined, redis));
    await expect(service.submit(request, 10)).rejects.toThrow('the queue is unreachable');
    expect(await redis.keys(`${keys.prefix}:job:*`)).toEqual([]);
    // Nor a place under the cap.
    expect(await redis.zcard(keys.admissions)).toBe(0);
    expect(await service.depth()).toEqual({ waiting: 0, active: 0 });
  });
});

describe('a job snapshot', () => {
  it('estimates from the running work, the work ahead and the job’s own, at the recorded throughput', async () => {
    const { keys, records, service } = fresh();
    const [a, b, c] = [accepted(await service.submit(request, 10)), accepted(await service.submit(request, 10)), accepted(await service.submit(request, 10))];
    expect(await takeNext(keys)).toBe(a.id);
    await records.start(a.id, new Date());
    await records.reportProgress(a.id, { stage: 1, stages: 4, step: 4, steps_total: 8, fraction: 0.5 });
    expect(await service.throughput()).toBeNull();
    await service.recordThroughput({ secondsPerImageStep: 0.5, concurrency: 1 });
    expect(await service.throughput()).toEqual({ secondsPerImageStep: 0.5, concurrency: 1 });
    // One job at a time. a: 4 units left. b: a's 4 + its 8. c: a's 4 + b's 8 + its 8.
    expect(await service.snapshot(a.id)).toMatchObject({ record: { status: 'running' }, queuePosition: null, etaSeconds: 2 });
    expect(await service.snapshot(b.id)).toMatchObject({ queuePosition: 1, etaSeconds: 6 });
    expect(await service.snapshot(c.id)).toMatchObject({ queuePosition: 2, etaSeconds: 10 });
    // Two at once (a worker with MAX_CONCURRENT_JOBS=2): b takes the free slot beside a at once (4
    // rounds of 2 images, a's end); c takes a's slot beside b (4 rounds of 2, b's end), then 4 alone.
    await service.recordThroughput({ secondsPerImageStep: 0.5, concurrency: 2 });
    expect(await service.snapshot(a.id)).toMatchObject({ etaSeconds: (4 * 2) * 0.5 });
    expect(await service.snapshot(b.id)).toMatchObject({ queuePosition: 1, etaSeconds: (4 * 2 + 4 * 2) * 0.5 });
    expect(await service.snapshot(c.id)).toMatchObject({ queuePosition: 2, etaSeconds: (4 * 2 + 4 * 2 + 4) * 0.5 });
    expect(await service.cancel(c.id)).toEqual({ outcome: 'canceled' });
    expect(await service.snapshot(c.id)).toMatchObject({ record: { status: 'canceled' }, queuePosition: null, etaSeconds: null });
    expect(await service.snapshot('j000000000000000000000000')).toBeNull();
  });
});

describe('cancelling', () => {
  it('cancels a waiting job at once, tells the workers about a running one, and leaves a finished one alone', async () => {
    const { keys, records, service } = fresh();
    const running = accepted(await service.submit(request, 10));
    const waiting = accepted(await service.submit(request, 10));
    expect(await takeNext(keys)).toBe(running.id);
    await records.start(running.id, new Date());
    const heard: string[] = [];
    const listener = bullConnection.duplicate();
    await subscribeCancels(listener, keys, (id) => heard.push(id));
    try {
      expect(await service.cancel(waiting.id)).toEqual({ outcome: 'canceled' });
      expect((await service.events(waiting.id)).map((e) => e.name)).toEqual(['queued', 'canceled']);
      expect(await service.depth()).toEqual({ waiting: 0, active: 1 });
      expect(await service.cancel(running.id)).toEqual({ outcome: 'stopping' });
      await expect.poll(() => heard).toEqual([running.id]);
      expect((await service.record(running.id))?.cancelRequested).toBe(true);
      expect(await service.cancel(waiting.id)).toEqual({ outcome: 'finished', status: 'canceled' });
      expect(await service.cancel('j000000000000000000000000')).toEqual({ outcome: 'not-found' });
    } finally {
      listener.disconnect();
    }
  });
});

describe('health', () => {
  it('says the store is connected, answers a ping and lists live workers', async () => {
    const { keys, service } = fresh();
    await service.ping(1000);
    expect(service.connected()).toBe(true);
    expect(await service.liveWorkers()).toEqual([]);
    const ready = heartbeat('w1', 'ready');
    await sendHeartbeat(redis, keys, ready, 5);
    expect(await service.liveWorkers()).toEqual([ready]);
  });

  it('reads the heartbeats once for the callers that ask at the same time (a full queue’s refusals)', async () => {
    const { keys, service } = fresh();
    await sendHeartbeat(redis, keys, heartbeat('w1', 'ready'), 5);
    const scan = vi.spyOn(redis, 'scan');
    // Every read of the heartbeats starts a SCAN at cursor 0 (it takes as many calls as Redis has keys).
    const reads = () => scan.mock.calls.filter(([cursor]) => String(cursor) === '0').length;
    try {
      const answers = await Promise.all(Array.from({ length: 10 }, () => service.liveWorkers()));
      expect(answers.map((workers) => workers.map((worker) => worker.worker_id))).toEqual(answers.map(() => ['w1']));
      expect(reads()).toBe(1);
      // Once answered, the next caller reads afresh.
      await service.liveWorkers();
      expect(reads()).toBe(2);
    } finally {
      scan.mockRestore();
    }
  });

  it('says it is not connected, and a ping fails, while Redis is away', async () => {
    const away = connectRedis('redis://127.0.0.1:1', 'client', 'job-service-test-away');
    const keys = makeKeys(`pftest-${randomBytes(4).toString('hex')}`);
    const queue = new JobQueue(bullConnection, keys, () => undefined, away);
    opened.push({ keys, queue });
    const service = new RedisJobService({ redis: away, keys, queue, retentionSeconds: 60 });
    try {
      expect(service.connected()).toBe(false);
      await expect(service.ping(500)).rejects.toThrow();
    } finally {
      away.disconnect();
    }
  });
});
