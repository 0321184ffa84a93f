import { Redis } from 'ioredis';
import { ApiKeys, keys as makeKeys } from '@pixelflow/queue';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../services/api/src/app.ts';
import { loadApiConfig } from '../../services/api/src/config.ts';
import { Cluster } from '../cluster/cluster.ts';
import { REDIS_URL, startService, TINY, type TestService } from './support.ts';

// Idempotency-Key on POST /jobs against real Redis and real HTTP: replays, a reused key, 50
// concurrent requests, two API processes racing one key, scopes, malformed keys and refusals.
// No worker runs: jobs stay queued, so the queue's content is exactly what the requests created.

let service: TestService;

beforeAll(async () => {
  service = await startService({ worker: false, env: { QUEUE_CAP: '60' } });
});
afterAll(async () => {
  await service?.stop();
});

const BODY = { class: 3, num_images: 1, steps: [2, 2, 2, 2] };

function post(base: string, key: string | undefined, body: unknown, raw?: string): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (key !== undefined) headers['idempotency-key'] = key;
  return fetch(`${base}/jobs`, { method: 'POST', headers, body: raw ?? JSON.stringify(body), signal: AbortSignal.timeout(30_000) });
}

/** The ids of every job record under `prefix` (each created job has one). */
async function jobIds(redis: Redis, prefix: string): Promise<string[]> {
  const found = await redis.keys(`${prefix}:job:*`);
  return found.filter((key) => !key.endsWith(':events')).map((key) => key.slice(`${prefix}:job:`.length));
}

async function answer(response: Response): Promise<{ status: number; body: string; location: string | null; replayed: string | null; type: string | null }> {
  return { status: response.status, body: await response.text(), location: response.headers.get('location'), replayed: response.headers.get('idempotent-replayed'), type: response.headers.get('content-type') };
}

describe('POST /jobs with an Idempotency-Key', () => {
  it('replays the first answer (status, body, Location) to the same body, spelled any way, and creates one job', async () => {
    const before = (await jobIds(service.redis, service.prefix)).length;
    const first = await answer(await post(service.url, 'replay-1', BODY));
    expect(first.status).toBe(202);
    expect(first.replayed).toBeNull();
    // The same JSON with other key order and spacing, and the key as a Structured Field string.
    const raw = '{ "steps": [2,2,2,2],\n "num_images": 1, "class": 3 }';
    for (const again of [await post(service.url, 'replay-1', BODY), await post(service.url, '"replay-1"', undefined, raw)]) {
      const replayed = await answer(again);
      expect(replayed).toEqual({ ...first, replayed: 'true' });
    }
    expect((await jobIds(service.redis, service.prefix)).length).toBe(before + 1);
    const id = (JSON.parse(first.body) as { id: string }).id;
    expect(first.location).toBe(`/jobs/${id}`);
  });

  it('answers 422 to the same key with another body, and creates nothing', async () => {
    expect((await post(service.url, 'reused-1', BODY)).status).toBe(202);
    const before = (await jobIds(service.redis, service.prefix)).length;
    const response = await post(service.url, 'reused-1', { ...BODY, class: 4 });
    expect(response.status).toBe(422);
    expect(response.headers.get('content-type')).toContain('application/problem+json');
    expect(await response.json()).toMatchObject({ type: '/problems/idempotency-key-reused', status: 422 });
    expect((await jobIds(service.redis, service.prefix)).length).toBe(before);
  });

  it('refuses a malformed key with a 400 problem', async () => {
    for (const key of ['x'.repeat(256), 'a\tb']) {
      const response = await post(service.url, key, BODY);
      expect(response.status, JSON.stringify(key)).toBe(400);
      expect(await response.json()).toMatchObject({ type: '/problems/validation' });
    }
    // 255 characters is still a key.
    expect((await post(service.url, 'y'.repeat(255), BODY)).status).toBe(202);
  });

  it('creates exactly one job for 50 concurrent requests with one key, and answers all of them alike', async () => {
    const before = await jobIds(service.redis, service.prefix);
    const answers = await Promise.all(Array.from({ length: 50 }, () => post(service.url, 'race-50', BODY).then(answer)));
    const after = await jobIds(service.redis, service.prefix);
    expect(after.length).toBe(before.length + 1);
    const created = answers.filter((a) => a.status === 202 && a.replayed === null);
    expect(created).toHaveLength(1);
    // The others waited for the creator and got its answer (or, on a very slow machine, a 409 to retry).
    for (const other of answers.filter((a) => a !== created[0])) {
      if (other.status === 409) expect(JSON.parse(other.body)).toMatchObject({ type: '/problems/idempotency-in-progress' });
      else expect(other).toEqual({ ...created[0], replayed: 'true' });
    }
    expect(after.filter((id) => !before.includes(id))).toEqual([(JSON.parse(created[0]!.body) as { id: string }).id]);
  });

  it('does not remember a refusal: a 400 or a full queue leaves the key free for the request that works', async () => {
    expect((await post(service.url, 'refused-1', { ...BODY, class: -1 })).status).toBe(400);
    const full = await startService({ worker: false, env: { QUEUE_CAP: '1' } });
    try {
      const filler = await post(full.url, undefined, BODY);
      expect(filler.status).toBe(202);
      const refused = await post(full.url, 'refused-2', BODY);
      expect(refused.status).toBe(503);
      expect(await refused.json()).toMatchObject({ type: '/problems/queue-full' });
      // Room again: the same key now creates its job, not a replay of the 503.
      const { id } = (await filler.json()) as { id: string };
      expect((await fetch(`${full.url}/jobs/${id}`, { method: 'DELETE' })).status).toBe(200);
      const created = await post(full.url, 'refused-2', BODY);
      expect(created.status).toBe(202);
      expect(created.headers.get('idempotent-replayed')).toBeNull();
    } finally {
      await full.stop();
    }
    const created = await post(service.url, 'refused-1', BODY);
    expect(created.status).toBe(202);
    expect(created.headers.get('idempotent-replayed')).toBeNull();
  });

  it('replays the stored answer after the job itself has been deleted', async () => {
    const first = await answer(await post(service.url, 'gone-1', BODY));
    const { id } = JSON.parse(first.body) as { id: string };
    await service.redis.del(`${service.prefix}:job:${id}`, `${service.prefix}:job:${id}:events`);
    expect((await fetch(`${service.url}/jobs/${id}`)).status).toBe(404);
    expect(await answer(await post(service.url, 'gone-1', BODY))).toEqual({ ...first, replayed: 'true' });
  });
});

