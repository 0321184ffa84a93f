import type { ResolvedGeneration } from '@pixelflow/schemas';
import { LocalResultStore, imageKey } from '@pixelflow/results';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureLog, openWorkerHarness, type WorkerHarness } from './support/worker-harness.ts';

// A progress write Redis refuses, for real: the job's event stream is replaced by a string while
// the job runs, so its next progress transaction fails (WRONGTYPE). The job must stop there, say
// why in the log and in its error, and end failed (once the stream can be written again, as the
// ending's final event goes there too); before, it computed on to its end with every later event
// silently dropped.

let h: WorkerHarness;

beforeAll(async () => {
  h = await openWorkerHarness('progress-writes');
});

afterAll(() => h.close());

/** The worker's model calls (every resolution together) and jobs computing, from its /metrics. */
async function workerMetrics(metricsPort: number): Promise<{ modelCalls: number; jobsRunning: number }> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  return {
    modelCalls: [...text.matchAll(/^pixelflow_model_call_seconds_count\{[^}]*\} (\d+)$/gm)].reduce((sum, match) => sum + Number(match[1]), 0),
    jobsRunning: Number(/^pixelflow_jobs_running (\d+)$/m.exec(text)?.[1] ?? Number.NaN),
  };
}

describe('a job whose progress cannot be written', () => {
  it('stops at its next model call, logs why and ends failed with the reason, instead of dropping its events', async () => {
    const logs = captureLog();
    const worker = await h.startWorker({}, logs.log);
    // 4 stages x 100 steps: 400 model calls (about two seconds here) if nothing stops it.
    const p: ResolvedGeneration = { class_label: 3, class_name: 'class 3', num_images: 8, seed: 5, cfg_scale: 4, noise_shift: 1, steps: [100, 100, 100, 100], solver: 'euler' };
    await h.submit('w1', p);
    await expect.poll(async () => (await h.records.get('w1'))?.progress?.step ?? 0, { timeout: 30_000, interval: 10 }).toBeGreaterThan(0);
    await h.redis.multi().del(h.keys.events('w1')).set(h.keys.events('w1'), 'not a stream').exec();

    await expect.poll(async () => (await workerMetrics(worker.metricsPort)).jobsRunning, { timeout: 30_000, interval: 20 }).toBe(0);
    // Stopped well before its end, with no images.
    const { modelCalls } = await workerMetrics(worker.metricsPort);
    expect(modelCalls).toBeLessThan(200);
    expect(await new LocalResultStore(h.results).get(imageKey('w1', 0))).toBeNull();
    expect(logs.count("writing the job's progress or previews failed: stopping the job", 'w1')).toBe(1);
    // Its ending cannot be written either while the stream is a string: the worker tries again.
    await expect.poll(() => logs.count('could not record how the job ended; trying again', 'w1'), { timeout: 10_000, interval: 20 }).toBeGreaterThan(0);

    await h.redis.del(h.keys.events('w1'));
    await expect.poll(() => h.statusOf('w1'), { timeout: 10_000, interval: 20 }).toBe('failed');
    const record = await h.records.get('w1');
    expect(record?.error?.type).toBe('worker_error');
    expect(record?.error?.message).toMatch(/^could not record the job's progress or previews: WRONGTYPE/);
    expect((await h.events.read('w1')).map((event) => event.name)).toEqual(['failed']);
  });
});
