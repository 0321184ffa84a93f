import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiKeys, JobRecords, keys, RedisIdempotencyStore, requestFingerprint } from '@pixelflow/queue';
import { startPrivateRedis } from '../../packages/queue/test/support/redis-server.ts';
import { startS3Server } from '../../packages/results/test/support/s3-server.ts';
import { stallPastTheLimit } from '../../services/worker/test/support/worker-harness.ts';
import { OpenApiConformance } from './openapi-conformance.ts';
import { REPO, startService, waitForStatus, type TestService } from './support.ts';

// The OpenAPI document says what the server does: Redocly's recommended rules pass on the document
// a live server publishes, and real responses of every route, with jobs in every state and with
// Redis gone, conform to it. Every documented response is exercised, but the 500s.

const run = promisify(execFile);

let service: TestService;
let conformance: OpenApiConformance;
let document: Record<string, unknown>;

beforeAll(async () => {
  // Three jobs fill the queue: the fourth is refused.
  service = await startService({ worker: false, env: { QUEUE_CAP: '3' } });
  document = (await (await fetch(`${service.url}/openapi.json`)).json()) as Record<string, unknown>;
  conformance = new OpenApiConformance(document);
});
afterAll(async () => {
  await service?.stop();
});

/** Requests `path` (on `base`, by default the service) and expects the response to conform to `template`'s operation. */
async function conforms(method: string, template: string, path: string, init: RequestInit & { base?: string } = {}): Promise<{ status: number; json: () => Record<string, unknown> }> {
  const response = await fetch(`${init.base ?? service.url}${path}`, { method, signal: AbortSignal.timeout(15_000), ...init });
  const status = response.status;
  const body = Buffer.from(await response.arrayBuffer());
  expect(conformance.checkObserved(method, template, { status, headers: response.headers, body }), `${method} ${path}`).toEqual([]);
  return { status, json: () => JSON.parse(body.toString('utf8')) as Record<string, unknown> };
}

/** The start of a job's event stream that stays open (the job is not finished): up to its first `event`. */
async function conformingStreamStart(id: string, event: string): Promise<void> {
  const controller = new AbortController();
  const response = await fetch(`${service.url}/jobs/${id}/events`, { signal: controller.signal });
  const reader = response.body!.getReader();
  let text = '';
  while (!text.includes(`event: ${event}\n`) || !text.endsWith('\n\n')) {
    const { value, done } = await reader.read();
    if (done) break;
    text += Buffer.from(value).toString('utf8');
  }
  controller.abort();
  const observed = { status: response.status, headers: response.headers, body: Buffer.from(text) };
  expect(conformance.checkObserved('GET', '/jobs/{id}/events', observed)).toEqual([]);
  expect(text).toContain(`event: ${event}\n`);
}

