import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJob, startService, type TestService } from './support.ts';

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
