import { keys as makeKeys, sendHeartbeat, ThroughputRecord, type WorkerHeartbeat } from '@pixelflow/queue';
import { afterEach, describe, expect, it } from 'vitest';
import { postJob, startService, waitForStatus, type TestService } from './support.ts';

// Admission to the queue on the real API and Redis: QUEUE_CAP holds however many requests arrive
// at once, frees up as jobs end, and a refused client is told how long the queue ahead takes to
// drain (Retry-After), and when no worker is there to drain it.

/** 4 stages x 2 steps x 1 image: 8 units of work (steps x images). */
const SMALL_JOB = { class: 1, num_images: 1, steps: 2 };
const SMALL_JOB_WORK = 4 * 2 * 1;

let service: TestService | undefined;
afterEach(async () => {
  await service?.stop();
  service = undefined;
});

async function postConcurrently(url: string, count: number): Promise<Response[]> {
  return Promise.all(Array.from({ length: count }, () => postJob(url, SMALL_JOB)));
}

async function depth(s: TestService): Promise<number> {
  const lists = ['wait', 'active'].map((list) => s.redis.llen(`${s.prefix}:generate:${list}`));
  return (await Promise.all(lists)).reduce((a, b) => a + b, 0);
}

/** Checks a refusal is the queue-full problem with a whole number of seconds to wait, and returns both. */
async function queueFull(response: Response): Promise<{ retryAfter: number; detail: string }> {
  expect(response.status).toBe(503);
  expect(response.headers.get('content-type')).toContain('application/problem+json');
  const retryAfter = response.headers.get('retry-after') ?? '';
  expect(retryAfter).toMatch(/^[1-9][0-9]*$/);
  const problem = (await response.json()) as { type: string; status: number; detail: string };
  expect(problem).toMatchObject({ type: '/problems/queue-full', status: 503 });
  return { retryAfter: Number(retryAfter), detail: problem.detail };
}

function heartbeat(state: WorkerHeartbeat['state']): WorkerHeartbeat {
  const now = new Date().toISOString();
  return {
    worker_id: 'admission-test',
    state,
    model: { name: 'tiny-random', resolution: 32, stages: [4, 8, 16, 32], classes: 10, weights_sha256: 'c'.repeat(64) },
    provider: 'cpu',
    pid: process.pid,
    hostname: 'here',
    started_at: now,
    sent_at: now,
  };
}