const json = (body: unknown): RequestInit => ({ headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
const UNKNOWN_JOB = `j${'0'.repeat(24)}`;

describe('the OpenAPI document', () => {
  it('passes `redocly lint` with the recommended rules (the one rule switched off is justified in services/api/redocly.yaml)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pixelflow-openapi-'));
    try {
      const file = join(dir, 'openapi.json');
      await writeFile(file, JSON.stringify(document));
      const { stdout, stderr } = await run(join(REPO, 'node_modules/.bin/redocly'), ['lint', file, '--config', join(REPO, 'services/api/redocly.yaml'), '--format=stylish'], {
        env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' },
      });
      const output = stdout + stderr;
      expect(output).toContain('Your API description is valid');
      // Each problem is a `line:column  error|warning  rule  message` line (the banner Redocly prints on an old Node is not one).
      expect(output).not.toMatch(/\d+:\d+\s+(error|warning)\s/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('describes every operation with an id, the real media types, problem+json errors and its headers', () => {
    const paths = document['paths'] as Record<string, Record<string, { operationId?: string; responses: Record<string, { content?: Record<string, unknown>; headers?: Record<string, unknown> }> }>>;
    const operations = Object.values(paths).flatMap((byMethod) => Object.values(byMethod));
    expect(new Set(operations.map((o) => o.operationId)).size).toBe(operations.length);
    for (const operation of operations) {
      for (const [status, response] of Object.entries(operation.responses)) {
        if (Number(status) >= 400) expect(Object.keys(response.content ?? {}), `${operation.operationId} ${status}`).toEqual(['application/problem+json']);
        expect(response.headers?.['X-Request-Id'], `${operation.operationId} ${status}`).toBeDefined();
      }
    }
    expect(Object.keys(paths['/jobs/{id}/images/{n}']!['get']!.responses['200']!.content!)).toEqual(['image/png']);
    expect(Object.keys(paths['/jobs/{id}/events']!['get']!.responses['200']!.content!)).toEqual(['text/event-stream']);
    expect(Object.keys(paths['/jobs']!['post']!.responses['202']!.headers!)).toContain('Location');
    expect(Object.keys(paths['/jobs']!['post']!.responses['503']!.headers!)).toContain('Retry-After');
    expect(Object.keys(paths['/jobs/{id}/images/{n}']!['get']!.responses['304']!.headers!)).toContain('ETag');
    expect(document['servers']).toEqual([expect.objectContaining({ url: '/' })]);
    expect((document['info'] as { license?: unknown }).license).toBeDefined();
  });
});

describe('real responses conform to the document', () => {
  it('in every job state: queued, canceled while queued, running, canceled while running, failed, succeeded', { timeout: 120_000 }, async () => {
    // Service-wide routes, with no worker yet.
    for (const path of ['/healthz', '/metrics', '/models', '/models/classes']) await conforms('GET', path, path);
    expect((await conforms('GET', '/readyz', '/readyz')).status).toBe(503);
    expect((await conforms('GET', '/problems/{kind}', '/problems/no-such-kind')).status).toBe(404);
    expect((await conforms('GET', '/problems/{kind}', '/problems/queue-full')).status).toBe(200);

    // Three queued jobs fill the queue; refusals of every kind.
    const first = await conforms('POST', '/jobs', '/jobs', { ...json({ class: 2, num_images: 1, steps: 1 }) });
    expect(first.status).toBe(202);
    const toFail = String(first.json()['id']);
    // Workers that take it and die, until BullMQ's stalled check has returned it too often: the
    // worker that takes it next fails it. Done while it is the only job waiting, so that it is the one they take.
    const records = new JobRecords(service.redis, keys(service.prefix));
    await stallPastTheLimit(service.prefix, toFail, () => records.start(toFail, new Date()));
    const toCancel = String((await conforms('POST', '/jobs', '/jobs', json({ class: 1, num_images: 1, steps: 1 }))).json()['id']);
    const long = String((await conforms('POST', '/jobs', '/jobs', json({ class: 6, num_images: 8, steps: 100 }))).json()['id']);
    expect((await conforms('POST', '/jobs', '/jobs', json({ class: 3 }))).status).toBe(503);
    expect((await conforms('POST', '/jobs', '/jobs', json({ class: 'zebra' }))).status).toBe(400);
    expect((await conforms('POST', '/jobs', '/jobs', { headers: { 'content-type': 'application/json' }, body: '{"class": 1' })).status).toBe(400);
    expect((await conforms('POST', '/jobs', '/jobs', { headers: { 'content-type': 'text/plain' }, body: 'class=1' })).status).toBe(415);
    expect((await conforms('POST', '/jobs', '/jobs', json({ class: 1, padding: 'x'.repeat(20_000) }))).status).toBe(413);

    // A queued job, and what it does not have yet.
    expect((await conforms('GET', '/jobs/{id}', `/jobs/${toCancel}`)).json()['status']).toBe('queued');
    await conformingStreamStart(toCancel, 'queued');
    expect((await conforms('GET', '/jobs/{id}/images/{n}', `/jobs/${toCancel}/images/0`)).status).toBe(404);
    expect((await conforms('GET', '/jobs/{id}/previews/{n}', `/jobs/${toCancel}/previews/0`)).status).toBe(404);
    expect((await conforms('GET', '/jobs/{id}/images/{n}', `/jobs/${toCancel}/images/9`)).status).toBe(400);
    expect((await conforms('GET', '/jobs/{id}/previews/{n}', `/jobs/${toCancel}/previews/016`)).status).toBe(400);
    expect((await conforms('GET', '/jobs/{id}/events', `/jobs/${toCancel}/events`, { headers: { 'last-event-id': 'yesterday' } })).status).toBe(400);

    // Unknown jobs.
    expect((await conforms('GET', '/jobs/{id}', `/jobs/${UNKNOWN_JOB}`)).status).toBe(404);
    expect((await conforms('DELETE', '/jobs/{id}', `/jobs/${UNKNOWN_JOB}`)).status).toBe(404);
    expect((await conforms('GET', '/jobs/{id}/events', `/jobs/${UNKNOWN_JOB}/events`)).status).toBe(404);

    // Canceled while queued: 200, then 409 for a second cancel; its stream replays and ends.
    expect((await conforms('DELETE', '/jobs/{id}', `/jobs/${toCancel}`)).status).toBe(200);
    expect((await conforms('DELETE', '/jobs/{id}', `/jobs/${toCancel}`)).status).toBe(409);
    expect((await conforms('GET', '/jobs/{id}', `/jobs/${toCancel}`)).json()['status']).toBe('canceled');
    await conforms('GET', '/jobs/{id}/events', `/jobs/${toCancel}/events`);

    await service.startWorker();
    expect((await conforms('GET', '/readyz', '/readyz')).status).toBe(200);

    // Running, with a preview; canceled while running (202).
    await waitForStatus(service.url, long, ['running']);
    await conformingStreamStart(long, 'progress');
    await expect.poll(async () => ((await conforms('GET', '/jobs/{id}', `/jobs/${long}`)).json()['previews'] as unknown[]).length, { timeout: 30_000, interval: 50 }).toBeGreaterThan(0);
    expect((await conforms('GET', '/jobs/{id}/previews/{n}', `/jobs/${long}/previews/0`)).status).toBe(200);
    expect((await conforms('DELETE', '/jobs/{id}', `/jobs/${long}`)).status).toBe(202);
    await waitForStatus(service.url, long, ['canceled'], 15_000);
    await conforms('GET', '/jobs/{id}/events', `/jobs/${long}/events`);

    // Failed.
    expect((await waitForStatus(service.url, toFail, ['failed', 'succeeded']))['status']).toBe('failed');
    await conforms('GET', '/jobs/{id}', `/jobs/${toFail}`);
    await conforms('GET', '/jobs/{id}/events', `/jobs/${toFail}/events`);

    // Succeeded: images and previews, conditional GETs, an index past the last image.
    const done = String((await conforms('POST', '/jobs', '/jobs', json({ class: 4, num_images: 2, steps: 1 }))).json()['id']);
    await waitForStatus(service.url, done, ['succeeded']);
    await conforms('GET', '/jobs/{id}', `/jobs/${done}`);
    await conforms('GET', '/jobs/{id}/events', `/jobs/${done}/events`);
    for (const kind of ['images', 'previews']) {
      const first = await fetch(`${service.url}/jobs/${done}/${kind}/1`);
      await first.arrayBuffer();
      expect(first.status).toBe(200);
      const etag = first.headers.get('etag') ?? '';
      expect((await conforms('GET', `/jobs/{id}/${kind}/{n}`, `/jobs/${done}/${kind}/1`)).status).toBe(200);
      expect((await conforms('GET', `/jobs/{id}/${kind}/{n}`, `/jobs/${done}/${kind}/1`, { headers: { 'if-none-match': `W/${etag}` } })).status).toBe(304);
    }
    expect((await conforms('GET', '/jobs/{id}/images/{n}', `/jobs/${done}/images/7`)).status).toBe(404);

    // Idempotency-Key: a replay, the key reused with another body (422), and the key while another
    // request holds it (409, after the brief wait for that request's answer).
    const keyed = (key: string, body: unknown): RequestInit => ({ headers: { 'content-type': 'application/json', 'idempotency-key': key }, body: JSON.stringify(body) });
    expect((await conforms('POST', '/jobs', '/jobs', keyed('doc-1', { class: 5, steps: 1 }))).status).toBe(202);
    expect((await conforms('POST', '/jobs', '/jobs', keyed('doc-1', { class: 5, steps: 1 }))).status).toBe(202);
    expect((await conforms('POST', '/jobs', '/jobs', keyed('doc-1', { class: 6, steps: 1 }))).status).toBe(422);
    expect((await conforms('POST', '/jobs', '/jobs', keyed('x'.repeat(256), { class: 5, steps: 1 }))).status).toBe(400);
    await new RedisIdempotencyStore(service.redis, keys(service.prefix)).claim('', 'doc-2', requestFingerprint({ class: 5, steps: 1 }));
    expect((await conforms('POST', '/jobs', '/jobs', keyed('doc-2', { class: 5, steps: 1 }))).status).toBe(409);
    expect((await conforms('DELETE', '/jobs/{id}', `/jobs/${done}`)).status).toBe(409);
    expect((await conforms('GET', '/models', '/models')).json()['models']).toEqual([expect.objectContaining({ status: 'ready' })]);
  });

  it('with Redis gone: 503 with Retry-After from every route that needs it', { timeout: 60_000 }, async () => {
    const redis = await startPrivateRedis();
    const alone = await startService({ worker: false, env: { REDIS_URL: redis.url } });
    try {
      await redis.kill();
      const base = alone.url;
      await expect.poll(async () => (await fetch(`${base}/jobs/${UNKNOWN_JOB}`)).status, { timeout: 15_000, interval: 100 }).toBe(503);
      expect((await conforms('POST', '/jobs', '/jobs', { base, ...json({ class: 1 }) })).status).toBe(503);
      expect((await conforms('GET', '/jobs/{id}', `/jobs/${UNKNOWN_JOB}`, { base })).status).toBe(503);
      expect((await conforms('DELETE', '/jobs/{id}', `/jobs/${UNKNOWN_JOB}`, { base })).status).toBe(503);
      expect((await conforms('GET', '/jobs/{id}/events', `/jobs/${UNKNOWN_JOB}/events`, { base })).status).toBe(503);
      expect((await conforms('GET', '/jobs/{id}/images/{n}', `/jobs/${UNKNOWN_JOB}/images/0`, { base })).status).toBe(503);
      expect((await conforms('GET', '/jobs/{id}/previews/{n}', `/jobs/${UNKNOWN_JOB}/previews/0`, { base })).status).toBe(503);
      expect((await conforms('GET', '/models', '/models', { base })).status).toBe(503);
      expect((await conforms('GET', '/readyz', '/readyz', { base })).status).toBe(503);
      // What does not need Redis keeps answering; the metrics say Redis is down.
      expect((await conforms('GET', '/healthz', '/healthz', { base })).status).toBe(200);
      expect((await conforms('GET', '/metrics', '/metrics', { base })).status).toBe(200);
      expect((await conforms('GET', '/models/classes', '/models/classes', { base })).status).toBe(200);
    } finally {
      await alone.stop().catch(() => undefined);
      await redis.kill();
    }
  });

  it('with results in S3 served by presigned redirects: 307 to a URL that serves the PNG, 503 while the store is away', { timeout: 90_000 }, async () => {
    const s3 = await startS3Server();
    const presigning = await startService({ worker: true, env: { ...s3.env, RESULTS_REDIRECT: 'presigned' } });
    try {
      const base = presigning.url;
      const id = String((await conforms('POST', '/jobs', '/jobs', { base, ...json({ class: 5, num_images: 1, steps: 1 }) })).json()['id']);
      await waitForStatus(base, id, ['succeeded']);
      for (const kind of ['images', 'previews']) {
        const redirect = await conforms('GET', `/jobs/{id}/${kind}/{n}`, `/jobs/${id}/${kind}/0`, { base, redirect: 'manual' });
        expect(redirect.status).toBe(307);
      }
      await s3.kill();
      for (const kind of ['images', 'previews']) {
        expect((await conforms('GET', `/jobs/{id}/${kind}/{n}`, `/jobs/${id}/${kind}/0`, { base, redirect: 'manual' })).status).toBe(503);
      }
    } finally {
      await presigning.stop().catch(() => undefined);
      await s3.stop();
    }
  });

  it('with AUTH=on and no valid key: 401 with its challenge from every route that needs a key; the public ones answer', { timeout: 60_000 }, async () => {
    const guarded = await startService({ worker: false, env: { AUTH: 'on' } });
    try {
      const base = guarded.url;
      const unknownKey = { headers: { authorization: `Bearer pfk_${'A'.repeat(43)}` } };
      expect((await conforms('POST', '/jobs', '/jobs', { base, ...json({ class: 1 }) })).status).toBe(401);
      expect((await conforms('GET', '/jobs/{id}', `/jobs/${UNKNOWN_JOB}`, { base, ...unknownKey })).status).toBe(401);
      expect((await conforms('DELETE', '/jobs/{id}', `/jobs/${UNKNOWN_JOB}`, { base })).status).toBe(401);
      expect((await conforms('GET', '/jobs/{id}/events', `/jobs/${UNKNOWN_JOB}/events`, { base })).status).toBe(401);
      expect((await conforms('GET', '/jobs/{id}/images/{n}', `/jobs/${UNKNOWN_JOB}/images/0`, { base, ...unknownKey })).status).toBe(401);
      expect((await conforms('GET', '/jobs/{id}/previews/{n}', `/jobs/${UNKNOWN_JOB}/previews/0`, { base })).status).toBe(401);
      expect((await conforms('GET', '/models', '/models', { base })).status).toBe(401);
      expect((await conforms('GET', '/models/classes', '/models/classes', { base, ...unknownKey })).status).toBe(401);
      expect((await conforms('GET', '/healthz', '/healthz', { base })).status).toBe(200);
      expect((await conforms('GET', '/metrics', '/metrics', { base })).status).toBe(200);
      expect((await conforms('GET', '/problems/{kind}', '/problems/unauthorized', { base })).status).toBe(200);
      // A key at its max_active: 429 too-many-active-jobs.
      const { key } = await new ApiKeys(guarded.redis, keys(guarded.prefix)).create({ name: 'capped', admin: false, ratePerMinute: null, maxActive: 1 });
      const withKey = { base, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, method: 'POST', body: JSON.stringify({ class: 1 }) };
      expect((await conforms('POST', '/jobs', '/jobs', withKey)).status).toBe(202);
      expect((await conforms('POST', '/jobs', '/jobs', withKey)).status).toBe(429);
      // A key over its rate_per_minute: 429 rate-limited (with the RateLimit headers) from every operation that needs a key.
      const slow = (await new ApiKeys(guarded.redis, keys(guarded.prefix)).create({ name: 'slow', admin: false, ratePerMinute: 1, maxActive: null })).key;
      const bySlow = { base, headers: { authorization: `Bearer ${slow}` } };
      expect((await conforms('GET', '/models', '/models', bySlow)).status).toBe(200);
      const operations = Object.entries(document['paths'] as Record<string, Record<string, { responses: Record<string, unknown> }>>).flatMap(([template, methods]) =>
        Object.entries(methods).flatMap(([method, operation]) => (operation.responses?.['429'] ? [{ method: method.toUpperCase(), template }] : [])),
      );
      expect(operations.length).toBeGreaterThan(5);
      for (const { method, template } of operations) {
        const path = template.replace('{id}', UNKNOWN_JOB).replace('{n}', '0');
        const body = method === 'POST' ? { body: JSON.stringify({ class: 1 }), headers: { ...bySlow.headers, 'content-type': 'application/json' } } : {};
        expect((await conforms(method, template, path, { ...bySlow, ...body })).status, `${method} ${template}`).toBe(429);
      }
    } finally {
      await guarded.stop();
    }
  });

  it('are told apart from responses that do not (the checker itself)', () => {
    const headers = (entries: Record<string, string>): Headers => new Headers({ 'x-request-id': 'r1', ...entries });
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0]);
    const check = (method: string, path: string, status: number, entries: Record<string, string>, body: Buffer | string): string[] =>
      new OpenApiConformance(document).checkObserved(method, path, { status, headers: headers(entries), body: Buffer.from(body) });
    expect(check('GET', '/jobs/{id}/images/{n}', 200, { 'content-type': 'application/json', etag: '"a"', 'cache-control': 'x' }, png)).toEqual([expect.stringContaining('content type "application/json" is not one of image/png')]);
    expect(check('GET', '/jobs/{id}/images/{n}', 200, { 'content-type': 'image/png' }, png)).toEqual([expect.stringContaining('header ETag is missing'), expect.stringContaining('header Cache-Control is missing')]);
    expect(check('GET', '/jobs/{id}', 418, {}, '')).toEqual([expect.stringContaining('the status is not documented')]);
    const problem = JSON.stringify({ type: '/problems/queue-full', title: 'Queue full', status: 503, detail: 'full' });
    expect(check('POST', '/jobs', 503, { 'content-type': 'application/problem+json' }, problem)).toEqual([expect.stringContaining('header Retry-After is missing')]);
    expect(check('POST', '/jobs', 503, { 'content-type': 'application/problem+json', 'retry-after': 'soon' }, problem)).toEqual([expect.stringContaining('header Retry-After must be integer')]);
    expect(check('GET', '/jobs/{id}', 200, { 'content-type': 'application/json' }, JSON.stringify({ id: 'j1', status: 'queued' }))).toEqual(expect.arrayContaining([expect.stringContaining("must have required property 'model'")]));
    const stream = 'retry: 2000\n\nid: 1-0\nevent: progress\ndata: {"stage":0}\n\n: heartbeat\n\nid: 2-0\nevent: teleported\ndata: {}\n\n';
    const streamProblems = check('GET', '/jobs/{id}/events', 200, { 'content-type': 'text/event-stream' }, stream);
    expect(streamProblems).toEqual(expect.arrayContaining([expect.stringMatching(/event "progress" data must have required property 'stages'/), expect.stringMatching(/event "teleported"/)]));
  });

  it('exercised every documented response but the 500s, which only an unexpected fault produces', () => {
    const missed = conformance.documented().filter((response) => !response.endsWith(' 500') && !conformance.seen.has(response));
    expect(missed).toEqual([]);
  });
});
