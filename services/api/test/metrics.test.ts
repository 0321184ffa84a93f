import type { QueueDepth } from '@pixelflow/queue';
import { describe, expect, it } from 'vitest';
import { ApiMetrics, REDIS_SCRAPE_TIMEOUT_MS } from '../src/metrics.ts';

// The queue-side gauges of the API's scrape, on a job service that answers, fails or hangs: one
// read of Redis per scrape, and a scrape that still answers (pixelflow_redis_up 0) when Redis does not.

/** The scrape's sample lines for `name` (no HELP or TYPE). */
function samples(scrape: string, name: string): string[] {
  return scrape.split('\n').filter((line) => line.startsWith(`${name} `) || line.startsWith(`${name}{`));
}

describe('ApiMetrics: the queue and Redis at scrape time', () => {
  it('reads the queue once per scrape and reports it with pixelflow_redis_up 1', async () => {
    let reads = 0;
    const metrics = new ApiMetrics({
      connected: () => true,
      depth: async (): Promise<QueueDepth> => {
        reads += 1;
        return { waiting: 7, active: 2 };
      },
    });
    const scrape = await metrics.registry.metrics();
    expect(samples(scrape, 'pixelflow_queue_jobs')).toEqual(['pixelflow_queue_jobs{state="waiting"} 7', 'pixelflow_queue_jobs{state="active"} 2']);
    expect(samples(scrape, 'pixelflow_redis_up')).toEqual(['pixelflow_redis_up 1']);
    expect(reads).toBe(1);
    await metrics.registry.metrics();
    expect(reads).toBe(2); // a later scrape reads again
  });

  it('answers with pixelflow_redis_up 0 and no queue series (not a false 0) when the read fails', async () => {
    let fail = false;
    const metrics = new ApiMetrics({
      connected: () => true,
      depth: async () => {
        if (fail) throw new Error('Connection is closed.');
        return { waiting: 3, active: 1 };
      },
    });
    expect(samples(await metrics.registry.metrics(), 'pixelflow_queue_jobs')).toHaveLength(2);
    fail = true;
    const scrape = await metrics.registry.metrics();
    expect(samples(scrape, 'pixelflow_queue_jobs')).toEqual([]);
    expect(scrape).toContain('# TYPE pixelflow_queue_jobs gauge');
    expect(samples(scrape, 'pixelflow_redis_up')).toEqual(['pixelflow_redis_up 0']);
  });

  it('gives up on a Redis that does not answer after REDIS_SCRAPE_TIMEOUT_MS, rather than failing the scrape', async () => {
    const metrics = new ApiMetrics({ connected: () => true, depth: () => new Promise<QueueDepth>(() => undefined) });
    const started = performance.now();
    const scrape = await metrics.registry.metrics();
    const elapsed = performance.now() - started;
    expect(samples(scrape, 'pixelflow_redis_up')).toEqual(['pixelflow_redis_up 0']);
    expect(elapsed).toBeGreaterThanOrEqual(REDIS_SCRAPE_TIMEOUT_MS - 50);
  });

  it('does not even ask Redis while the connection is down', async () => {
    let reads = 0;
    const metrics = new ApiMetrics({
      connected: () => false,
      depth: async () => {
        reads += 1;
        return { waiting: 1, active: 0 };
      },
    });
    const scrape = await metrics.registry.metrics();
    expect(samples(scrape, 'pixelflow_redis_up')).toEqual(['pixelflow_redis_up 0']);
    expect(samples(scrape, 'pixelflow_queue_jobs')).toEqual([]);
    expect(reads).toBe(0);
  });

  it('says in the help that replicas report the same queue, to be aggregated with max()', async () => {
    const metrics = new ApiMetrics({ connected: () => true, depth: async () => ({ waiting: 0, active: 0 }) });
    expect(await metrics.registry.metrics()).toMatch(/^# HELP pixelflow_queue_jobs .*max\(\), never sum\(\)$/m);
  });
});
