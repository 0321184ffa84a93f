import type { FastifyInstance } from 'fastify';
import { loadModelDir } from '@pixelflow/formats';
import type { WorkerHeartbeat } from '@pixelflow/queue';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.ts';
import { loadApiConfig } from '../src/config.ts';
import { buildFakeApp, fakeInfrastructure, TINY_MODEL_DIR, type FakeInfrastructure } from './support/fake-infrastructure.ts';

// Liveness and readiness over in-memory infrastructure, through inject().

let app: FastifyInstance;
let infrastructure: FakeInfrastructure;

afterEach(async () => {
  await app.close();
});

async function heartbeat(state: WorkerHeartbeat['state'], sentAgoMs = 0): Promise<WorkerHeartbeat> {
  const { manifest } = await loadModelDir(TINY_MODEL_DIR);
  return {
    worker_id: `w-${state}`,
    state,
    model: { name: manifest.name, resolution: manifest.resolution, stages: manifest.stages.map((s) => s.resolution), classes: manifest.classes.names.length, weights_sha256: manifest.source.weights_sha256 },
    provider: 'cpu',
    pid: 1,
    hostname: 'test',
    started_at: new Date().toISOString(),
    sent_at: new Date(Date.now() - sentAgoMs).toISOString(),
  };
}

describe('GET /healthz', () => {
  it('answers 200 while the process runs, whatever Redis and the workers do', async () => {
    ({ app, infrastructure } = await buildFakeApp());
    infrastructure.jobs.reachable = false;
    const response = await app.inject({ method: 'GET', url: '/healthz' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ status: 'ok' });
  });
});

describe('GET /readyz', () => {
  it('answers 503 with Retry-After while no worker serves the model, and says whether one is loading', async () => {
    ({ app, infrastructure } = await buildFakeApp({ WORKER_STALE_MS: '5000' }));
    const none = await app.inject({ method: 'GET', url: '/readyz' });
    expect(none.statusCode).toBe(503);
    expect(none.headers['retry-after']).toBe('5');
    expect(none.headers['content-type']).toContain('application/problem+json');
    expect(none.json()).toMatchObject({ type: '/problems/service-unavailable', detail: 'no worker with the model tiny-random has sent a heartbeat in the last 5 s' });

    infrastructure.jobs.workers = [await heartbeat('ready', 60_000)]; // stale: it counts for nothing
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(503);
    infrastructure.jobs.workers = [await heartbeat('loading')];
    expect((await app.inject({ method: 'GET', url: '/readyz' })).json()).toMatchObject({ detail: 'a worker is loading the model tiny-random' });
  });

  it('answers 200 once a worker has the model loaded', async () => {
    ({ app, infrastructure } = await buildFakeApp());
    infrastructure.jobs.workers = [await heartbeat('ready'), await heartbeat('loading')];
    const response = await app.inject({ method: 'GET', url: '/readyz' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ status: 'ready', workers: 1 });
  });

  it('answers 503 when the job store does not answer', async () => {
    ({ app, infrastructure } = await buildFakeApp());
    infrastructure.jobs.workers = [await heartbeat('ready')];
    infrastructure.jobs.reachable = false;
    const response = await app.inject({ method: 'GET', url: '/readyz' });
    expect(response.statusCode).toBe(503);
    expect(response.json<{ detail: string }>().detail).toMatch(/^the job store \(Redis\) is unreachable/);
  });
});

describe('request logs', () => {
  /** The app with its log lines collected, at `level`. */
  async function logged(level: string): Promise<{ lines: { level: number; msg: string; req?: { url: string } }[] }> {
    const lines: { level: number; msg: string; req?: { url: string } }[] = [];
    const stream = { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) };
    app = await buildApp(loadApiConfig({ MODEL_DIR: TINY_MODEL_DIR, LOG_LEVEL: level }), { infrastructure: fakeInfrastructure(), logger: { level, stream } });
    for (const url of ['/healthz', '/readyz', '/metrics', '/metrics?x=1', '/models']) await app.inject({ method: 'GET', url });
    return { lines };
  }
  const DEBUG = 20;
  const INFO = 30;

  it('leave probes and scrapes out at info, and keep every other request', async () => {
    const { lines } = await logged('info');
    expect(lines.filter((l) => l.msg === 'incoming request').map((l) => l.req?.url)).toEqual(['/models']);
    expect(lines.filter((l) => l.msg === 'request completed')).toHaveLength(1);
    expect(lines.every((l) => l.level >= INFO)).toBe(true);
  });

  it('show probes and scrapes at debug', async () => {
    const { lines } = await logged('debug');
    const incoming = lines.filter((l) => l.msg === 'incoming request');
    expect(incoming.map((l) => [l.req?.url, l.level])).toEqual([
      ['/healthz', DEBUG],
      ['/readyz', DEBUG],
      ['/metrics', DEBUG],
      ['/metrics?x=1', DEBUG],
      ['/models', INFO],
    ]);
    expect(lines.filter((l) => l.msg === 'request completed').map((l) => l.level)).toEqual([DEBUG, DEBUG, DEBUG, DEBUG, INFO]);
  });
});
