import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiKeys, keys as makeKeys } from '@pixelflow/queue';
import { readSse, startService, type TestService } from './support.ts';

// AUTH=on isolation over real HTTP, the real worker and Redis: a job belongs to the key that made
// it; any other key gets the very 404 an unknown id gets on every route of the job, and cannot
// cancel it; an admin key reads and cancels any job.

let service: TestService;
const key: Record<'alice' | 'bob' | 'admin', string> = { alice: '', bob: '', admin: '' };
let done: string;
let waiting: string;

const as = (who: keyof typeof key, init: RequestInit = {}): RequestInit => ({ ...init, headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${key[who]}` } });

async function create(who: keyof typeof key, body: unknown): Promise<string> {
  const response = await fetch(`${service.url}/jobs`, as(who, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }));
  expect(response.status).toBe(202);
  return ((await response.json()) as { id: string }).id;
}

async function statusOf(who: keyof typeof key, id: string): Promise<string> {
  return ((await (await fetch(`${service.url}/jobs/${id}`, as(who))).json()) as { status: string }).status;
}

beforeAll(async () => {
  service = await startService({ env: { AUTH: 'on' } });
  const store = new ApiKeys(service.redis, makeKeys(service.prefix));
  for (const who of ['alice', 'bob', 'admin'] as const) key[who] = (await store.create({ name: who, admin: who === 'admin', ratePerMinute: null, maxActive: null })).key;
  // One job that ran to the end (images and previews exist), then one that stays queued (no worker).
  done = await create('alice', { class: 1, num_images: 1, steps: 1, seed: 3 });
  await service.startWorker();
  // Generous: the worker loads its model first, on a 2-core machine that CI shares.
  const deadline = Date.now() + 90_000;
  while ((await statusOf('alice', done)) !== 'succeeded') {
    if (Date.now() > deadline) throw new Error(`job ${done} did not succeed in 90 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await service.worker?.stop();
  service.worker = null;
  waiting = await create('alice', { class: 2, num_images: 1, steps: 1 });
}, 120_000);
afterAll(async () => {
  await service.stop();
});

const routes = (id: string): [string, string][] => [
  ['GET', `/jobs/${id}`],
  ['GET', `/jobs/${id}/events`],
  ['GET', `/jobs/${id}/images/0`],
  ['GET', `/jobs/${id}/previews/0`],
  ['DELETE', `/jobs/${id}`],
];

describe('jobs of another key', () => {
  it('are 404 on every route, 1,000 probes, exactly as an unknown id, and a cancel changes nothing', async () => {
    const probes = [...routes(done), ...routes(waiting)];
    const all = Array.from({ length: 1000 }, (_, i) => probes[i % probes.length] as [string, string]);
    let notFound = 0;
    for (let start = 0; start < all.length; start += 25) {
      await Promise.all(
        all.slice(start, start + 25).map(async ([method, path]) => {
          const response = await fetch(`${service.url}${path}`, as('bob', { method }));
          const body = (await response.json()) as Record<string, unknown>;
          const id = path.split('/')[2] as string;
          expect({ status: response.status, type: response.headers.get('content-type') }).toEqual({ status: 404, type: 'application/problem+json; charset=utf-8' });
          expect(body).toEqual({ type: '/problems/not-found', title: 'Not found', status: 404, detail: `no job "${id}" (finished jobs are deleted after their retention period)`, instance: path });
          expect(response.headers.get('etag')).toBeNull();
          notFound += 1;
        }),
      );
    }
    expect(notFound).toBe(1000);
    // The same answer as an id never issued.
    const unknown = 'j0123456789abcdef01234567';
    const never = (await (await fetch(`${service.url}/jobs/${unknown}`, as('bob'))).json()) as Record<string, unknown>;
    const owned = (await (await fetch(`${service.url}/jobs/${done}`, as('bob'))).json()) as Record<string, unknown>;
    expect(JSON.stringify(owned).replaceAll(done, unknown)).toBe(JSON.stringify(never));
    expect(await statusOf('alice', waiting)).toBe('queued');
  }, 120_000);

  it('are the owner’s on every route', async () => {
    expect((await fetch(`${service.url}/jobs/${done}`, as('alice'))).status).toBe(200);
    expect((await fetch(`${service.url}/jobs/${done}/images/0`, as('alice'))).status).toBe(200);
    expect((await fetch(`${service.url}/jobs/${done}/previews/0`, as('alice'))).status).toBe(200);
    const { events } = await readSse(await fetch(`${service.url}/jobs/${done}/events`, as('alice')));
    expect(events.at(-1)?.event).toBe('succeeded');
  });

  it('are an admin key’s to read and cancel', async () => {
    expect((await fetch(`${service.url}/jobs/${done}`, as('admin'))).status).toBe(200);
    expect((await fetch(`${service.url}/jobs/${done}/images/0`, as('admin'))).status).toBe(200);
    const { events } = await readSse(await fetch(`${service.url}/jobs/${done}/events`, as('admin')));
    expect(events.at(-1)?.event).toBe('succeeded');
    const canceled = await fetch(`${service.url}/jobs/${waiting}`, as('admin', { method: 'DELETE' }));
    expect(canceled.status).toBe(200);
    expect(await statusOf('alice', waiting)).toBe('canceled');
  });

  it('created by the admin key are not another key’s', async () => {
    const own = await create('admin', { class: 3, num_images: 1, steps: 1 });
    expect((await fetch(`${service.url}/jobs/${own}`, as('alice'))).status).toBe(404);
    expect((await fetch(`${service.url}/jobs/${own}`, as('admin', { method: 'DELETE' }))).status).toBe(200);
  });
});
