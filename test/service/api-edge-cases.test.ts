import { spawn } from 'node:child_process';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobEvents, keys } from '@pixelflow/queue';
import { startPrivateRedis } from '../../packages/queue/test/support/redis-server.ts';
import { postJob, readSse, REPO, startService, type TestService } from './support.ts';

// Requests at the edges of the API's routes: ids no job can have, long event streams, and the
// errors of routes the API does not write itself. No worker: the jobs here stay queued.

let service: TestService;
beforeAll(async () => {
  service = await startService({ worker: false });
});
afterAll(async () => {
  await service.stop();
});

async function problemOf(response: Response): Promise<{ status: number; type: string; contentType: string | null }> {
  const body = (await response.json()) as { type: string; status: number };
  expect(body.status).toBe(response.status);
  return { status: response.status, type: body.type, contentType: response.headers.get('content-type') };
}

const notFound = { status: 404, type: '/problems/not-found', contentType: expect.stringContaining('application/problem+json') };

describe('job ids', () => {
  it('answers 404 for ids POST /jobs cannot issue, even those that name one of its Redis keys, and opens no stream for them', async () => {
    const { id } = (await (await postJob(service.url, { class: 1, num_images: 1, steps: 1 })).json()) as { id: string };
    expect(id).toMatch(/^j[0-9a-f]{24}$/);
    // `<id>:events` is the job's event stream key: it must not be read as a job record.
    const signal = AbortSignal.timeout(5000);
    for (const path of [`/jobs/${id}:events`, `/jobs/${id}:events/events`, `/jobs/${id}:events/images/0`, `/jobs/${id.toUpperCase()}`, `/jobs/${'j'.repeat(65)}/events`]) {
      expect(await problemOf(await fetch(`${service.url}${path}`, { signal })), path).toEqual(notFound);
    }
    expect(await problemOf(await fetch(`${service.url}/jobs/${id}:events`, { method: 'DELETE', signal }))).toEqual(notFound);
    // The job itself is untouched.
    expect(((await (await fetch(`${service.url}/jobs/${id}`)).json()) as { status: string }).status).toBe('queued');
  });
});

describe('GET /jobs/:id/events', () => {
  it('replays a finished job of more events than one stream read returns without waiting for heartbeats', async () => {
    // Heartbeats far apart: a replay that waited for one between reads would not finish in time.
    const slow = await startService({ worker: false, env: { SSE_HEARTBEAT_MS: '60000' } });
    try {
      const { id } = (await (await postJob(slow.url, { class: 1, num_images: 1, steps: 1 })).json()) as { id: string };
      const events = new JobEvents(slow.redis, keys(slow.prefix));
      const steps = 2500;
      for (let step = 1; step <= steps; step++) {
        await events.append(id, 'progress', { stage: 0, stages: 1, step, steps_total: steps, fraction: step / steps });
      }
      await events.append(id, 'canceled', { reason: 'test' });
      const replay = await readSse(await fetch(`${slow.url}/jobs/${id}/events`, { signal: AbortSignal.timeout(10_000) }));
      expect(replay.events).toHaveLength(steps + 2);
      expect(replay.events.at(-2)?.data).toMatchObject({ step: steps });
      expect(replay.events.at(-1)?.event).toBe('canceled');
    } finally {
      await slow.stop();
    }
  });
});

describe('GET /jobs/:id/events, a client that leaves at once', () => {
  it('is not left as an open stream when it left before the stream was set up', async () => {
    // A Redis of the test's own, frozen while the client leaves: the API's job lookup waits on it
    // meanwhile. Frozen for milliseconds, from the request to the client's leaving: one silent for
    // CLIENT_SILENCE_LIMIT_MS would make the API drop the connection and answer 503 instead.
    const redis = await startPrivateRedis();
    const held = await startService({ worker: false, env: { REDIS_URL: redis.url } });
    try {
      const { id } = (await (await postJob(held.url, { class: 1, num_images: 1, steps: 1 })).json()) as { id: string };
      const metrics = async (): Promise<{ open: number; ended: number }> => {
        const lines = (await (await fetch(`${held.url}/metrics`)).text()).split('\n');
        const value = (line: string | undefined): number => Number(line?.split(' ').at(-1) ?? 0);
        return {
          open: value(lines.find((line) => line.startsWith('pixelflow_sse_streams '))),
          // A stream's duration is observed when it ends.
          ended: value(lines.find((line) => line.startsWith('pixelflow_http_request_duration_seconds_count{') && line.includes('route="/jobs/:id/events"') && line.includes('status_code="200"'))),
        };
      };
      const before = await metrics();
      expect(before.open).toBe(0);

      const received = new Promise<ServerResponse>((resolve) => held.app.server.once('request', (_request: IncomingMessage, response: ServerResponse) => resolve(response)));
      redis.freeze();
      const controller = new AbortController();
      const leaving = fetch(`${held.url}/jobs/${id}/events`, { signal: controller.signal }).catch(() => undefined);
      // The API has the request, and cannot have its job from Redis yet ...
      const response = await received;
      const gone = new Promise((resolve) => response.once('close', resolve));
      controller.abort();
      await leaving;
      // ... when it sees the client go.
      await gone;
      redis.thaw();

      // Then its lookup answers and the route goes on: to a stream that ended at once, or one left open.
      await expect.poll(async () => {
        const now = await metrics();
        return now.open > 0 || now.ended > before.ended;
      }, { timeout: 10_000, interval: 50 }).toBe(true);
      expect((await metrics()).open).toBe(0);
    } finally {
      await held.stop();
      await redis.kill();
    }
  });
});

