import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys as makeKeys } from '@pixelflow/queue';
import type { Job } from '@pixelflow/schemas';
import { SENTINEL_PRIMARY_NAME, startSentinelSet, type SentinelSet } from '../../packages/queue/test/support/sentinel.ts';
import { TINY } from '../service/support.ts';
import { Cluster, type ApiProcess } from './cluster.ts';

// The API and a worker on Redis Sentinel (REDIS_SENTINELS, REDIS_SENTINEL_NAME): a primary, a
// replica and a sentinel of this test's own (Debian's redis-server and redis-sentinel on free
// ports). REDIS_URL points where no Redis listens, so every connection the services make must come
// through the sentinel. A job runs; the sentinel fails over (SENTINEL FAILOVER: the replica becomes
// the primary); the services hear of it from the sentinel (ioredis's failover detector) and move
// every connection to the new primary by themselves, and the next job runs there.
//
// What this also shows: the old primary stays writable until the sentinel turns it into a replica
// (seconds later), and a write that reaches it after the promotion is not replicated: a job
// submitted in the moment before the services move may be lost. The test waits for the move (it
// reads the servers' client lists), as docs/operators/scaling.md says an operator should expect.

let set: SentinelSet;
let cluster: Cluster;
let api: ApiProcess;

async function post(body: Record<string, unknown>): Promise<Response> {
  return fetch(`${api.url}/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

/** POSTs until accepted (a 503 while the services reconnect is retried), then polls the job until it has ended. */
async function runJob(seed: number, timeoutMs = 60_000): Promise<{ job: Job; refusals: number }> {
  const deadline = Date.now() + timeoutMs;
  let refusals = 0;
  let id: string | undefined;
  while (id === undefined) {
    const response = await post({ class: 1, seed, steps: 2 });
    if (response.status === 202) id = ((await response.json()) as { id: string }).id;
    else {
      expect(response.status, await response.text()).toBe(503);
      refusals += 1;
      if (Date.now() > deadline) throw new Error('POST /jobs still refused');
      await sleep(200);
    }
  }
  for (;;) {
    const response = await fetch(`${api.url}/jobs/${id}`);
    expect(response.status, `GET /jobs/${id}`).not.toBe(404);
    if (response.status === 200) {
      const job = (await response.json()) as Job;
      if (!['queued', 'running'].includes(job.status)) return { job, refusals };
    }
    if (Date.now() > deadline) throw new Error(`job ${id} did not end within ${timeoutMs} ms; ${await cluster.workers[0]?.tail()}`);
    await sleep(100);
  }
}

async function readyWithin(timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await fetch(`${api.url}/readyz`)).status === 200) return true;
    await sleep(200);
  }
  return false;
}

/** The names of the services' connections on the Redis at `port` (connectRedis names them; BullMQ's blocking one is named after the queue). */
async function connectionsOn(port: number): Promise<string[]> {
  const redis = new Redis(port, '127.0.0.1');
  try {
    const list = (await redis.call('CLIENT', 'LIST')) as string;
    return list.split('\n').flatMap((line) => /name=(\S+)/.exec(line)?.[1] ?? []).filter((name) => !name.startsWith('sentinel-'));
  } finally {
    redis.disconnect();
  }
}

async function statusOn(port: number, prefix: string, id: string): Promise<string | null> {
  const redis = new Redis(port, '127.0.0.1');
  try {
    return await redis.hget(makeKeys(prefix).job(id), 'status');
  } finally {
    redis.disconnect();
  }
}

beforeAll(async () => {
  set = await startSentinelSet();
  cluster = await Cluster.create({
    redisUrl: `redis://127.0.0.1:${set.redisPorts[0]}`,
    model: TINY,
    fromSource: true,
    env: {
      // Nothing listens there: the services must ask the sentinel.
      REDIS_URL: 'redis://127.0.0.1:1',
      REDIS_SENTINELS: set.sentinels,
      REDIS_SENTINEL_NAME: SENTINEL_PRIMARY_NAME,
      ORT_THREADS: '1',
      HEARTBEAT_INTERVAL_MS: '500',
      WORKER_STALE_MS: '3000',
    },
  });
  api = await cluster.startApi();
  await cluster.startWorker();
}, 120_000);

afterAll(async () => {
  await cluster?.stop({ graceMs: 10_000, keepKeys: true });
  await set?.stop();
}, 60_000);

describe('Redis Sentinel', () => {
  it('carries the services to the new primary after a failover', async () => {
    expect(await readyWithin(15_000)).toBe(true);
    const before = await runJob(1);
    expect(before.job.status).toBe('succeeded');
    expect(await statusOn(set.redisPorts[0], cluster.prefix, before.job.id)).toBe('succeeded');

    const connections = (await connectionsOn(set.redisPorts[0])).sort();
    expect(connections).toEqual(expect.arrayContaining(['pixelflow-api', 'pixelflow-api-events', 'pixelflow-api-queue', 'pixelflow-worker-worker-1', 'pixelflow-worker-worker-1-cancel']));
    const failedOverAt = Date.now();
    const newPrimary = await set.failover();
    expect(newPrimary).toBe(set.redisPorts[1]);
    // Every connection moves to the new primary, none stays on the old one.
    const deadline = Date.now() + 20_000;
    while ((await connectionsOn(newPrimary)).sort().join() !== connections.join() || (await connectionsOn(set.redisPorts[0])).length > 0) {
      if (Date.now() > deadline) throw new Error(`connections still on the old primary: ${(await connectionsOn(set.redisPorts[0])).join(', ')}`);
      await sleep(100);
    }
    const movedSeconds = (Date.now() - failedOverAt) / 1000;

    const after = await runJob(2);
    const seconds = (Date.now() - failedOverAt) / 1000;
    expect(after.job.status).toBe('succeeded');
    // Written on the new primary (and replicated back to the old one, now its replica).
    expect(await statusOn(newPrimary, cluster.prefix, after.job.id)).toBe('succeeded');
    expect(await readyWithin(15_000)).toBe(true);
    // The job from before the failover is still there: the replica had it.
    expect((await (await fetch(`${api.url}/jobs/${before.job.id}`)).json()) as Job).toMatchObject({ status: 'succeeded' });
    console.log(
      `sentinel: failover to port ${newPrimary}; every connection on it ${movedSeconds.toFixed(1)} s after SENTINEL FAILOVER; the next job succeeded ${seconds.toFixed(1)} s after it, after ${after.refusals} refused POSTs`,
    );
  });
});
