import type { VelocityModel } from '@pixelflow/sampler';
import { describe, expect, it } from 'vitest';
import { REDIS_SCRAPE_TIMEOUT_MS, WorkerMetrics } from '../src/metrics.ts';

describe('WorkerMetrics.timeModelCalls', () => {
  it('observes each call from its start to its velocity, by input resolution, and nothing between calls', async () => {
    let clock = 0;
    const model: VelocityModel = {
      predict: async (x) => {
        clock += 40; // the call itself takes 40 ms
        return x;
      },
    };
    const metrics = new WorkerMetrics();
    const timed = metrics.timeModelCalls(model, () => clock);
    const shape = [2, 3, 16, 16] as const;
    const x = new Float32Array(2 * 3 * 16 * 16);
    await timed.predict(x, shape, new Float32Array(2), new BigInt64Array(2));
    clock += 500; // the sampler's own work and progress writes before the next call
    await timed.predict(x, [2, 3, 8, 8], new Float32Array(2), new BigInt64Array(2));

    const values = (await metrics.modelCall.get()).values;
    const sum = (resolution: number) => values.find((v) => v.metricName === 'pixelflow_model_call_seconds_sum' && v.labels.resolution === resolution)?.value;
    const count = (resolution: number) => values.find((v) => v.metricName === 'pixelflow_model_call_seconds_count' && v.labels.resolution === resolution)?.value;
    expect([sum(16), count(16), sum(8), count(8)]).toEqual([0.04, 1, 0.04, 1]);
  });

  it('observes a call that fails, and passes its error on', async () => {
    const metrics = new WorkerMetrics();
    const failing: VelocityModel = { predict: () => Promise.reject(new Error('session gone')) };
    const timed = metrics.timeModelCalls(failing, () => 0);
    await expect(timed.predict(new Float32Array(3), [1, 3, 1, 1], new Float32Array(1), new BigInt64Array(1))).rejects.toThrow('session gone');
    const values = (await metrics.modelCall.get()).values;
    expect(values.find((v) => v.metricName === 'pixelflow_model_call_seconds_count')?.value).toBe(1);
  });

  it("observes onnxruntime's own time of each call by resolution and batch, when the model keeps it", async () => {
    let runMs = 0;
    const model = {
      predict: async (x: Float32Array) => {
        runMs += 7; // onnxruntime's part of this call
        return x;
      },
      stats: () => ({ runMs }),
    };
    const metrics = new WorkerMetrics();
    const timed = metrics.timeModelCalls(model, () => 0);
    await timed.predict(new Float32Array(2 * 3 * 8 * 8), [2, 3, 8, 8], new Float32Array(2), new BigInt64Array(2));
    await timed.predict(new Float32Array(4 * 3 * 8 * 8), [4, 3, 8, 8], new Float32Array(4), new BigInt64Array(4));
    await timed.predict(new Float32Array(4 * 3 * 8 * 8), [4, 3, 8, 8], new Float32Array(4), new BigInt64Array(4));
    const values = (await metrics.onnxruntimeRun.get()).values;
    const of = (suffix: string, batch: number) => values.find((v) => v.metricName === `pixelflow_onnxruntime_run_seconds_${suffix}` && v.labels.batch === batch && v.labels.resolution === 8)?.value;
    expect([of('count', 2), of('sum', 2), of('count', 4), of('sum', 4)]).toEqual([1, 0.007, 2, 0.014]);
  });
});

/** The one sample of a label-less gauge, as a scrape would show it. */
async function valueOf(metrics: WorkerMetrics, name: string): Promise<number | undefined> {
  const metric = metrics.registry.getSingleMetric(name);
  return (await metric?.get())?.values[0]?.value;
}

describe('WorkerMetrics.running', () => {
  it('keeps pixelflow_worker_busy at 1 while any job runs, however many, and 0 when none does', async () => {
    const metrics = new WorkerMetrics();
    const seen: [number | undefined, number | undefined][] = [[await valueOf(metrics, 'pixelflow_jobs_running'), await valueOf(metrics, 'pixelflow_worker_busy')]];
    for (const count of [1, 3, 8, 2, 0]) {
      metrics.running(count);
      seen.push([await valueOf(metrics, 'pixelflow_jobs_running'), await valueOf(metrics, 'pixelflow_worker_busy')]);
    }
    expect(seen).toEqual([
      [0, 0],
      [1, 1],
      [3, 1],
      [8, 1],
      [2, 1],
      [0, 0],
    ]);
  });
});

describe('pixelflow_redis_up on the worker', () => {
  it('is 0 before the worker has a connection, then follows each PING at scrape time, with its timeout passed on', async () => {
    const metrics = new WorkerMetrics();
    expect(await valueOf(metrics, 'pixelflow_redis_up')).toBe(0);
    const timeouts: number[] = [];
    let answers = true;
    metrics.watchRedis(async (timeoutMs) => {
      timeouts.push(timeoutMs);
      if (!answers) throw new Error(`no answer from Redis within ${timeoutMs} ms`);
    });
    expect(await valueOf(metrics, 'pixelflow_redis_up')).toBe(1);
    answers = false;
    expect(await valueOf(metrics, 'pixelflow_redis_up')).toBe(0);
    answers = true;
    expect(await valueOf(metrics, 'pixelflow_redis_up')).toBe(1);
    expect(timeouts).toEqual([REDIS_SCRAPE_TIMEOUT_MS, REDIS_SCRAPE_TIMEOUT_MS, REDIS_SCRAPE_TIMEOUT_MS]);
  });
});
