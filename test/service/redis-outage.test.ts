import { describe, expect, it } from 'vitest';
import { startPrivateRedis, type PrivateRedis } from '../../packages/queue/test/support/redis-server.ts';
import { postJob, startService } from './support.ts';

// The real API on a Redis of its own that goes away, killed (connections refused at once) or frozen
// (SIGSTOP: connections stay open and nothing answers, as with a hung Redis or a cut network): the
// routes that need Redis answer a 503 problem with Retry-After at once, /readyz says so in our words,
// and /metrics still answers with what the process knows. Watched long enough for ioredis's
// reconnection delay to reach its cap, where a request that waited for the connection took 10 s.

/** Each answer's bound: generous on this machine; what it guards against took 2 s, 10 s or for ever. */
const ANSWERS_WITHIN_MS = 1500;
/** Long enough for the reconnection delay (50 ms doubling to 5 s) to reach its cap. */
const WATCHED_MS = 12_000;
const UNKNOWN_JOB = `j${'0'.repeat(24)}`;

interface Answer {
  status: number;
  headers: Headers;
  body: string;
  ms: number;
}

async function timed(url: string, init: RequestInit = {}): Promise<Answer> {
  const started = performance.now();
  // Aborted well past the bound, so that a request that hangs fails the test instead of stalling it.
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(15_000) });
  const body = await response.text();
  return { status: response.status, headers: response.headers, body, ms: performance.now() - started };
}

/** The sample of `name` in a scrape (no labels), or null. */
function sample(scrape: string, name: string): number | null {
  const line = scrape.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? null : Number(line.slice(name.length + 1));
}

/** A 503 service-unavailable problem with Retry-After; its detail. */
function unavailable(answer: Answer, what: string): string {
  expect(answer.status, what).toBe(503);
  expect(answer.headers.get('content-type'), what).toContain('application/problem+json');
  expect(Number(answer.headers.get('retry-after')), what).toBeGreaterThan(0);
  const problem = JSON.parse(answer.body) as { type: string; detail: string };
  expect(problem.type, what).toBe('/problems/service-unavailable');
  return problem.detail;
}

const OUTAGES: [string, (redis: PrivateRedis) => Promise<void> | void][] = [
  ['killed', (redis) => redis.kill()],
  ['frozen (SIGSTOP)', (redis) => redis.freeze()],
];

