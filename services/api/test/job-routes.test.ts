import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { imageKey, previewKey } from '@pixelflow/results';
import { afterEach, describe, expect, it } from 'vitest';
import { buildFakeApp, type FakeInfrastructure } from './support/fake-infrastructure.ts';

// The job routes over in-memory infrastructure, through inject(): what each
// answer looks like (status, headers, problem+json) for what the job service says.

let app: FastifyInstance;
let infrastructure: FakeInfrastructure;

async function start(env: Record<string, string> = {}): Promise<void> {
  ({ app, infrastructure } = await buildFakeApp(env));
}

afterEach(async () => {
  await app.close();
});

async function post(body: unknown) {
  return app.inject({ method: 'POST', url: '/jobs', payload: body as Record<string, unknown> });
}

async function created(body: unknown = { class: 3, num_images: 1, steps: 2 }): Promise<string> {
  const response = await post(body);
  expect(response.statusCode).toBe(202);
  return response.json<{ id: string }>().id;
}

async function metric(line: string): Promise<number> {
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  return Number(text.split('\n').find((l) => l.startsWith(`${line} `))?.split(' ')[1] ?? Number.NaN);
}

describe('POST /jobs', () => {
  it('answers 400 problem+json naming each failing field, and queues nothing', async () => {
    await start();
    const response = await post({ class: 3, num_images: 0, colour: 'red' });
    expect(response.statusCode).toBe(400);
    expect(response.headers['content-type']).toContain('application/problem+json');
    const body = response.json<{ type: string; errors: { path: string }[] }>();
    expect(body.type).toBe('/problems/validation');
    expect(body.errors.map((e) => e.path).sort()).toEqual(['colour', 'num_images']);
    // A class the model does not have is caught after the schema, with the model's own rule.
    const unknownClass = await post({ class: 'no such class' });
    expect(unknownClass.statusCode).toBe(400);
    expect(unknownClass.json<{ errors: { path: string }[] }>().errors[0]?.path).toBe('class');
    expect(await infrastructure.jobs.depth()).toEqual({ waiting: 0, active: 0 });
  });

  it('counts every refusal by its problem type, whoever answered it', async () => {
    await start({ BODY_LIMIT_BYTES: '1024' });
    await post({ class: 3, num_images: 0 }); // schema validation
    await post({ class: 'no such class' }); // the model's own rule
    await app.inject({ method: 'POST', url: '/jobs', payload: '{"class": 3', headers: { 'content-type': 'application/json' } }); // not JSON
    await app.inject({ method: 'POST', url: '/jobs', payload: 'class=3', headers: { 'content-type': 'text/plain' } });
    await app.inject({ method: 'POST', url: '/jobs', payload: { class: 3, pad: 'x'.repeat(2000) } });
    infrastructure.jobs.reachable = false;
    await post({ class: 3 });
    expect(await metric('pixelflow_jobs_rejected_total{reason="validation"}')).toBe(3);
    expect(await metric('pixelflow_jobs_rejected_total{reason="unsupported_media_type"}')).toBe(1);
    expect(await metric('pixelflow_jobs_rejected_total{reason="body_too_large"}')).toBe(1);
    expect(await metric('pixelflow_jobs_rejected_total{reason="service_unavailable"}')).toBe(1);
    expect(await metric('pixelflow_jobs_created_total')).toBe(0);
  });

  it('answers 202 with a Location and the queued job, defaults filled in', async () => {
    await start();
    const response = await post({ class: 'class 3', num_images: 2, seed: 42, steps: 2 });
    expect(response.statusCode).toBe(202);
    const job = response.json<{ id: string }>();
    expect(response.headers['location']).toBe(`/jobs/${job.id}`);
    expect(job).toMatchObject({
      status: 'queued',
      model: 'tiny-random',
      queue_position: 1,
      eta_seconds: null,
      parameters: { class_label: 3, class_name: 'class 3', num_images: 2, seed: 42, cfg_scale: 4, noise_shift: 1, steps: [2, 2, 2, 2], solver: 'euler' },
    });
    expect((await infrastructure.jobs.record(job.id))?.status).toBe('queued');
    expect(await metric('pixelflow_jobs_created_total')).toBe(1);
  });

  it('answers 503 queue-full with a Retry-After of the time the queue takes to drain, and says when no worker is alive', async () => {
    await start({ QUEUE_CAP: '1' });
    await created();
    const full = await post({ class: 1, num_images: 2, steps: 5 });
    expect(full.statusCode).toBe(503);
    // No worker: a minute for one to start.
    expect(full.headers['retry-after']).toBe('60');
    expect(full.json()).toMatchObject({ type: '/problems/queue-full', status: 503, detail: '1 jobs are queued or running (the cap is 1); no worker is running: jobs wait until one starts' });
    infrastructure.jobs.workers = [{ worker_id: 'w1', state: 'ready', model: { name: 'tiny-random', resolution: 32, stages: [4, 8, 16, 32], classes: 10, weights_sha256: '0'.repeat(64) }, provider: 'cpu', pid: 1, hostname: 'test', started_at: new Date().toISOString(), sent_at: new Date().toISOString() }];
    const unmeasured = await post({ class: 1, num_images: 2, steps: 5 });
    expect(unmeasured.headers['retry-after']).toBe('10'); // nothing measured yet
    expect(unmeasured.json<{ detail: string }>().detail).toBe('1 jobs are queued or running (the cap is 1)');
    await infrastructure.jobs.recordThroughput({ secondsPerImageStep: 0.3, concurrency: 1 });
    // The queued job ahead, whatever the size of the refused one: 1 image x 4 stages x 2 steps = 8 units at 0.3 s.
    expect((await post({ class: 1, num_images: 8, steps: 50 })).headers['retry-after']).toBe('3');
    expect(await metric('pixelflow_jobs_rejected_total{reason="queue_full"}')).toBe(3);
  });
});

