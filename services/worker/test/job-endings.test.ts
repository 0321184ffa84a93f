import type { ResolvedGeneration } from '@pixelflow/schemas';
import { LocalResultStore, imageKey } from '@pixelflow/results';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Logger } from 'pino';
import type { RunningWorker } from '../src/worker.ts';
import { captureLog, openWorkerHarness, type CapturedLog, type WorkerHarness } from './support/worker-harness.ts';

// Endings Redis refuses to write. The worker keeps a job's ending (a succeeded job's images) and
// writes it again until Redis takes it, or hands the job back to the queue when it stops; it never
// fails a job for it. Real Redis, real refusals: the expiry sorted set that the ending script writes
// first is made a string, so every ending under this prefix fails (WRONGTYPE) until the test deletes
// it, while progress, events and BullMQ's own keys work as ever.

const TRYING_AGAIN = 'could not record how the job ended; trying again';
const GAVE_UP = 'gave up recording how the job ended: it goes back to the queue';
const FINAL = new Set(['succeeded', 'failed', 'canceled']);
/**
 * A short lock and stalled check for every worker here: BullMQ runs one stalled check per interval
 * for all workers of a queue, so a worker with the default 15 s would delay the next one's.
 */
const LOCKS = { LOCK_DURATION_MS: '1000', STALLED_INTERVAL_MS: '500' };

let h: WorkerHarness;

const PARAMETERS: ResolvedGeneration = { class_label: 5, class_name: 'class 5', num_images: 2, seed: 21, cfg_scale: 4, noise_shift: 1, steps: [2, 2, 2, 2], solver: 'euler' };

function startWorker(env: Record<string, string> = {}, log?: Logger): Promise<RunningWorker> {
  return h.startWorker({ ...LOCKS, ...env }, log);
}

/**
 * Every test's start: a worker (`env` on top of LOCKS) whose log is captured, endings refused, job
 * `id` submitted; resolves with the log once the worker has tried to write its ending `tries` times.
 */
async function refuseEndingOf(id: string, tries: number, env: Record<string, string> = {}): Promise<CapturedLog> {
  const logs = captureLog();
  await startWorker(env, logs.log);
  await h.redis.set(h.keys.expiry, 'not a sorted set');
  await h.submit(id, PARAMETERS);
  await expect.poll(() => logs.count(TRYING_AGAIN, id), { timeout: 30_000, interval: 50 }).toBeGreaterThanOrEqual(tries);
  return logs;
}

async function eventNames(id: string): Promise<string[]> {
  return (await h.events.read(id)).map((event) => event.name);
}

beforeAll(async () => {
  h = await openWorkerHarness('endings');
});

afterEach(async () => {
  await h.stopWorkers();
  await h.redis.del(h.keys.expiry);
});

afterAll(() => h.close());

describe('a job whose ending Redis refuses', () => {
  it('keeps its succeeded ending and writes it again until Redis takes it, never failing the job', async () => {
    await refuseEndingOf('keep1', 2);
    // Computed and stored; only its ending is unwritten, and nothing has failed it meanwhile.
    const store = new LocalResultStore(h.results);
    expect(await store.get(imageKey('keep1', 1))).not.toBeNull();
    expect(await h.statusOf('keep1')).toBe('running');
    expect((await eventNames('keep1')).filter((name) => FINAL.has(name))).toEqual([]);

    await h.redis.del(h.keys.expiry);
    await expect.poll(() => h.statusOf('keep1'), { timeout: 10_000, interval: 50 }).toBe('succeeded');
    const record = await h.records.get('keep1');
    expect(record?.images).toHaveLength(2);
    expect(record?.error).toBeNull();
    expect((await eventNames('keep1')).filter((name) => FINAL.has(name))).toEqual(['succeeded']);
    expect(await h.records.expired(new Date(Date.now() + 2 * 86_400_000))).toContain('keep1');
  });

  it('hands the job back to the queue when the worker stops, and the next worker ends it', async () => {
    const logs = await refuseEndingOf('back1', 1, { SHUTDOWN_GRACE_MS: '300' });
    await h.stopWorkers();
    expect(logs.count(GAVE_UP, 'back1')).toBe(1);
    expect(await h.statusOf('back1')).toBe('queued');
    expect(await h.queue.standing('back1', 0)).toMatchObject({ position: 1 });

    await h.redis.del(h.keys.expiry);
    await startWorker();
    await expect.poll(() => h.statusOf('back1'), { timeout: 30_000, interval: 50 }).toBe('succeeded');
    expect(await h.records.get('back1')).toMatchObject({ attempt: 2, error: null });
    const names = await eventNames('back1');
    expect(names.filter((name) => name === 'started' || name === 'queued')).toEqual(['started', 'queued', 'started']);
    expect(names.filter((name) => FINAL.has(name))).toEqual(['succeeded']);
  });

  it('lets go of the job when it loses the lock meanwhile: the job runs again and ends once, succeeded', async () => {
    const logs = await refuseEndingOf('lost1', 1);
    // As if Redis had been away longer than the lock: the lock key is gone at the next renewal.
    await h.redis.del(`${h.keys.prefix}:generate:lost1:lock`);
    await expect.poll(() => logs.lines.filter((line) => line['msg'] === GAVE_UP && line['job_id'] === 'lost1' && line['lock_lost'] === true).length, { timeout: 10_000, interval: 50 }).toBe(1);
    // Not ended (failed, say): back in the queue or taken again, it runs again (and stays unended while endings are refused).
    expect(['running', 'queued']).toContain(await h.statusOf('lost1'));

    await h.redis.del(h.keys.expiry);
    await expect.poll(() => h.statusOf('lost1'), { timeout: 30_000, interval: 50 }).toBe('succeeded');
    expect(await h.records.get('lost1')).toMatchObject({ attempt: 2, error: null });
    expect((await eventNames('lost1')).filter((name) => FINAL.has(name))).toEqual(['succeeded']);
  });
});