describe.each(OUTAGES)('with Redis %s', (kind, outage) => {
  it(`answers within ${ANSWERS_WITHIN_MS} ms, from the first request on: 503 where Redis is needed, /metrics with redis_up 0`, { timeout: 90_000 }, async () => {
    const redis = await startPrivateRedis();
    const service = await startService({ env: { REDIS_URL: redis.url } });
    try {
      expect((await timed(`${service.url}/models`)).status).toBe(200);
      expect(sample((await timed(`${service.url}/metrics`)).body, 'pixelflow_redis_up')).toBe(1);
      await outage(redis);

      const slowest = new Map<string, number>();
      const probes: [string, () => Promise<Answer>, (answer: Answer) => void][] = [
        ['GET /models', () => timed(`${service.url}/models`), (a) => void unavailable(a, 'GET /models')],
        ['GET /jobs/:id', () => timed(`${service.url}/jobs/${UNKNOWN_JOB}`), (a) => void unavailable(a, 'GET /jobs/:id')],
        [
          'POST /jobs',
          async () => {
            const started = performance.now();
            const response = await postJob(service.url, { class: 1 });
            return { status: response.status, headers: response.headers, body: await response.text(), ms: performance.now() - started };
          },
          (a) => void unavailable(a, 'POST /jobs'),
        ],
        [
          'GET /readyz',
          () => timed(`${service.url}/readyz`),
          (a) => {
            // In our words, the same as every route that needs Redis: ioredis's text stays in the log.
            const detail = unavailable(a, 'GET /readyz');
            expect(detail).toContain('the job store (Redis) is unreachable');
            expect(detail).not.toMatch(/ECONNREFUSED|ETIMEDOUT|max retries|maxRetriesPerRequest|Connection is closed|Socket timeout|no answer from Redis|127\.0\.0\.1|:\d{4,5}/i);
          },
        ],
        [
          'GET /metrics',
          () => timed(`${service.url}/metrics`),
          (a) => {
            expect(a.status, 'GET /metrics').toBe(200);
            expect(sample(a.body, 'pixelflow_redis_up'), 'GET /metrics').toBe(0);
            // The process's own metrics are still there.
            expect(sample(a.body, 'pixelflow_api_process_resident_memory_bytes'), 'GET /metrics').toBeGreaterThan(0);
          },
        ],
      ];
      // The first request after a freeze is the one that waits for the connection to give up.
      const first = await timed(`${service.url}/jobs/${UNKNOWN_JOB}`);
      const jobRouteDetail = unavailable(first, 'GET /jobs/:id');
      slowest.set('GET /jobs/:id', first.ms);
      expect(unavailable(await timed(`${service.url}/readyz`), 'GET /readyz')).toBe(jobRouteDetail);
      const until = Date.now() + WATCHED_MS;
      do {
        for (const [what, request, check] of probes) {
          const answer = await request();
          check(answer);
          slowest.set(what, Math.max(slowest.get(what) ?? 0, answer.ms));
        }
        await new Promise((resolve) => setTimeout(resolve, 250));
      } while (Date.now() < until);
      for (const [what, ms] of slowest) expect(ms, `${what}, slowest answer with Redis ${kind}`).toBeLessThan(ANSWERS_WITHIN_MS);

      if (kind.startsWith('frozen')) {
        // Back once Redis answers again (within the reconnection delay's cap).
        redis.thaw();
        await expect.poll(async () => (await timed(`${service.url}/models`)).status, { timeout: 15_000, interval: 200 }).toBe(200);
        expect(sample((await timed(`${service.url}/metrics`)).body, 'pixelflow_redis_up')).toBe(1);
      }
    } finally {
      await service.stop().catch(() => undefined);
      await redis.kill();
    }
  });
});

describe('an event stream open while Redis is frozen', () => {
  it('keeps its client with heartbeats and, once Redis is back, follows the job again to its end', { timeout: 60_000 }, async () => {
    const redis = await startPrivateRedis();
    const service = await startService({ env: { REDIS_URL: redis.url } });
    try {
      const { id } = (await (await postJob(service.url, { class: 1 })).json()) as { id: string };
      const response = await fetch(`${service.url}/jobs/${id}/events`, { signal: AbortSignal.timeout(30_000) });
      const reader = (response.body as ReadableStream<Uint8Array>).getReader();
      const decoder = new TextDecoder();
      let text = '';
      const heartbeats = (): number => (text.match(/^: heartbeat$/gm) ?? []).length;
      const readUntil = async (done: () => boolean): Promise<void> => {
        while (!done()) {
          const chunk = await reader.read();
          expect(chunk.done, 'the stream ended early').toBe(false);
          text += decoder.decode(chunk.value, { stream: true });
        }
      };
      await readUntil(() => text.includes('event: queued'));
      redis.freeze();
      // Through the outage, well past the connection's silence limit (SSE_HEARTBEAT_MS is 200 ms here).
      const before = heartbeats();
      await readUntil(() => heartbeats() >= before + 8);
      redis.thaw();
      await expect.poll(async () => (await fetch(`${service.url}/jobs/${id}`, { method: 'DELETE' })).status, { timeout: 15_000, interval: 200 }).toBe(200);
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) text += decoder.decode(chunk.value, { stream: true });
      expect([...text.matchAll(/^event: (\w+)$/gm)].map((m) => m[1])).toEqual(['queued', 'canceled']);
    } finally {
      await service.stop().catch(() => undefined);
      await redis.kill();
    }
  });
});