describe('GET /jobs/:id', () => {
  it('answers 404 problem+json for a job that does not exist, or an id POST /jobs cannot issue', async () => {
    await start();
    for (const id of ['j000000000000000000000abc', 'not-an-id']) {
      const response = await app.inject({ method: 'GET', url: `/jobs/${id}` });
      expect(response.statusCode).toBe(404);
      expect(response.headers['content-type']).toContain('application/problem+json');
      expect(response.json()).toMatchObject({ type: '/problems/not-found', instance: `/jobs/${id}` });
    }
  });

  it('shows the position and the ETA the job service estimates', async () => {
    await start();
    const running = await created();
    const waiting = await created();
    infrastructure.jobs.start(running);
    await infrastructure.jobs.recordThroughput({ secondsPerImageStep: 0.25, concurrency: 1 });
    // One job at a time, 8 units each (1 image x 4 stages x 2 steps): the running job's 8, then its own.
    expect((await app.inject({ method: 'GET', url: `/jobs/${waiting}` })).json()).toMatchObject({ status: 'queued', queue_position: 1, eta_seconds: 4 });
    expect((await app.inject({ method: 'GET', url: `/jobs/${running}` })).json()).toMatchObject({ status: 'running', queue_position: null, eta_seconds: 2 });
    // Two at once: the waiting job runs beside the running one, 8 rounds of 2 images; so does the running one.
    await infrastructure.jobs.recordThroughput({ secondsPerImageStep: 0.25, concurrency: 2 });
    expect((await app.inject({ method: 'GET', url: `/jobs/${waiting}` })).json()).toMatchObject({ queue_position: 1, eta_seconds: 4 });
    expect((await app.inject({ method: 'GET', url: `/jobs/${running}` })).json()).toMatchObject({ queue_position: null, eta_seconds: 4 });
  });
});

describe('DELETE /jobs/:id', () => {
  it('cancels a queued job (200), asks a running one to stop (202) and refuses a finished one (409)', async () => {
    await start();
    const queued = await created();
    const running = await created();
    infrastructure.jobs.start(running);

    const canceled = await app.inject({ method: 'DELETE', url: `/jobs/${queued}` });
    expect(canceled.statusCode).toBe(200);
    expect(canceled.json()).toMatchObject({ status: 'canceled', queue_position: null });

    const stopping = await app.inject({ method: 'DELETE', url: `/jobs/${running}` });
    expect(stopping.statusCode).toBe(202);
    expect(stopping.json()).toMatchObject({ status: 'running' });
    expect((await infrastructure.jobs.record(running))?.cancelRequested).toBe(true);

    const again = await app.inject({ method: 'DELETE', url: `/jobs/${queued}` });
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ type: '/problems/job-finished', detail: `job ${queued} already canceled` });
    expect((await app.inject({ method: 'DELETE', url: '/jobs/j000000000000000000000abc' })).statusCode).toBe(404);
  });
});

