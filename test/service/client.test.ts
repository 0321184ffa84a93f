import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiProblem, createApiClient, dataOf, followJobEvents, type JobEvent } from '@pixelflow/client';
import { CLIENT_TYPES_FILE, clientTypesOf } from '../../scripts/generate-client.ts';
import { startService, type TestService } from './support.ts';

// The generated client against the real service: its committed types are what regenerating from
// the live server's document gives, its calls work end to end, and its event stream resumes after
// a connection cut in the middle of a job.

let service: TestService;
beforeAll(async () => {
  service = await startService({ worker: true });
});
afterAll(async () => {
  await service.stop();
});

async function collect(events: AsyncIterable<JobEvent>): Promise<JobEvent[]> {
  const all: JobEvent[] = [];
  for await (const event of events) all.push(event);
  return all;
}

/**
 * A TCP proxy to the API that cuts the first event stream once it has passed `cutAfter`: what a
 * load balancer's idle timeout or a network blip does to a long-lived response.
 */
async function cuttingProxy(target: URL, cutAfter: string): Promise<{ url: string; cuts: number; close(): Promise<void> }> {
  const state = { cuts: 0 };
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    let request = '';
    let seen = '';
    client.on('data', (chunk: Buffer) => {
      request += chunk.toString('latin1');
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      client.write(chunk);
      seen += chunk.toString('latin1');
      if (state.cuts === 0 && request.includes('/events') && seen.includes(cutAfter)) {
        state.cuts += 1;
        client.destroy();
        upstream.destroy();
      }
    });
    for (const socket of [client, upstream]) socket.on('error', () => undefined).on('close', () => (client.destroy(), upstream.destroy()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${address.port}`,
    get cuts() {
      return state.cuts;
    },
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

describe('packages/client', () => {
  it('is generated from the document the live server publishes (pnpm client:generate leaves no difference)', async () => {
    const document = (await (await fetch(`${service.url}/openapi.json`)).json()) as object;
    expect(await clientTypesOf(document)).toBe(await readFile(CLIENT_TYPES_FILE, 'utf8'));
  });

  it('creates a job, follows its events to the end, and downloads its images with the sha256 the job reports', async () => {
    const api = createApiClient(service.url, { headers: { 'x-request-id': 'client-test-1' } });
    const created = await api.POST('/jobs', { body: { class: 2, num_images: 2, seed: 7, steps: 2 } });
    expect(created.response.status).toBe(202);
    expect(created.response.headers.get('x-request-id')).toBe('client-test-1');
    const job = created.data!;
    const events = await collect(followJobEvents(service.url, job.id));
    expect(events[0]?.event).toBe('queued');
    const final = events.at(-1)!;
    expect(final.event).toBe('succeeded');
    if (final.event !== 'succeeded') return;
    expect(events.filter((e) => e.event === 'progress').map((e) => e.event === 'progress' && e.data.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const done = await dataOf(api.GET('/jobs/{id}', { params: { path: { id: job.id } } }));
    expect(done.status).toBe('succeeded');
    expect(done.result?.images).toEqual(final.data.images);
    for (const [n, image] of final.data.images.entries()) {
      const png = await dataOf(api.GET('/jobs/{id}/images/{n}', { params: { path: { id: job.id, n: String(n) } }, parseAs: 'arrayBuffer' }));
      expect(createHash('sha256').update(Buffer.from(png)).digest('hex')).toBe(image.sha256);
    }
  });

  it('turns error responses into ApiProblem with the problem type, status and Retry-After', async () => {
    const api = createApiClient(service.url);
    const missing = await dataOf(api.GET('/jobs/{id}', { params: { path: { id: `j${'0'.repeat(24)}` } } })).catch((error: unknown) => error);
    expect(missing).toBeInstanceOf(ApiProblem);
    expect(missing).toMatchObject({ status: 404, kind: 'not-found' });
    const invalid = await dataOf(api.POST('/jobs', { body: { class: 'zebra' } })).catch((error: unknown) => error);
    expect(invalid).toMatchObject({ status: 400, kind: 'validation', problem: { errors: [{ path: 'class' }] } });
    await expect(collect(followJobEvents(service.url, `j${'0'.repeat(24)}`))).rejects.toMatchObject({ status: 404 });
  });

  it('resumes after Last-Event-ID: only later events', async () => {
    const api = createApiClient(service.url);
    const job = await dataOf(api.POST('/jobs', { body: { class: 3, num_images: 1, steps: 1 } }));
    const all = await collect(followJobEvents(service.url, job.id));
    const middle = all[Math.floor(all.length / 2)]!;
    const rest = await collect(followJobEvents(service.url, job.id, { lastEventId: middle.id }));
    expect(rest).toEqual(all.slice(all.indexOf(middle) + 1));
  });

  it('resumes a stream cut mid-job where it was cut: every event once, in order', async () => {
    const proxy = await cuttingProxy(new URL(service.url), 'event: progress');
    try {
      const api = createApiClient(service.url);
      const job = await dataOf(api.POST('/jobs', { body: { class: 4, num_images: 4, steps: 20 } }));
      const states: string[] = [];
      const followed = await collect(followJobEvents(proxy.url, job.id, { onConnection: (state) => states.push(state), maxBackoffMs: 200 }));
      expect(proxy.cuts).toBe(1);
      expect(states.slice(0, 3)).toEqual(['open', 'lost', 'open']);
      const direct = await collect(followJobEvents(service.url, job.id));
      expect(followed).toEqual(direct);
      expect(followed.at(-1)?.event).toBe('succeeded');
    } finally {
      await proxy.close();
    }
  });
});
