import { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { connectRedis, QUEUE_NAME, type QueuedJobData } from '@pixelflow/queue';
import type { JobProgress, ResolvedGeneration } from '@pixelflow/schemas';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { jobEnder } from '../src/job-ending.ts';
import type { JobOutcome } from '../src/job-outcome.ts';
import { JobProcessor } from '../src/job-processor.ts';
import { WorkerMetrics } from '../src/metrics.ts';
import { ThroughputMeter } from '../src/throughput-meter.ts';
import { openWorkerHarness, REDIS_URL, type WorkerHarness } from './support/worker-harness.ts';

// A job back in the queue without having ended (its worker stopped and handed it back, or died and
// BullMQ's stalled check returned it) is queued again: its record says queued, without the progress
// of the attempt that stopped, and its event stream says `queued` again, so that no one is told it
// runs while it waits for a worker. Real Redis, real BullMQ; each test has a prefix of its own.

const LOCKS = { LOCK_DURATION_MS: '1000', STALLED_INTERVAL_MS: '500' };
const LONG: ResolvedGeneration = { class_label: 2, class_name: 'class 2', num_images: 8, seed: 7, cfg_scale: 4, noise_shift: 1, steps: [100, 100, 100, 100], solver: 'euler' };
const SHORT: ResolvedGeneration = { ...LONG, num_images: 1, steps: [2, 2, 2, 2] };
/** Events that say where a job is, without its progress and previews. */
const STATE_EVENTS = new Set(['queued', 'started', 'succeeded', 'failed', 'canceled']);

let h: WorkerHarness;
let closers: (() => Promise<void> | void)[];

beforeEach(async () => {
  h = await openWorkerHarness('queued-again');
  closers = [];
});

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  await h.close();
});

async function stateEvents(id: string): Promise<{ name: string; data: unknown }[]> {
  return (await h.events.read(id)).filter((event) => STATE_EVENTS.has(event.name)).map(({ name, data }) => ({ name, data }));
}

/** A BullMQ connection of the test's own, closed after it. */
function bullConnection(name: string): Redis {
  const connection = connectRedis(REDIS_URL, 'worker', name);
  closers.push(() => connection.disconnect());
  return connection;
}

describe('a job handed back by a worker that stops', () => {
  it('reads queued, without the progress of the attempt that stopped, and its stream says queued again; the next worker runs it', async () => {
    const stopping = await h.startWorker({ ...LOCKS, SHUTDOWN_GRACE_MS: '0' });
    await h.submit('back1', LONG);
    await expect.poll(async () => (await h.records.get('back1'))?.progress?.step ?? 0, { timeout: 30_000, interval: 10 }).toBeGreaterThan(0);
    await stopping.stop();

    // No worker now: the job waits, and everything about it says so.
    expect(await h.queue.standing('back1', 0)).toMatchObject({ position: 1 });
    expect(await h.records.get('back1')).toMatchObject({ status: 'queued', progress: null, previews: [], startedAt: null, attempt: 1 });
    expect(await stateEvents('back1')).toEqual([
      { name: 'started', data: { attempt: 1, steps_total: 400 } },
      { name: 'queued', data: { position: 1 } },
    ]);

    await h.startWorker(LOCKS);
    await expect.poll(() => h.statusOf('back1'), { timeout: 60_000, interval: 50 }).toBe('succeeded');
    expect((await stateEvents('back1')).map((event) => event.name)).toEqual(['started', 'queued', 'started', 'succeeded']);
    expect((await h.records.get('back1'))?.attempt).toBe(2);
  });
});

describe('a job whose worker died', () => {
  it('is queued again by the stalled check of a worker still alive, and waits so while that worker is busy', async () => {
    // A worker alive but busy: its one slot holds a job until the test lets it go. What it runs is
    // a stand-in; taking jobs, the stalled check and what follows are the processor's own.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const ran: string[] = [];
    const log = pino({ level: 'silent' });
    const processor = new JobProcessor({
      connection: bullConnection('queued-again-alive'),
      keys: h.keys,
      records: h.records,
      concurrency: 1,
      lockDurationMs: Number(LOCKS.LOCK_DURATION_MS),
      stalledIntervalMs: Number(LOCKS.STALLED_INTERVAL_MS),
      run: async (jobId): Promise<JobOutcome> => {
        ran.push(jobId);
        await released;
        return { kind: 'skipped', status: null };
      },
      ender: jobEnder(h.records, new WorkerMetrics(), 60, log),
      throughput: new ThroughputMeter(),
      onThroughput: async () => undefined,
      log,
    });
    closers.push(() => processor.stop(0));
    // (Before stopping it, should the test fail while the slot is held.)
    closers.push(() => release());
    processor.start();
    await h.submit('busy1', SHORT);
    await expect.poll(() => ran, { timeout: 10_000, interval: 20 }).toEqual(['busy1']);

    // Another worker takes the next job, starts it as ours do, reports progress, and dies: nothing
    // renews its lock any more.
    await h.submit('dead1', SHORT);
    const dying = new Worker<QueuedJobData>(QUEUE_NAME, null, { connection: bullConnection('queued-again-dying'), prefix: h.keys.prefix, autorun: false, lockDuration: 300 });
    expect((await dying.getNextJob('dying', { block: false }))?.id).toBe('dead1');
    await h.records.start('dead1', new Date());
    await h.events.append('dead1', 'started', { attempt: 1, steps_total: 8 });
    const progress: JobProgress = { stage: 1, stages: 4, step: 3, steps_total: 8, fraction: 3 / 8 };
    await h.records.reportProgress('dead1', progress);
    await dying.close(true);
    expect(await h.records.get('dead1')).toMatchObject({ status: 'running', progress });

    // Once its lock has lapsed, the live worker's stalled check returns it to the queue, queued again.
    await expect.poll(() => h.statusOf('dead1'), { timeout: 10_000, interval: 50 }).toBe('queued');
    expect(await h.records.get('dead1')).toMatchObject({ progress: null, previews: [], startedAt: null, attempt: 1 });
    expect(await stateEvents('dead1')).toEqual([
      { name: 'started', data: { attempt: 1, steps_total: 8 } },
      { name: 'queued', data: { position: 1 } },
    ]);
    expect(await h.queue.standing('dead1', 0)).toMatchObject({ position: 1 });
    expect(ran).toEqual(['busy1']);

    // Its slot free, the live worker takes it next.
    release();
    await expect.poll(() => ran, { timeout: 10_000, interval: 20 }).toEqual(['busy1', 'dead1']);
  });
});