describe('job images', () => {
  /** A job that ran one stage and succeeded with one image, `png` stored as both; its id and the image's hash. */
  async function finishedJob(png: Buffer): Promise<{ id: string; sha256: string }> {
    const id = await created();
    const sha256 = createHash('sha256').update(png).digest('hex');
    infrastructure.jobs.start(id);
    infrastructure.jobs.endStage(id, 0, 32);
    infrastructure.jobs.succeed(id, [{ url: `/jobs/${id}/images/0`, width: 32, height: 32, sha256 }]);
    await infrastructure.resultStore.put(imageKey(id, 0), png);
    await infrastructure.resultStore.put(previewKey(id, 0), png);
    return { id, sha256 };
  }

  it('serves a finished job’s PNG with its hash as ETag, and 304 when the client has it', async () => {
    await start();
    const png = Buffer.from('stands in for a PNG: the route serves stored bytes as they are');
    const { id, sha256 } = await finishedJob(png);

    const image = await app.inject({ method: 'GET', url: `/jobs/${id}/images/0` });
    expect(image.statusCode).toBe(200);
    expect(image.headers['content-type']).toBe('image/png');
    expect(image.headers['etag']).toBe(`"${sha256}"`);
    expect(image.rawPayload.equals(png)).toBe(true);

    const revalidated = await app.inject({ method: 'GET', url: `/jobs/${id}/images/0`, headers: { 'if-none-match': `"${sha256}"` } });
    expect(revalidated.statusCode).toBe(304);
    expect(revalidated.rawPayload.length).toBe(0);
    expect((await app.inject({ method: 'GET', url: `/jobs/${id}/images/1` })).statusCode).toBe(404);
  });

  it('revalidates by HTTP semantics: weak validators, lists and * match, other tags do not, and no-cache is for caches', async () => {
    await start();
    const { id, sha256 } = await finishedJob(Buffer.from('another stand-in'));
    const status = async (url: string, headers: Record<string, string>): Promise<number> => (await app.inject({ method: 'GET', url, headers })).statusCode;
    for (const url of [`/jobs/${id}/images/0`, `/jobs/${id}/previews/0`]) {
      expect(await status(url, { 'if-none-match': `W/"${sha256}"` }), url).toBe(304);
      expect(await status(url, { 'if-none-match': `"x", "${sha256}"` }), url).toBe(304);
      expect(await status(url, { 'if-none-match': `"x",W/"${sha256}"` }), url).toBe(304);
      expect(await status(url, { 'if-none-match': '*' }), url).toBe(304);
      expect(await status(url, { 'if-none-match': `"x", "y"` }), url).toBe(200);
      expect(await status(url, { 'if-none-match': sha256 }), url).toBe(200); // not a quoted tag
      // What fetch() sends with If-None-Match: a directive for caches, not for the server that validates.
      expect(await status(url, { 'if-none-match': `"${sha256}"`, 'cache-control': 'no-cache', pragma: 'no-cache' }), url).toBe(304);
    }
  });
});