describe('validation problems', () => {
  it('name a failing list entry by its index and a body that is not an object as body', async () => {
    const entry = (await (await postJob(service.url, { class: 1, steps: [1, 2, 0, 4] })).json()) as { errors: { path: string }[] };
    expect(entry.errors.map((e) => e.path)).toEqual(['steps[2]']);
    const list = (await (await postJob(service.url, [1])).json()) as { errors: { path: string; message: string }[] };
    expect(list.errors).toEqual([{ path: 'body', message: 'must be a JSON object' }]);
  });
});

describe('errors of routes the API does not write', () => {
  it('keep their own 4xx status (the docs\' static files: 416 for a Range past the end, 412 for a failed If-Match)', async () => {
    const css = `${service.url}/docs/static/swagger-ui.css`;
    expect((await fetch(css)).status).toBe(200);
    const clientError = (status: number) => ({ status, type: '/problems/client-error', contentType: expect.stringContaining('application/problem+json') });
    expect(await problemOf(await fetch(css, { headers: { range: 'bytes=999999999-' } }))).toEqual(clientError(416));
    expect(await problemOf(await fetch(css, { headers: { 'if-match': '"no-such-etag"' } }))).toEqual(clientError(412));
    expect((await (await fetch(`${service.url}/problems/client-error`)).json()) as { title: string }).toMatchObject({ title: 'Request refused' });
  });
});

describe('without Redis', () => {
  it('answers 503 on job routes only: other paths that start with /jobs are 404 as anywhere else', async () => {
    const down = await startService({ worker: false, env: { REDIS_URL: 'redis://127.0.0.1:1' } });
    try {
      const unavailable = { status: 503, type: '/problems/service-unavailable', contentType: expect.stringContaining('application/problem+json') };
      const id = 'j0123456789abcdef01234567';
      for (const path of [`/jobs/${id}`, `/jobs/${id}/events`, `/jobs/${id}/images/0`]) {
        const response = await fetch(`${down.url}${path}`);
        expect(response.headers.get('retry-after'), path).toBe('5');
        expect(await problemOf(response), path).toEqual(unavailable);
      }
      for (const path of ['/jobsX', `/jobs/${id}/nowhere`, '/jobs/jnope']) {
        expect(await problemOf(await fetch(`${down.url}${path}`)), path).toEqual(notFound);
      }
    } finally {
      await down.stop();
    }
  });
});

/** Runs `args` with tsx and the service's environment; resolves with its exit code, or 'running' if it outlives `ms`. */
async function exitOf(args: string[], env: Record<string, string>, ms = 8000): Promise<{ code: number | null | 'running'; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null | 'running'>((resolve) => {
    const timer = setTimeout(() => resolve('running'), ms);
    child.once('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  if (code === 'running') child.kill('SIGKILL');
  return { code, stderr };
}

describe('an API that fails to start', () => {
  it('exits 1 when its port is taken, instead of living on with its Redis connections', async () => {
    const port = new URL(service.url).port;
    const { code, stderr } = await exitOf([join(REPO, 'services/api/src/main.ts')], { ...service.env, PORT: port, LOG_LEVEL: 'silent' });
    expect(code).toBe(1);
    expect(stderr).toContain('EADDRINUSE');
  });

  it('closes its Redis connections when building the app fails after opening them', async () => {
    // An unknown log level makes Fastify throw, after the connections are open.
    const script = `
      const { buildApp } = await import(${JSON.stringify(pathToFileURL(join(REPO, 'services/api/src/app.ts')).href)});
      const { loadApiConfig } = await import(${JSON.stringify(pathToFileURL(join(REPO, 'services/api/src/config.ts')).href)});
      await buildApp(loadApiConfig(), { logger: { level: 'no-such-level' } }).then(() => process.exit(9), () => (process.exitCode = 3));
    `;
    const { code } = await exitOf(['--input-type=module', '-e', script], service.env);
    expect(code).toBe(3);
  });
});
