import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.ts';
import { loadApiConfig, type ApiConfig } from '../src/config.ts';
import { connectInfrastructure, type ConnectedInfrastructure } from '../src/connect-infrastructure.ts';
import { TINY_MODEL_DIR } from './support/fake-infrastructure.ts';

// The app on its real infrastructure: the real Redis on 127.0.0.1:6379 (REDIS_URL overrides) under
// a key prefix of this file's own, deleted afterwards, and a temporary results folder. No worker.

const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';

let config: ApiConfig;
let redis: Redis;
let results: string;

beforeAll(async () => {
  results = await mkdtemp(join(tmpdir(), 'pixelflow-api-test-'));
  const prefix = `pftest-${randomBytes(4).toString('hex')}`;
  config = loadApiConfig({ REDIS_URL, REDIS_PREFIX: prefix, MODEL_DIR: TINY_MODEL_DIR, RESULTS_DIR: results, LOG_LEVEL: 'silent' });
  redis = new Redis(REDIS_URL);
});

afterAll(async () => {
  const stale = await redis.keys(`${config.REDIS_PREFIX}:*`);
  if (stale.length > 0) await redis.del(...stale);
  redis.disconnect();
  await rm(results, { recursive: true, force: true });
});

describe('the app on Redis', () => {
  let app: FastifyInstance;
  let infrastructure: ConnectedInfrastructure;

  beforeAll(async () => {
    infrastructure = await connectInfrastructure(config);
    app = await buildApp(config, { infrastructure, logger: false });
  });

  afterAll(async () => {
    await app.close();
    await infrastructure.close();
  });

  it('queues a POSTed job in Redis and shows it on GET, then cancels it', async () => {
    const posted = await app.inject({ method: 'POST', url: '/jobs', payload: { class: 2, num_images: 1, steps: 1 } });
    expect(posted.statusCode).toBe(202);
    const { id } = posted.json<{ id: string }>();
    expect(posted.headers['location']).toBe(`/jobs/${id}`);
    expect(await redis.hget(`${config.REDIS_PREFIX}:job:${id}`, 'status')).toBe('queued');

    const shown = await app.inject({ method: 'GET', url: `/jobs/${id}` });
    expect(shown.statusCode).toBe(200);
    expect(shown.json()).toMatchObject({ id, status: 'queued', queue_position: 1, model: 'tiny-random', parameters: { class_label: 2, steps: [1, 1, 1, 1] } });

    expect((await app.inject({ method: 'DELETE', url: `/jobs/${id}` })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: `/jobs/${id}` })).json()).toMatchObject({ status: 'canceled' });
    expect(await app.jobs.depth()).toEqual({ waiting: 0, active: 0 });
  });

  it('counts the queue for Prometheus from Redis', async () => {
    await app.inject({ method: 'POST', url: '/jobs', payload: { class: 1, steps: 1 } });
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toContain('pixelflow_queue_jobs{state="waiting"} 1');
  });
});

describe('buildApp without infrastructure', () => {
  it('connects to Redis itself and closes its connections with the app', async () => {
    const app = await buildApp(config, { logger: false });
    expect(app.jobs.connected()).toBe(true);
    expect((await app.inject({ method: 'GET', url: '/jobs/j000000000000000000000abc' })).statusCode).toBe(404);
    await app.close();
    expect(app.jobs.connected()).toBe(false);
  });
});