describe('request ids', () => {
  it('are echoed in X-Request-Id and kept on the job a request creates; the client one is used when it is a plausible id', async () => {
    await start();
    const own = await app.inject({ method: 'POST', url: '/jobs', payload: { class: 3 }, headers: { 'x-request-id': 'trace-7f3a.01' } });
    expect(own.statusCode).toBe(202);
    expect(own.headers['x-request-id']).toBe('trace-7f3a.01');
    expect(infrastructure.jobs.recordOf(own.json<{ id: string }>().id).requestId).toBe('trace-7f3a.01');

    for (const bad of ['has spaces', 'x'.repeat(129), 'semi;colon']) {
      const response = await app.inject({ method: 'POST', url: '/jobs', payload: { class: 3 }, headers: { 'x-request-id': bad } });
      const id = response.headers['x-request-id'] as string;
      expect(id, bad).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(infrastructure.jobs.recordOf(response.json<{ id: string }>().id).requestId).toBe(id);
    }
    // Every answer carries one, errors and event streams included.
    const missing = await app.inject({ method: 'GET', url: '/jobs/j000000000000000000000fff' });
    expect(missing.statusCode).toBe(404);
    expect(missing.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const jobId = own.json<{ id: string }>().id;
    await app.inject({ method: 'DELETE', url: `/jobs/${jobId}` }); // a finished job's stream replays and ends
    const stream = await app.inject({ method: 'GET', url: `/jobs/${jobId}/events`, headers: { 'x-request-id': 'stream-1' } });
    expect(stream.headers['content-type']).toContain('text/event-stream');
    expect(stream.headers['x-request-id']).toBe('stream-1');
  });
});

describe('path and query parameters', () => {
  it('are validation problems in our words, and an index has one spelling: plain decimal in range', async () => {
    await start();
    const id = await created();
    const image = 'must be an image index from 0 to 7, in plain decimal';
    const stage = 'must be a stage index from 0 to 15, in plain decimal';
    const cases: [string, string][] = [
      ...['9', 'x', '-1', '1.5', '00', '0x0', '%20', '+1', '1e0', ''].map((n): [string, string] => [`images/${n}`, image]),
      ...['16', '99', '03', '0x3', '1e0'].map((n): [string, string] => [`previews/${n}`, stage]),
    ];
    for (const [path, rule] of cases) {
      const url = `/jobs/${id}/${path}`;
      const response = await app.inject({ method: 'GET', url });
      expect(response.statusCode, url).toBe(400);
      expect(response.headers['content-type'], url).toContain('application/problem+json');
      expect(response.json(), url).toEqual({
        type: '/problems/validation',
        title: 'Invalid request',
        status: 400,
        detail: `n ${rule}`,
        errors: [{ path: 'n', message: rule }],
        instance: url,
      });
    }
    // In range and canonical: the route runs (this job has no images yet).
    expect((await app.inject({ method: 'GET', url: `/jobs/${id}/images/7` })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: `/jobs/${id}/previews/15` })).statusCode).toBe(404);
    const longId = await app.inject({ method: 'GET', url: `/jobs/${id}/events?last_event_id=${'1'.repeat(65)}` });
    expect(longId.statusCode).toBe(400);
    expect(longId.json()).toMatchObject({ errors: [{ path: 'last_event_id', message: 'must be an id from this stream, e.g. 1700000000000-0' }] });
  });
});

describe('GET /jobs/:id/events', () => {
  it('replays a finished job’s events and ends the stream', async () => {
    await start();
    const id = await created();
    await app.inject({ method: 'DELETE', url: `/jobs/${id}` });
    const stream = await app.inject({ method: 'GET', url: `/jobs/${id}/events` });
    expect(stream.statusCode).toBe(200);
    expect(stream.headers['content-type']).toContain('text/event-stream');
    expect([...stream.body.matchAll(/^event: (\w+)$/gm)].map((m) => m[1])).toEqual(['queued', 'canceled']);
  });

  it('follows a live job through the hub until its final event', async () => {
    await start();
    const id = await created();
    const stream = app.inject({ method: 'GET', url: `/jobs/${id}/events` });
    await expect.poll(() => infrastructure.eventHub.followers(id)).toBe(1);
    infrastructure.jobs.start(id);
    infrastructure.jobs.succeed(id, []);
    expect([...(await stream).body.matchAll(/^event: (\w+)$/gm)].map((m) => m[1])).toEqual(['queued', 'started', 'succeeded']);
    expect(infrastructure.eventHub.followers(id)).toBe(0);
  });
});

describe('while the job store is unreachable', () => {
  it('answers the job routes 503 with Retry-After at once', async () => {
    await start();
    infrastructure.jobs.reachable = false;
    const response = await post({ class: 1 });
    expect(response.statusCode).toBe(503);
    expect(response.headers['retry-after']).toBe('5');
    expect(response.json()).toMatchObject({ type: '/problems/service-unavailable' });
  });
});
