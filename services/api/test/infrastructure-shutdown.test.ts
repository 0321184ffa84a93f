import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startPrivateRedis, type PrivateRedis } from '../../../packages/queue/test/support/redis-server.ts';
import { buildApp } from '../src/app.ts';
import { loadApiConfig, type ApiConfig } from '../src/config.ts';
import { connectInfrastructure, QUIT_REDIS_MS } from '../src/connect-infrastructure.ts';
import { TINY_MODEL_DIR } from './support/fake-infrastructure.ts';

// Shutting the API down while Redis does not answer: a redis-server of this test's own, frozen
// (SIGSTOP: its sockets stay open and nothing comes back, as from a hung or cut-off Redis) or
// killed. Closing must end within its bound and leave no connection behind either way.

let server: PrivateRedis;
let results: string;
let config: ApiConfig;

beforeEach(async () => {
  server = await startPrivateRedis();
  results = await mkdtemp(join(tmpdir(), 'pixelflow-api-shutdown-'));
  config = loadApiConfig({ REDIS_URL: server.url, REDIS_PREFIX: 'pftest-shutdown', MODEL_DIR: TINY_MODEL_DIR, RESULTS_DIR: results, LOG_LEVEL: 'silent' });
});

afterEach(async () => {
  await server.kill();
  await rm(results, { recursive: true, force: true });
});

/** Ms `work` took; fails instead of waiting past `limitMs` (a hang would otherwise be the test timeout). */
async function timed(work: () => Promise<unknown>, limitMs: number): Promise<number> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`still waiting after ${limitMs} ms`)), limitMs)));
  try {
    await Promise.race([work(), hung]);
  } finally {
    clearTimeout(timer);
  }
  return performance.now() - started;
}

/** The API's connections the server still holds (by their client names). */
async function apiClients(): Promise<string[]> {
  const admin = new Redis(server.url);
  try {
    const list = (await admin.client('LIST')) as string;
    return list.split('\n').flatMap((line) => /\bname=(pixelflow-api\S*)/.exec(line)?.[1] ?? []);
  } finally {
    admin.disconnect();
  }
}

describe('closing the API infrastructure', () => {
  it('ends within QUIT_REDIS_MS when Redis stopped answering, and drops every connection', async () => {
    const infrastructure = await connectInfrastructure(config);
    const app = await buildApp(config, { infrastructure, logger: false });
    expect((await app.inject({ method: 'POST', url: '/jobs', payload: { class: 1, steps: 1 } })).statusCode).toBe(202);
    await expect.poll(apiClients).toHaveLength(3);

    server.freeze();
    const ms = await timed(async () => {
      await app.close();
      await infrastructure.close();
    }, 5 * QUIT_REDIS_MS);
    expect(ms).toBeGreaterThanOrEqual(QUIT_REDIS_MS - 50); // it did wait for an answer first
    // ioredis ends a socket whose peer does not answer its FIN within its disconnectTimeout (2 s).
    await expect.poll(() => infrastructure.jobs.connected(), { timeout: 5000 }).toBe(false);

    // Awake again, the server finds every socket closed: nothing reconnected meanwhile.
    server.thaw();
    await expect.poll(apiClients, { timeout: 5000 }).toEqual([]);
  });

  it('ends at once when Redis is gone', async () => {
    const infrastructure = await connectInfrastructure(config);
    const app = await buildApp(config, { infrastructure, logger: false });
    await server.kill();
    await expect.poll(() => infrastructure.jobs.connected()).toBe(false);
    const ms = await timed(async () => {
      await app.close();
      await infrastructure.close();
    }, 5 * QUIT_REDIS_MS);
    expect(ms).toBeLessThan(QUIT_REDIS_MS);
  });
});