describe('QUEUE_CAP under concurrent submissions', () => {
  it('accepts exactly the cap of 100 simultaneous POSTs, refuses the rest with queue-full, and frees up as jobs are canceled, round after round', async () => {
    const s = (service = await startService({ worker: false, env: { QUEUE_CAP: '20' } }));
    for (let round = 1; round <= 3; round++) {
      const responses = await postConcurrently(s.url, 100);
      const accepted = responses.filter((r) => r.status === 202);
      const refused = responses.filter((r) => r.status !== 202);
      expect(accepted.length, `round ${round}`).toBe(20);
      for (const response of refused) await queueFull(response);
      expect(await depth(s)).toBe(20);
      const ids = await Promise.all(accepted.map(async (r) => ((await r.json()) as { id: string }).id));
      // Every accepted job is whole: its record says queued, with its place among the 20.
      const jobs = await Promise.all(ids.map(async (id) => (await (await fetch(`${s.url}/jobs/${id}`)).json()) as { status: string; queue_position: number }));
      expect(jobs.map((job) => job.status)).toEqual(ids.map(() => 'queued'));
      expect(jobs.map((job) => job.queue_position).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      // Canceling a queued job frees its place at once.
      const canceled = await Promise.all(ids.map((id) => fetch(`${s.url}/jobs/${id}`, { method: 'DELETE' })));
      expect(canceled.map((r) => r.status)).toEqual(ids.map(() => 200));
      expect(await depth(s)).toBe(0);
    }
  });

  it('frees the places of jobs that end, so that the cap is reached again, not sooner', async () => {
    const s = (service = await startService({ worker: false, env: { QUEUE_CAP: '4' } }));
    const first = await postConcurrently(s.url, 12);
    expect(first.filter((r) => r.status === 202)).toHaveLength(4);
    const ids = await Promise.all(first.filter((r) => r.status === 202).map(async (r) => ((await r.json()) as { id: string }).id));
    await s.startWorker();
    for (const id of ids) await waitForStatus(s.url, id, ['succeeded']);
    await expect.poll(() => depth(s), { timeout: 10_000, interval: 50 }).toBe(0);
    // With the worker stopped (so that nothing ends meanwhile), the places of the 4 that ended are
    // all free again, and no more than those.
    await s.worker?.stop();
    s.worker = null;
    const second = await postConcurrently(s.url, 12);
    expect(second.filter((r) => r.status === 202)).toHaveLength(4);
    expect(await depth(s)).toBe(4);
  });
});

describe('Retry-After on a full queue', () => {
  it('is the time the queue ahead takes to drain at the measured throughput, while a worker is alive', async () => {
    const s = (service = await startService({ worker: false, env: { QUEUE_CAP: '20' } }));
    const keys = makeKeys(s.prefix);
    for (let i = 0; i < 20; i++) expect((await postJob(s.url, SMALL_JOB)).status).toBe(202);
    // A worker that is alive (but takes nothing, so that the queue stays as it is) and has measured its throughput.
    await sendHeartbeat(s.redis, keys, heartbeat('ready'), 60);
    const secondsPerImageStep = 0.25;
    await new ThroughputRecord(s.redis, keys).record({ secondsPerImageStep, concurrency: 1 });
    const full = await queueFull(await postJob(s.url, SMALL_JOB));
    // One job at a time: a job queued now would start once all 20 ahead of it have run.
    expect(full.retryAfter).toBe(Math.ceil(20 * SMALL_JOB_WORK * secondsPerImageStep));
    expect(full.detail).toBe('20 jobs are queued or running (the cap is 20)');
    // Two at once, sharing each round's cost: the same work in all, so the same wait.
    await new ThroughputRecord(s.redis, keys).record({ secondsPerImageStep, concurrency: 2 });
    expect((await queueFull(await postJob(s.url, SMALL_JOB))).retryAfter).toBe(Math.ceil(20 * SMALL_JOB_WORK * secondsPerImageStep));
    // A larger job asking changes nothing: the wait is the queue's, not the job's own run time.
    expect((await queueFull(await postJob(s.url, { class: 1, num_images: 8, steps: 50 }))).retryAfter).toBe(Math.ceil(20 * SMALL_JOB_WORK * secondsPerImageStep));
  });

  it('says that no worker is running, and asks for a longer wait than the queue alone, when none is alive', async () => {
    const s = (service = await startService({ worker: false, env: { QUEUE_CAP: '20' } }));
    const keys = makeKeys(s.prefix);
    for (let i = 0; i < 20; i++) expect((await postJob(s.url, SMALL_JOB)).status).toBe(202);
    const unmeasured = await queueFull(await postJob(s.url, SMALL_JOB));
    expect(unmeasured.detail).toBe('20 jobs are queued or running (the cap is 20); no worker is running: jobs wait until one starts');
    // Measured earlier (a worker that has since gone): a worker must start, then drain the queue.
    const secondsPerImageStep = 0.25;
    await new ThroughputRecord(s.redis, keys).record({ secondsPerImageStep, concurrency: 1 });
    const measured = await queueFull(await postJob(s.url, SMALL_JOB));
    expect(measured.detail).toContain('no worker is running');
    const drain = Math.ceil(20 * SMALL_JOB_WORK * secondsPerImageStep);
    expect(measured.retryAfter).toBeGreaterThan(drain);
    // The wait for a worker to start is the same with or without a measurement.
    expect(measured.retryAfter - drain).toBe(unmeasured.retryAfter);
    // A worker stopping takes no new jobs: still none to run them.
    await sendHeartbeat(s.redis, keys, heartbeat('stopping'), 60);
    expect((await queueFull(await postJob(s.url, SMALL_JOB))).detail).toContain('no worker is running');
    // One loading its model will: the wait is the queue's.
    await sendHeartbeat(s.redis, keys, heartbeat('loading'), 60);
    const loading = await queueFull(await postJob(s.url, SMALL_JOB));
    expect(loading).toEqual({ retryAfter: drain, detail: '20 jobs are queued or running (the cap is 20)' });
  });
});
