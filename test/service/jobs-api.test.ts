import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJob, readSse, startService, waitForStatus, type TestService } from './support.ts';

// The job API end to end: real HTTP into the real API, the real Redis, the real worker running the
// committed tiny model (random weights: the images are noise, the arithmetic is real).

let service: TestService;
beforeAll(async () => {
  service = await startService({ worker: true });
});
afterAll(async () => {
  await service.stop();
});

describe('POST /jobs, then polling', () => {
  it('accepts a job with 202 and a Location, runs it, and serves images with the reported size and sha256', async () => {
    const response = await postJob(service.url, { class: 'class 3', num_images: 2, seed: 42, steps: 2 });
    expect(response.status).toBe(202);
    const created = (await response.json()) as Record<string, unknown>;
    expect(response.headers.get('location')).toBe(`/jobs/${String(created['id'])}`);
    expect(created).toMatchObject({
      status: 'queued',
      model: 'tiny-random',
      parameters: { class_label: 3, class_name: 'class 3', num_images: 2, seed: 42, cfg_scale: 4, noise_shift: 1, steps: [2, 2, 2, 2], solver: 'euler' },
      result: null,
      error: null,
    });
    const done = await waitForStatus(service.url, created['id'] as string, ['succeeded', 'failed']);
    expect(done['status']).toBe('succeeded');
    expect(done['progress']).toEqual({ stage: 3, stages: 4, step: 8, steps_total: 8, fraction: 1 });
    expect(done['queue_position']).toBeNull();
    expect(Date.parse(done['expires_at'] as string)).toBeGreaterThan(Date.now());
    const images = (done['result'] as { images: { url: string; width: number; height: number; sha256: string }[] }).images;
    expect(images).toHaveLength(2);
    for (const image of images) {
      const png = await fetch(`${service.url}${image.url}`);
      expect(png.status).toBe(200);
      expect(png.headers.get('content-type')).toBe('image/png');
      expect(png.headers.get('cache-control')).toContain('immutable');
      const bytes = Buffer.from(await png.arrayBuffer());
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(image.sha256);
      const decoded = PNG.sync.read(bytes);
      expect([decoded.width, decoded.height]).toEqual([image.width, image.height]);
      const again = await fetch(`${service.url}${image.url}`, { headers: { 'if-none-match': png.headers.get('etag') ?? '' } });
      expect(again.status).toBe(304);
    }
    // The same seed and parameters give the same images.
    const second = (await (await postJob(service.url, { class: 3, num_images: 2, seed: 42, steps: [2, 2, 2, 2] })).json()) as { id: string };
    const repeat = await waitForStatus(service.url, second.id, ['succeeded']);
    expect((repeat['result'] as { images: { sha256: string }[] }).images.map((i) => i.sha256)).toEqual(images.map((i) => i.sha256));
  });

  it('draws and returns a seed when none is given, and fills the model defaults', async () => {
    const created = (await (await postJob(service.url, { class: 0, steps: 1 })).json()) as { parameters: { seed: number; num_images: number; cfg_scale: number } };
    expect(Number.isInteger(created.parameters.seed)).toBe(true);
    expect(created.parameters).toMatchObject({ num_images: 4, cfg_scale: 4 });
  });
});

