import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { ApiKeys, keys as makeKeys } from '@pixelflow/queue';
import { startPrivateRedis } from '../../packages/queue/test/support/redis-server.ts';
import { type ApiProcess, REDIS_URL, startApiProcess, startService, stopApiProcesses } from './support.ts';

// Request rates on real Redis and HTTP: a key's rate_per_minute holds exactly across two API
// processes under 50 simultaneous requests, answers say where they stand in the IETF draft's
// RateLimit-* headers, a refusal is a 429 rate-limited problem with Retry-After, and the probes,
// metrics and docs are never limited. One-minute windows: each test's burst takes well under a
// second, far inside the window its first request opens, so the counts are exact.

function get(url: string, key?: string): Promise<Response> {
  return fetch(url, key === undefined ? {} : { headers: { authorization: `Bearer ${key}` } });
}

/** Checks a refusal is the rate-limited problem, with Retry-After and the RateLimit headers. */
async function rateLimited(response: Response, limit: number): Promise<void> {
  expect(response.status).toBe(429);
  expect(response.headers.get('content-type')).toContain('application/problem+json');
  const retryAfter = Number(response.headers.get('retry-after'));
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(60);
  expect(response.headers.get('ratelimit-limit')).toBe(String(limit));
  expect(response.headers.get('ratelimit-remaining')).toBe('0');
  expect(response.headers.get('ratelimit-reset')).toBe(String(retryAfter));
  expect(await response.json()).toMatchObject({ type: '/problems/rate-limited', status: 429 });
}

describe('rate_per_minute across two API processes', () => {
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

  const url = (i: number): string => (apis[i % 2] as { url: string }).url;

  it('50 simultaneous requests: exactly rate_per_minute answered, the rest 429 rate-limited; another key and a key without a rate are apart', { timeout: 60_000 }, async () => {
    const apiKeys = new ApiKeys(redis, makeKeys(prefix));
    const twenty = (await apiKeys.create({ name: 'twenty', admin: false, ratePerMinute: 20, maxActive: null })).key;
    const seven = (await apiKeys.create({ name: 'seven', admin: false, ratePerMinute: 7, maxActive: null })).key;
    const unlimited = (await apiKeys.create({ name: 'unlimited', admin: false, ratePerMinute: null, maxActive: null })).key;
    const responses = await Promise.all(Array.from({ length: 50 }, (_, i) => get(`${url(i)}/models`, twenty)));
    const answered = responses.filter((r) => r.status === 200);
    expect(answered).toHaveLength(20);
    // Each answer says how many remain: together, 19 down to 0, once each.
    expect(answered.map((r) => Number(r.headers.get('ratelimit-remaining'))).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    for (const r of answered) expect(r.headers.get('ratelimit-limit')).toBe('20');
    for (const r of responses.filter((r) => r.status !== 200)) await rateLimited(r, 20);
    // POST /jobs counts against the same rate.
    await rateLimited(await fetch(`${url(1)}/jobs`, { method: 'POST', headers: { authorization: `Bearer ${twenty}`, 'content-type': 'application/json' }, body: '{"class":1}' }), 20);

    const others = await Promise.all(Array.from({ length: 50 }, (_, i) => get(`${url(i)}/models/classes`, i % 2 === 0 ? seven : unlimited)));
    expect(others.filter((r, i) => i % 2 === 0 && r.status === 200)).toHaveLength(7);
    expect(others.filter((r, i) => i % 2 === 1 && r.status === 200)).toHaveLength(25);
    for (const r of others.filter((r, i) => i % 2 === 1)) expect(r.headers.get('ratelimit-limit')).toBeNull();
  });

  it('never limits the probes, metrics and docs', { timeout: 60_000 }, async () => {
    const paths = ['/healthz', '/metrics', '/openapi.json'];
    const responses = await Promise.all(Array.from({ length: 60 }, (_, i) => get(`${url(i)}${paths[i % 3] as string}`)));
    expect(responses.map((r) => r.status)).toEqual(responses.map(() => 200));
    for (const r of responses) expect(r.headers.get('ratelimit-limit')).toBeNull();
  });
});

describe('RATE_LIMIT_PER_MINUTE with AUTH=off', () => {
  it('limits each client address to it', { timeout: 60_000 }, async () => {
    const s = await startService({ worker: false, env: { RATE_LIMIT_PER_MINUTE: '5' } });
    try {
      const responses = await Promise.all(Array.from({ length: 20 }, () => get(`${s.url}/models`)));
      expect(responses.filter((r) => r.status === 200)).toHaveLength(5);
      for (const r of responses.filter((r) => r.status !== 200)) await rateLimited(r, 5);
      expect((await get(`${s.url}/healthz`)).status).toBe(200);
    } finally {
      await s.stop();
    }
  });
});

describe('with Redis gone', () => {
  it('lets requests through to their routes, which answer their own 503: never a 500 or a 429', { timeout: 60_000 }, async () => {
    const redis = await startPrivateRedis();
    const s = await startService({ worker: false, env: { REDIS_URL: redis.url, RATE_LIMIT_PER_MINUTE: '3' } });
    try {
      const counted = await Promise.all(Array.from({ length: 4 }, () => get(`${s.url}/models`)));
      expect(counted.map((r) => r.status).sort()).toEqual([200, 200, 200, 429]);
      await redis.kill();
      // Each request goes on to its route, which answers its 503 (Redis is needed): none waits on a count, none is a 500 or a 429.
      await expect.poll(async () => (await get(`${s.url}/jobs/j${'0'.repeat(24)}`)).status, { timeout: 15_000, interval: 100 }).toBe(503);
      const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => get(`${s.url}${i % 2 === 0 ? '/models' : `/jobs/j${'0'.repeat(24)}`}`, undefined)));
      expect(answers.map((r) => r.status)).toEqual(answers.map(() => 503));
      for (const r of answers) expect(r.headers.get('retry-after')).not.toBeNull();
    } finally {
      await s.stop();
    }
  });
});