describe('Idempotency-Key scopes', () => {
  let app: FastifyInstance;
  let prefix: string;

  beforeAll(async () => {
    prefix = `${service.prefix}-scopes`;
    app = await buildApp(loadApiConfig({ ...service.env, REDIS_PREFIX: prefix, QUEUE_CAP: '10' }), { logger: false });
    // Stands in for the AUTH=on hook: the principal a test header names.
    app.addHook('onRequest', async (request) => {
      const name = request.headers['x-test-key-name'];
      request.principal = typeof name === 'string' ? { keyName: name, admin: false } : null;
    });
    await app.ready();
  });
  afterAll(async () => {
    await app?.close();
    const stale = await service.redis.keys(`${prefix}:*`);
    if (stale.length > 0) await service.redis.del(...stale);
  });

  it('keeps one key of two API keys (and of AUTH=off) apart: each creates its own job', async () => {
    const send = (scope: string | undefined, body: unknown) =>
      app.inject({ method: 'POST', url: '/jobs', headers: { 'content-type': 'application/json', 'idempotency-key': 'shared', ...(scope === undefined ? {} : { 'x-test-key-name': scope }) }, payload: JSON.stringify(body) });
    const alice = await send('alice', BODY);
    const bob = await send('bob', { ...BODY, class: 5 });
    const anonymous = await send(undefined, { ...BODY, class: 6 });
    expect([alice.statusCode, bob.statusCode, anonymous.statusCode]).toEqual([202, 202, 202]);
    const ids = [alice, bob, anonymous].map((r) => (r.json() as { id: string }).id);
    expect(new Set(ids).size).toBe(3);
    // Each scope replays its own.
    const again = await send('bob', { ...BODY, class: 5 });
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect((again.json() as { id: string }).id).toBe(ids[1]);
  });
});

describe('Idempotency-Key scopes with AUTH=on', () => {
  it('gives each API key its own keys: the same Idempotency-Key and body from two API keys make two jobs', async () => {
    const authed = await startService({ worker: false, env: { AUTH: 'on', QUEUE_CAP: '10' } });
    try {
      const store = new ApiKeys(authed.redis, makeKeys(authed.prefix));
      const tokens = await Promise.all(['alice', 'bob'].map(async (name) => (await store.create({ name, admin: false, ratePerMinute: null, maxActive: null })).key));
      const send = (token: string) =>
        fetch(`${authed.url}/jobs`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'idempotency-key': 'same' }, body: JSON.stringify(BODY) }).then(answer);
      const [alice, bob] = [await send(tokens[0]!), await send(tokens[1]!)];
      expect([alice.status, bob.status, alice.replayed, bob.replayed]).toEqual([202, 202, null, null]);
      expect(alice.location).not.toBe(bob.location);
      expect(await send(tokens[1]!)).toEqual({ ...bob, replayed: 'true' });
      expect(await jobIds(authed.redis, authed.prefix)).toHaveLength(2);
    } finally {
      await authed.stop();
    }
  });
});

describe('two API processes racing one key', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await Cluster.create({ redisUrl: REDIS_URL, model: TINY, fromSource: true, logLevel: 'warn', env: { QUEUE_CAP: '100' } });
    await Promise.all([cluster.startApi(), cluster.startApi()]);
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it('creates one job, whichever process each request reaches', async () => {
    const [one, two] = cluster.apis;
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => post((i % 2 === 0 ? one : two)!.url, 'two-processes', BODY).then(answer)));
    const redis = cluster.redis();
    try {
      const ids = await jobIds(redis, cluster.prefix);
      expect(ids).toHaveLength(1);
      const accepted = answers.filter((a) => a.status === 202);
      expect(accepted.length).toBeGreaterThan(0);
      for (const a of accepted) expect(JSON.parse(a.body)).toMatchObject({ id: ids[0] });
      for (const a of answers.filter((x) => x.status !== 202)) expect(a.status).toBe(409);
    } finally {
      redis.disconnect();
    }
  });
});
