import type { FastifyInstance } from 'fastify';
import { loadModelDir } from '@pixelflow/formats';
import type { WorkerHeartbeat } from '@pixelflow/queue';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.ts';
import { loadApiConfig } from '../src/config.ts';
import { fakeInfrastructure, TINY_MODEL_DIR, type FakeInfrastructure } from './support/fake-infrastructure.ts';

// /models and /readyz while the job store is away, over in-memory infrastructure (the real Redis
// killed and frozen: test/service/redis-outage.test.ts): they answer 503 without asking it, and
// what went wrong is said in the API's words, with the store's own error kept for the log.

/** What ioredis says when a fail-fast connection gives up on a command. */
const IOREDIS_TEXT = 'Reached the max retries per request limit (which is 0). Refer to "maxRetriesPerRequest" option for details.';

let app: FastifyInstance;
let infrastructure: FakeInfrastructure;
let logLines: { level: number; msg: string; err?: { message: string } }[];

async function start(): Promise<void> {
  infrastructure = fakeInfrastructure();
  logLines = [];
  const stream = { write: (line: string) => void logLines.push(JSON.parse(line) as (typeof logLines)[number]) };
  app = await buildApp(loadApiConfig({ MODEL_DIR: TINY_MODEL_DIR, LOG_LEVEL: 'info' }), { infrastructure, logger: { level: 'info', stream } });
  const { manifest } = await loadModelDir(TINY_MODEL_DIR);
  const now = new Date().toISOString();
  const ready: WorkerHeartbeat = {
    worker_id: 'w1',
    state: 'ready',
    model: { name: manifest.name, resolution: manifest.resolution, stages: manifest.stages.map((s) => s.resolution), classes: manifest.classes.names.length, weights_sha256: manifest.source.weights_sha256 },
    provider: 'cpu',
    pid: 1,
    hostname: 'test',
    started_at: now,
    sent_at: now,
  };
  infrastructure.jobs.workers = [ready];
}

afterEach(async () => {
  await app.close();
});

/** Counts the job store's round trips that /models and /readyz make. */
function countAsks(): { asks: number } {
  const counter = { asks: 0 };
  const jobs = infrastructure.jobs;
  const ping = jobs.ping.bind(jobs);
  const liveWorkers = jobs.liveWorkers.bind(jobs);
  jobs.ping = async () => {
    counter.asks += 1;
    return ping();
  };
  jobs.liveWorkers = async () => {
    counter.asks += 1;
    return liveWorkers();
  };
  return counter;
}

describe('while the job store’s connection is down', () => {
  it('answers /models and /readyz 503 with Retry-After without asking it, as the job routes do', async () => {
    await start();
    const counter = countAsks();
    expect((await app.inject({ method: 'GET', url: '/models' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    const asked = counter.asks;
    expect(asked).toBeGreaterThan(0);
    infrastructure.jobs.reachable = false;
    const job = await app.inject({ method: 'GET', url: `/jobs/j${'0'.repeat(24)}` });
    for (const url of ['/models', '/readyz']) {
      const response = await app.inject({ method: 'GET', url });
      expect(response.statusCode, url).toBe(503);
      expect(response.headers['content-type'], url).toContain('application/problem+json');
      expect(response.headers['retry-after'], url).toBe(job.headers['retry-after']);
      expect(response.json<{ type: string; detail: string }>(), url).toMatchObject({ type: '/problems/service-unavailable', detail: job.json<{ detail: string }>().detail, instance: url });
    }
    expect(counter.asks).toBe(asked);
  });
});

describe('GET /readyz when the job store does not answer its PING', () => {
  it('says so in the API’s words and keeps the store’s own error for the log', async () => {
    await start();
    infrastructure.jobs.ping = async () => {
      throw new Error(IOREDIS_TEXT);
    };
    const response = await app.inject({ method: 'GET', url: '/readyz' });
    expect(response.statusCode).toBe(503);
    expect(response.headers['retry-after']).toBeDefined();
    const { detail } = response.json<{ detail: string }>();
    expect(detail).toContain('the job store (Redis) is unreachable');
    expect(detail).not.toContain('max retries');
    expect(logLines.filter((line) => line.err?.message === IOREDIS_TEXT)).toHaveLength(1);
  });
});
