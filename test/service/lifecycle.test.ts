import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJob, readSse, startService, waitForStatus, type TestService } from './support.ts';

// Readiness, the queue cap, cancellation and SSE streams that clients leave, in the order a
// service lives them: first with no worker (jobs wait), then with one.

let service: TestService;
beforeAll(async () => {
  service = await startService({ worker: false, env: { QUEUE_CAP: '3' } });
});
afterAll(async () => {
  await service.stop();
});

async function json(response: Response): Promise<Record<string, unknown>> {
  return (await response.json()) as Record<string, unknown>;
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${service.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1] ?? NaN);
}

describe('without a worker', () => {
  it('is alive but not ready, and says why', async () => {
    expect((await fetch(`${service.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${service.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.headers.get('retry-after')).toBe('5');
    expect(await json(ready)).toMatchObject({ type: '/problems/service-unavailable', detail: expect.stringContaining('no worker with the model tiny-random') });
    const models = await json(await fetch(`${service.url}/models`));
    expect(models['models']).toEqual([expect.objectContaining({ name: 'tiny-random', status: 'unavailable', provider: null, workers: 0, classes: 10 })]);
    const classes = await json(await fetch(`${service.url}/models/classes`));
    expect((classes['classes'] as unknown[])[3]).toEqual({ index: 3, name: 'class 3' });
  });

  it('queues jobs with their position, cancels a queued one at once, and refuses a second cancel', async () => {
    const first = await json(await postJob(service.url, { class: 1, num_images: 1, steps: 1 }));
    const second = await json(await postJob(service.url, { class: 2, num_images: 1, steps: 1 }));
    expect([first['queue_position'], second['queue_position']]).toEqual([1, 2]);
    const canceled = await fetch(`${service.url}/jobs/${String(first['id'])}`, { method: 'DELETE' });
    expect(canceled.status).toBe(200);
    expect(await json(canceled)).toMatchObject({ status: 'canceled', queue_position: null });
    expect((await json(await fetch(`${service.url}/jobs/${String(second['id'])}`)))['queue_position']).toBe(1);
    const again = await fetch(`${service.url}/jobs/${String(first['id'])}`, { method: 'DELETE' });
    expect(again.status).toBe(409);
    expect((await json(again))['type']).toBe('/problems/job-finished');
    // Its stream replays what happened and closes.
    const { events } = await readSse(await fetch(`${service.url}/jobs/${String(first['id'])}/events`));
    expect(events.map((e) => e.event)).toEqual(['queued', 'canceled']);
    expect((await fetch(`${service.url}/jobs/jnope`, { method: 'DELETE' })).status).toBe(404);
  });

  it('answers 503 with Retry-After when the queue is at its cap', async () => {
    await postJob(service.url, { class: 3, num_images: 1, steps: 1 });
    await postJob(service.url, { class: 4, num_images: 1, steps: 1 });
    const full = await postJob(service.url, { class: 5, num_images: 1, steps: 1 });
    expect(full.status).toBe(503);
    expect(Number(full.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await json(full)).toMatchObject({ type: '/problems/queue-full', status: 503 });
  });
});

describe('with a worker', () => {
  it('becomes ready, and the waiting jobs run', async () => {
    await service.startWorker();
    await expect.poll(async () => (await fetch(`${service.url}/readyz`)).status, { timeout: 10_000, interval: 100 }).toBe(200);
    const models = await json(await fetch(`${service.url}/models`));
    expect(models['models']).toEqual([expect.objectContaining({ status: 'ready', provider: 'cpu', workers: 1 })]);
    // The worker takes several at once: wait until none waits or runs (the queue cap is 3).
    for (const list of ['wait', 'active']) {
      await expect.poll(async () => await service.redis.llen(`${service.prefix}:generate:${list}`), { timeout: 30_000, interval: 100 }).toBe(0);
    }
  });

  it('stops a running job within a model call on DELETE, keeping its previews, and ends its stream', async () => {
    const job = await json(await postJob(service.url, { class: 6, num_images: 8, steps: 100 }));
    const id = String(job['id']);
    const stream = fetch(`${service.url}/jobs/${id}/events`).then(readSse);
    await expect.poll(async () => ((await json(await fetch(`${service.url}/jobs/${id}`)))['previews'] as unknown[]).length, { timeout: 30_000, interval: 20 }).toBeGreaterThan(0);
    const response = await fetch(`${service.url}/jobs/${id}`, { method: 'DELETE' });
    expect(response.status).toBe(202);
    const done = await waitForStatus(service.url, id, ['canceled', 'succeeded'], 10_000);
    expect(done['status']).toBe('canceled');
    expect((done['previews'] as unknown[]).length).toBeGreaterThan(0);
    expect((done['progress'] as { step: number }).step).toBeLessThan(400);
    expect(done['result']).toBeNull();
    const { events } = await stream;
    expect(events.at(-1)?.event).toBe('canceled');
  });

  it('reports an ETA for a running job from measured throughput, and frees a stream its client leaves', async () => {
    const job = await json(await postJob(service.url, { class: 7, num_images: 8, steps: 100 }));
    const id = String(job['id']);
    const controller = new AbortController();
    const response = await fetch(`${service.url}/jobs/${id}/events`, { signal: controller.signal });
    const reader = response.body?.getReader();
    await reader?.read();
    expect(await metric('pixelflow_sse_streams')).toBe(1);
    const running = await waitForStatus(service.url, id, ['running']);
    expect(running['eta_seconds']).toEqual(expect.any(Number));
    controller.abort();
    await expect.poll(() => metric('pixelflow_sse_streams'), { timeout: 5000, interval: 50 }).toBe(0);
    await fetch(`${service.url}/jobs/${id}`, { method: 'DELETE' });
    await waitForStatus(service.url, id, ['canceled', 'succeeded'], 10_000);
  });
});

describe('without Redis', () => {
  it('starts, stays alive, is not ready, and answers job routes with 503 at once', async () => {
    const down = await startService({ worker: false, env: { REDIS_URL: 'redis://127.0.0.1:1' } });
    try {
      expect((await fetch(`${down.url}/healthz`)).status).toBe(200);
      const ready = await fetch(`${down.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as { detail: string }).detail).toMatch(/^the job store \(Redis\) is unreachable/);
      const post = await postJob(down.url, { class: 1 });
      expect(post.status).toBe(503);
      expect(post.headers.get('retry-after')).toBe('5');
      expect(((await post.json()) as { type: string }).type).toBe('/problems/service-unavailable');
    } finally {
      await down.stop();
    }
  });
});
