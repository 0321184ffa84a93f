import type { JobEvent } from '@pixelflow/schemas';
import { bearer } from './client.ts';
import { ApiUnreachable, problemOf } from './problems.ts';

// A job's Server-Sent Events as an async iterator of typed events, over fetch (Node and browsers
// alike). A dropped connection is resumed with Last-Event-ID, so no event is missed or repeated;
// 503s (Redis away) are waited out as the server's Retry-After says; the iterator ends after the
// job's final event. Other errors (the job does not exist, or expired) end it with an ApiProblem.

export type { JobEvent };
export type JobEventName = JobEvent['event'];

const FINAL_EVENTS: ReadonlySet<JobEventName> = new Set(['succeeded', 'failed', 'canceled'] satisfies JobEventName[]);

export interface FollowOptions {
  /** Resume after this event: only later ones are read. */
  lastEventId?: string;
  signal?: AbortSignal;
  /** Another fetch (tests, proxies); the global one by default. */
  fetch?: typeof fetch;
  headers?: Record<string, string>;
  /** An API key, sent as `Authorization: Bearer <key>` (AUTH=on). */
  apiKey?: string;
  /** Called when a connection opens and when one is lost (before it is resumed). */
  onConnection?: (state: 'open' | 'lost') => void;
  /** The longest wait between reconnections, in ms (the waits double from the server's retry). */
  maxBackoffMs?: number;
}

function delay(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    }, { once: true });
  });
}

/** One block of the stream (the lines up to a blank line) as its fields; comments dropped. */
function fieldsOf(block: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    // Several data lines make one value, joined by newlines (the SSE rules).
    fields.set(name, name === 'data' && fields.has('data') ? `${fields.get('data')}\n${value}` : value);
  }
  return fields;
}

/** Yields the blocks of an event stream's body as they complete. */
async function* blocksOf(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffered = '';
  const reader = body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffered += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
      let end: number;
      while ((end = buffered.indexOf('\n\n')) >= 0) {
        yield buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
      }
    }
  } finally {
    reader.releaseLock();
  }
}

export async function* followJobEvents(baseUrl: string, jobId: string, options: FollowOptions = {}): AsyncGenerator<JobEvent> {
  const send = options.fetch ?? globalThis.fetch;
  const url = `${baseUrl.replace(/\/+$/, '')}/jobs/${encodeURIComponent(jobId)}/events`;
  const maxBackoffMs = options.maxBackoffMs ?? 10_000;
  let lastEventId = options.lastEventId;
  let retryMs = 2000;
  let failures = 0;
  for (;;) {
    let response: Response;
    try {
      const headers: Record<string, string> = { accept: 'text/event-stream', ...options.headers, ...bearer(options.apiKey) };
      if (lastEventId !== undefined) headers['last-event-id'] = lastEventId;
      response = await send(url, { headers, ...(options.signal ? { signal: options.signal } : {}) });
    } catch (error) {
      if (options.signal?.aborted) throw error;
      if (failures >= 3) throw new ApiUnreachable(`cannot reach ${new URL(url, 'http://localhost').origin} (${(error as Error).message})`, { cause: error });
      await delay(Math.min(maxBackoffMs, retryMs * 2 ** failures++), options.signal);
      continue;
    }
    if (!response.ok || !response.body) {
      const problem = problemOf(response, await response.json().catch(() => null));
      if (response.status !== 503) throw problem;
      options.onConnection?.('lost');
      await delay(problem.retryAfterSeconds !== null ? problem.retryAfterSeconds * 1000 : Math.min(maxBackoffMs, retryMs * 2 ** failures++), options.signal);
      continue;
    }
    failures = 0;
    options.onConnection?.('open');
    try {
      for await (const block of blocksOf(response.body)) {
        const fields = fieldsOf(block);
        const retry = fields.get('retry');
        if (retry !== undefined && /^\d+$/.test(retry)) retryMs = Number(retry);
        const name = fields.get('event');
        if (name === undefined) continue;
        const id = fields.get('id') ?? '';
        if (id !== '') lastEventId = id;
        const event = { id, event: name, data: JSON.parse(fields.get('data') ?? 'null') as unknown } as JobEvent;
        yield event;
        if (FINAL_EVENTS.has(event.event)) return;
      }
    } catch (error) {
      if (options.signal?.aborted) throw error;
      // A connection cut mid-stream: resumed below, like one the server ended early.
    }
    options.onConnection?.('lost');
    await delay(Math.min(maxBackoffMs, retryMs * 2 ** failures++), options.signal);
  }
}
