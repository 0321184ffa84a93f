import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJob, readSse, startService, waitForStatus, type SseEvent, type TestService } from './support.ts';

// Last-Event-ID as Redis reads it and as EventSource sends it back, on the real API and Redis: an id
// that Redis would refuse (each part of a stream id is an unsigned 64-bit integer) is a 400 problem,
// not a stream of heartbeats that never ends; a stream resumed at or after a finished job's final
// event (what a browser sends when it reconnects after the last event) ends at once.

/** The largest stream id: both parts 2^64 - 1. Nothing can follow it. */
const LARGEST_ID = '18446744073709551615-18446744073709551615';
/** A stream that should end at once gets this long (generous); one that never ends fails. */
const ENDS_WITHIN_MS = 5000;

let service: TestService;
beforeAll(async () => {
  service = await startService();
});
afterAll(async () => {
  await service?.stop();
});

type Resume = { header: string } | { query: string } | null;

/** GET the job's events, resumed as `resume` says; aborted after ENDS_WITHIN_MS. */
function events(id: string, resume: Resume = null): Promise<Response> {
  const query = resume && 'query' in resume ? `?last_event_id=${encodeURIComponent(resume.query)}` : '';
  const headers: Record<string, string> = resume && 'header' in resume ? { 'last-event-id': resume.header } : {};
  return fetch(`${service.url}/jobs/${id}/events${query}`, { headers, signal: AbortSignal.timeout(ENDS_WITHIN_MS) });
}

async function queuedJob(): Promise<string> {
  const response = await postJob(service.url, { class: 1, num_images: 1, steps: 1 });
  expect(response.status).toBe(202);
  return ((await response.json()) as { id: string }).id;
}

/** A job canceled while it waited, and its whole stream (queued, canceled). */
async function canceledJob(): Promise<{ id: string; replay: SseEvent[] }> {
  const id = await queuedJob();
  expect((await fetch(`${service.url}/jobs/${id}`, { method: 'DELETE' })).status).toBe(200);
  const replay = (await readSse(await events(id))).events;
  expect(replay.map((e) => e.event)).toEqual(['queued', 'canceled']);
  return { id, replay };
}

/** The id just after `id`: same milliseconds, next sequence number. */
function after(id: string): string {
  const [ms, seq] = id.split('-');
  return `${ms}-${BigInt(seq ?? '') + 1n}`;
}

describe('Last-Event-ID outside what Redis accepts', () => {
  const TOO_LARGE = ['99999999999999999999-0', '18446744073709551616-0', '1-99999999999999999999999', '1-18446744073709551616', '18446744073709551616-18446744073709551616'];

  it.each(TOO_LARGE)('%s is a 400 validation problem naming last-event-id, as a header and as ?last_event_id=', async (tooLarge) => {
    const id = await queuedJob();
    // The same answer as for any other id this API cannot have sent.
    const garbage = (await (await events(id, { header: 'garbage' })).json()) as { errors: unknown[] };
    expect(garbage.errors).toEqual([{ path: 'last-event-id', message: expect.any(String) as string }]);
    for (const resume of [{ header: tooLarge }, { query: tooLarge }]) {
      const response = await events(id, resume);
      const what = JSON.stringify(resume);
      expect(response.status, what).toBe(400);
      expect(response.headers.get('content-type'), what).toContain('application/problem+json');
      const body = (await response.json()) as { type: string; detail: string; errors: { path: string; message: string }[] };
      expect(body.type, what).toBe('/problems/validation');
      expect(body.detail, what).toContain(tooLarge);
      expect(body.errors, what).toEqual(garbage.errors);
    }
  });

  it('takes the largest id Redis accepts: a finished job’s stream resumed there ends at once, with nothing to send', async () => {
    const { id } = await canceledJob();
    for (const resume of [{ header: LARGEST_ID }, { query: LARGEST_ID }]) {
      const response = await events(id, resume);
      expect(response.status).toBe(200);
      expect((await readSse(response)).events).toEqual([]);
    }
  });

  it('keeps a waiting job’s stream resumed past all its events open, then ends it when the job ends', async () => {
    const id = await queuedJob();
    const response = await events(id, { header: LARGEST_ID });
    expect(response.status).toBe(200);
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = '';
    // Open for two heartbeats (SSE_HEARTBEAT_MS is 200 ms here): it waits for the job.
    while ((text.match(/^: heartbeat$/gm) ?? []).length < 2) {
      const chunk = await reader.read();
      expect(chunk.done, 'the stream ended before the job did').toBe(false);
      text += decoder.decode(chunk.value, { stream: true });
    }
    expect((await fetch(`${service.url}/jobs/${id}`, { method: 'DELETE' })).status).toBe(200);
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) text += decoder.decode(chunk.value, { stream: true });
    // Its canceled event comes before the id it was resumed from: nothing is sent, and the stream ends.
    expect(text).not.toContain('event:');
  });
});

describe('a finished job’s stream resumed from its final event', () => {
  it('ends at once when the job was canceled, from the final event or any id after it, as a header or ?last_event_id=', async () => {
    const { id, replay } = await canceledJob();
    const final = replay.at(-1)?.id ?? '';
    for (const cursor of [final, after(final)]) {
      for (const resume of [{ header: cursor }, { query: cursor }]) {
        const response = await events(id, resume);
        expect(response.status, JSON.stringify(resume)).toBe(200);
        expect((await readSse(response)).events, JSON.stringify(resume)).toEqual([]);
      }
    }
    // From the event before it: the final event alone, then the end.
    const fromQueued = await readSse(await events(id, { header: replay[0]?.id ?? '' }));
    expect(fromQueued.events).toEqual([replay[1]]);
  });

  it('ends at once when the job succeeded (a worker ran it)', async () => {
    await service.startWorker();
    const id = await queuedJob();
    await waitForStatus(service.url, id, ['succeeded']);
    const replay = (await readSse(await events(id))).events;
    expect(replay.at(-1)?.event).toBe('succeeded');
    const resumed = await readSse(await events(id, { header: replay.at(-1)?.id ?? '' }));
    expect(resumed.events).toEqual([]);
    expect(resumed.retry).toBe(2000);
  });
});