describe('validation and errors are problem+json', () => {
  const cases: [string, unknown, string, string][] = [
    ['a missing class', {}, 'class', 'must be a class index'],
    ['an unknown class name', { class: 'zebra' }, 'class', 'is not a class of this model'],
    ['a class index past the last', { class: 10 }, 'class', 'out of range'],
    ['num_images 0', { class: 1, num_images: 0 }, 'num_images', 'must be an integer from 1 to 8'],
    ['num_images 9', { class: 1, num_images: 9 }, 'num_images', 'must be an integer from 1 to 8'],
    ['a negative seed', { class: 1, seed: -1 }, 'seed', 'must be an integer from 0 to 4294967295'],
    ['a seed past uint32', { class: 1, seed: 4294967296 }, 'seed', 'must be an integer from 0 to 4294967295'],
    ['cfg_scale 0.5', { class: 1, cfg_scale: 0.5 }, 'cfg_scale', 'must be a number from 1 to 25'],
    ['cfg_scale 26', { class: 1, cfg_scale: 26 }, 'cfg_scale', 'must be a number from 1 to 25'],
    ['noise_shift 0', { class: 1, noise_shift: 0 }, 'noise_shift', 'must be a number from 1 to 100'],
    ['noise_shift 101', { class: 1, noise_shift: 101 }, 'noise_shift', 'must be a number from 1 to 100'],
    ['steps 0', { class: 1, steps: 0 }, 'steps', 'must be an integer from 1 to 100'],
    ['steps 101', { class: 1, steps: 101 }, 'steps', 'must be an integer from 1 to 100'],
    ['a steps list of the wrong length', { class: 1, steps: [1, 2] }, 'steps', 'has 2 entries but the model has 4 stages'],
    ['a bad solver', { class: 1, solver: 'rk4' }, 'solver', 'must be "euler" or "dopri5"'],
    ['an unknown field', { class: 1, sampler: 'x' }, 'sampler', 'is not a field of this request'],
  ];
  it.each(cases)('%s', async (_name, body, path, message) => {
    const response = await postJob(service.url, body);
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toContain('application/problem+json');
    const problem = (await response.json()) as { type: string; title: string; status: number; detail: string; errors: { path: string; message: string }[] };
    expect(problem).toMatchObject({ type: '/problems/validation', title: 'Invalid request', status: 400 });
    expect(problem.errors.map((e) => e.path)).toContain(path);
    expect(problem.detail).toContain(message);
  });

  it('answers malformed JSON, a wrong content type and an oversized body with their own problems', async () => {
    const bad = await fetch(`${service.url}/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"class":' });
    expect([bad.status, ((await bad.json()) as { type: string }).type]).toEqual([400, '/problems/validation']);
    const text = await fetch(`${service.url}/jobs`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'class=1' });
    expect([text.status, ((await text.json()) as { type: string }).type]).toEqual([415, '/problems/unsupported-media-type']);
    const big = await postJob(service.url, { class: 1, padding: 'x'.repeat(20_000) });
    expect([big.status, ((await big.json()) as { type: string }).type]).toEqual([413, '/problems/body-too-large']);
  });

  it('404s unknown jobs, images, previews and routes, and explains its problem types', async () => {
    for (const path of ['/jobs/jnope', '/jobs/jnope/images/0', '/jobs/jnope/events', '/nowhere']) {
      const response = await fetch(`${service.url}${path}`);
      expect(response.status, path).toBe(404);
      expect(((await response.json()) as { type: string }).type).toBe('/problems/not-found');
    }
    const done = (await (await postJob(service.url, { class: 2, num_images: 1, steps: 1 })).json()) as { id: string };
    await waitForStatus(service.url, done.id, ['succeeded']);
    expect((await fetch(`${service.url}/jobs/${done.id}/images/1`)).status).toBe(404);
    expect((await fetch(`${service.url}/jobs/${done.id}/images/8`)).status).toBe(400);
    const about = (await (await fetch(`${service.url}/problems/queue-full`)).json()) as { status: number };
    expect(about.status).toBe(503);
  });
});

describe('GET /jobs/:id/events', () => {
  it('streams queued, started, progress per model call, a stage event with a preview per stage, then succeeded, and closes', async () => {
    const { id } = (await (await postJob(service.url, { class: 1, num_images: 1, steps: 2, seed: 5 })).json()) as { id: string };
    const response = await fetch(`${service.url}/jobs/${id}/events`);
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const { events, retry } = await readSse(response);
    expect(retry).toBe(2000);
    const names = events.map((e) => e.event);
    expect(names[0]).toBe('queued');
    expect(names[1]).toBe('started');
    expect(names.filter((n) => n === 'progress')).toHaveLength(8);
    expect(names.filter((n) => n === 'stage')).toHaveLength(4);
    expect(names.at(-1)).toBe('succeeded');
    const stage = events.find((e) => e.event === 'stage')?.data as { resolution: number; png_base64: string; url: string };
    expect(PNG.sync.read(Buffer.from(stage.png_base64, 'base64')).width).toBe(stage.resolution);
    expect((await fetch(`${service.url}${stage.url}`)).status).toBe(200);
    // Ids increase; reconnecting after the third event replays exactly the rest.
    const resumed = await readSse(await fetch(`${service.url}/jobs/${id}/events`, { headers: { 'last-event-id': events[2]?.id ?? '' } }));
    expect(resumed.events.map((e) => e.id)).toEqual(events.slice(3).map((e) => e.id));
    const bad = await fetch(`${service.url}/jobs/${id}/events`, { headers: { 'last-event-id': 'garbage' } });
    expect(bad.status).toBe(400);
  });
});

/** `promtool check metrics` (Debian's prometheus package) on a scrape: its exit status and what it said. */
function promtoolCheck(scrape: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.end(scrape);
  });
}

describe('metrics and the OpenAPI document', () => {
  it('serve scrapes that promtool accepts, from the API and from the worker', async () => {
    const worker = service.worker;
    if (!worker) throw new Error('the service runs a worker');
    for (const url of [`${service.url}/metrics`, `http://127.0.0.1:${worker.metricsPort}/metrics`]) {
      const scrape = await (await fetch(url)).text();
      expect(scrape, url).toContain('nodejs_active_handles{'); // the by-type gauges stay
      expect(await promtoolCheck(scrape), url).toEqual({ code: 0, output: '' });
    }
  });

  it('exports pixelflow_ metrics and documents every route', async () => {
    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    for (const name of ['pixelflow_http_request_duration_seconds', 'pixelflow_jobs_created_total', 'pixelflow_queue_jobs{state="waiting"}', 'pixelflow_sse_streams']) {
      expect(metrics).toContain(name);
    }
    const doc = (await (await fetch(`${service.url}/openapi.json`)).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/jobs', '/jobs/{id}', '/jobs/{id}/events', '/jobs/{id}/images/{n}', '/models', '/models/classes', '/healthz', '/readyz']),
    );
    expect((await fetch(`${service.url}/docs/`)).status).toBe(200);
  });
});
