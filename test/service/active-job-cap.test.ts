import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { ApiKeys, JobRecords, keys as makeKeys } from '@pixelflow/queue';
import { stallPastTheLimit } from '../../services/worker/test/support/worker-harness.ts';
import { type ApiProcess, REDIS_URL, startApiProcess, startService, stopApiProcesses, type TestService } from './support.ts';

// An API key's max_active (jobs queued or running at once) on real Redis and HTTP: exact whatever
// the concurrency and however many API processes share the Redis, and a place frees when a job ends
// in any way (succeeds, fails, is canceled queued or running), so the cap is reached again, not sooner.

const SMALL_JOB = { class: 1, num_images: 1, steps: 2 };
const LONG_JOB = { class: 6, num_images: 8, steps: 100 };

function post(url: string, key: string, body: unknown = SMALL_JOB): Promise<Response> {
  return fetch(`${url}/jobs`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

/** Polls the job with `key` until its status is one of `statuses` (generous deadlines: CI's 2 cores are slow). */
async function waitForStatus(url: string, key: string, id: string, statuses: string[], timeoutMs = 30_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = (await (await fetch(`${url}/jobs/${id}`, { headers: { authorization: `Bearer ${key}` } })).json()) as Record<string, unknown>;
    if (statuses.includes(job['status'] as string)) return job;
    if (Date.now() > deadline) throw new Error(`job ${id} is still ${String(job['status'])} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Checks a refusal is the too-many-active-jobs problem with a whole number of seconds in Retry-After. */
async function overCap(response: Response): Promise<void> {
  expect(response.status).toBe(429);
  expect(response.headers.get('content-type')).toContain('application/problem+json');
  expect(response.headers.get('retry-after') ?? '').toMatch(/^[1-9][0-9]*$/);
  expect(await response.json()).toMatchObject({ type: '/problems/too-many-active-jobs', status: 429 });
}

async function idsOf(responses: Response[]): Promise<string[]> {
  return Promise.all(responses.filter((r) => r.status === 202).map(async (r) => ((await r.json()) as { id: string }).id));
}

describe('max_active across two API processes', () => {
  const prefix = `pftest-${randomBytes(4).toString('hex')}`;
  const apis: ApiProcess[] = [];
  let redis: Redis;

  const startApi = (): Promise<ApiProcess> => startApiProcess({ REDIS_URL, REDIS_PREFIX: prefix, AUTH: 'on', RESULTS_DIR: join(tmpdir(), `${prefix}-results`) });

  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    apis.push(...(await Promise.all([startApi(), startApi()])));
  }, 60_000);
  afterAll(async () => {
    await stopApiProcesses(apis);
    const stale = await redis.keys(`${prefix}:*`);
    if (stale.length > 0) await redis.del(...stale);
    redis.disconnect();
  });

  it('50 simultaneous POSTs split over both replicas: exactly max_active accepted, the rest 429; another key is counted apart; a cancel frees exactly one place', { timeout: 60_000 }, async () => {
    const apiKeys = new ApiKeys(redis, makeKeys(prefix));
    const capped = (await apiKeys.create({ name: 'five', admin: false, ratePerMinute: null, maxActive: 5 })).key;
    const other = (await apiKeys.create({ name: 'three', admin: false, ratePerMinute: null, maxActive: 3 })).key;
    for (let round = 1; round <= 2; round++) {
      const responses = await Promise.all(Array.from({ length: 50 }, (_, i) => post((apis[i % 2] as { url: string }).url, i % 5 === 4 ? other : capped)));
      const mine = responses.filter((_, i) => i % 5 !== 4);
      const theirs = responses.filter((_, i) => i % 5 === 4);
      expect(mine.filter((r) => r.status === 202), `round ${round}`).toHaveLength(5);
      expect(theirs.filter((r) => r.status === 202), `round ${round}`).toHaveLength(3);
      for (const response of [...mine, ...theirs].filter((r) => r.status !== 202)) await overCap(response);
      const ids = [...(await idsOf(mine)), ...(await idsOf(theirs))];
      // Both keys are at their cap: each of them may add nothing more.
      await overCap(await post((apis[0] as { url: string }).url, capped));
      await overCap(await post((apis[1] as { url: string }).url, other));
      // One canceled while queued: one place, exactly, for 10 simultaneous tries.
      const cancel = await fetch(`${(apis[1] as { url: string }).url}/jobs/${ids[0] as string}`, { method: 'DELETE', headers: { authorization: `Bearer ${capped}` } });
      expect(cancel.status).toBe(200);
      const retries = await Promise.all(Array.from({ length: 10 }, (_, i) => post((apis[i % 2] as { url: string }).url, capped)));
      expect(retries.filter((r) => r.status === 202)).toHaveLength(1);
      ids.push(...(await idsOf(retries)));
      // Empty both keys' queues for the next round (DELETE of a queued job ends it at once).
      const admin = (await apiKeys.create({ name: `admin-${round}`, admin: true, ratePerMinute: null, maxActive: null })).key;
      const canceled = await Promise.all(ids.slice(1).map((id) => fetch(`${(apis[0] as { url: string }).url}/jobs/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${admin}` } })));
      expect(canceled.map((r) => r.status)).toEqual(ids.slice(1).map(() => 200));
    }
  });
});

describe('max_active as jobs end', () => {
  let service: TestService | undefined;
  afterEach(async () => {
    await service?.stop();
    service = undefined;
  });

  it('frees the place of a job that succeeds, fails (stalled past the limit) or is canceled while running; the global QUEUE_CAP stays a 503', { timeout: 120_000 }, async () => {
    const s = (service = await startService({ worker: false, env: { AUTH: 'on', QUEUE_CAP: '4' } }));
    const apiKeys = new ApiKeys(s.redis, makeKeys(s.prefix));
    const key = (await apiKeys.create({ name: 'two', admin: false, ratePerMinute: null, maxActive: 2 })).key;

    // Failed: a job that workers take and die on, until BullMQ fails it.
    const toFail = ((await (await post(s.url, key)).json()) as { id: string }).id;
    const records = new JobRecords(s.redis, makeKeys(s.prefix));
    await stallPastTheLimit(s.prefix, toFail, () => records.start(toFail, new Date()));
    const long = ((await (await post(s.url, key, LONG_JOB)).json()) as { id: string }).id;
    await overCap(await post(s.url, key));

    await s.startWorker();
    expect((await waitForStatus(s.url, key, toFail, ['failed', 'succeeded'], 60_000))['status']).toBe('failed');
    // The failed job's place is free, the long one's is not: one more, not two.
    const afterFail = await Promise.all([post(s.url, key), post(s.url, key), post(s.url, key)]);
    expect(afterFail.filter((r) => r.status === 202)).toHaveLength(1);
    const small = await idsOf(afterFail);

    // Canceled while running: its place frees once it has stopped.
    await waitForStatus(s.url, key, long, ['running'], 60_000);
    const stop = await fetch(`${s.url}/jobs/${long}`, { method: 'DELETE', headers: { authorization: `Bearer ${key}` } });
    expect(stop.status).toBe(202);
    await waitForStatus(s.url, key, long, ['canceled'], 30_000);
    const afterCancel = await Promise.all([post(s.url, key), post(s.url, key), post(s.url, key)]);
    expect(afterCancel.filter((r) => r.status === 202)).toHaveLength(1);
    small.push(...(await idsOf(afterCancel)));

    // Succeeded: both small jobs end, and exactly two places are there again.
    for (const id of small) expect((await waitForStatus(s.url, key, id, ['succeeded', 'failed'], 60_000))['status']).toBe('succeeded');
    await s.worker?.stop();
    s.worker = null;
    const afterSuccess = await Promise.all([post(s.url, key), post(s.url, key), post(s.url, key), post(s.url, key)]);
    expect(afterSuccess.filter((r) => r.status === 202)).toHaveLength(2);
    for (const response of afterSuccess.filter((r) => r.status !== 202)) await overCap(response);

    // The queue's own cap (4) refuses a key under its max_active with the queue-full 503.
    const roomy = (await apiKeys.create({ name: 'roomy', admin: false, ratePerMinute: null, maxActive: 10 })).key;
    const queueFull = await Promise.all(Array.from({ length: 6 }, () => post(s.url, roomy)));
    expect(queueFull.filter((r) => r.status === 202)).toHaveLength(2);
    for (const response of queueFull.filter((r) => r.status !== 202)) {
      expect(response.status).toBe(503);
      expect(await response.json()).toMatchObject({ type: '/problems/queue-full' });
    }
  });
});
