import { describe, expect, it } from 'vitest';
import {
  etaSeconds,
  jobShape,
  jobWork,
  NO_WORKER_RETRY_AFTER_SECONDS,
  poolThroughput,
  queueAhead,
  queueWaitSeconds,
  remainingShape,
  retryAfterSecondsWhenFull,
  type EtaInputs,
  type JobShape,
} from '../src/eta.ts';

// The estimates by themselves: pure arithmetic over steps and images (work = steps x images).

const parameters = { class_label: 0, class_name: 'c', num_images: 2, seed: 1, cfg_scale: 1, noise_shift: 1, steps: [1, 2, 3, 4], solver: 'euler' as const };
const nothingAhead = { jobs: [], beyondWork: 0 };
const job = (steps: number, images = 1): JobShape => ({ steps, images });

/** ETA with a rate of 1 s per image-step, so that it reads as work. */
function eta(inputs: Partial<EtaInputs> & Pick<EtaInputs, 'own'>): number {
  return etaSeconds({ running: false, othersRunning: [], ahead: nothingAhead, behind: [], concurrency: 1, secondsPerImageStep: 1, ...inputs });
}

describe('work', () => {
  it('counts steps x images; what is left comes from the worker’s progress (its own step count for Dopri5)', () => {
    expect(jobWork(parameters)).toBe(20);
    expect(jobShape(parameters)).toEqual({ steps: 10, images: 2 });
    expect(remainingShape({ parameters, progress: null })).toEqual({ steps: 10, images: 2 });
    expect(remainingShape({ parameters, progress: { stage: 1, stages: 4, step: 4, steps_total: 10, fraction: 0.4 } })).toEqual({ steps: 6, images: 2 });
    // Dopri5 adapts: the worker's running count of steps, not the requested ones, says what is left.
    expect(remainingShape({ parameters, progress: { stage: 2, stages: 4, step: 30, steps_total: 37, fraction: 30 / 37 } })).toEqual({ steps: 7, images: 2 });
    expect(remainingShape({ parameters, progress: { stage: 3, stages: 4, step: 12, steps_total: 12, fraction: 1 } })).toEqual({ steps: 0, images: 2 });
  });

  it('of the jobs ahead comes from the nearest ones, the others (further ahead, starting first) as their average', () => {
    // Sampled nearest first; played in the order they start.
    expect(queueAhead(2, [job(4), job(8, 2)], job(100))).toEqual({ jobs: [job(8, 2), job(4)], beyondWork: 0 });
    expect(queueAhead(4, [job(4), job(8, 2)], job(100))).toEqual({ jobs: [job(6, 1.5), job(6, 1.5), job(8, 2), job(4)], beyondWork: 0 });
    expect(queueAhead(3, [], job(7))).toEqual({ jobs: [job(7), job(7), job(7)], beyondWork: 0 });
    expect(queueAhead(0, [], job(7))).toEqual(nothingAhead);
  });

  it('of jobs ahead beyond the 1000 played is counted whole', () => {
    const ahead = queueAhead(1500, [job(4, 2)], job(1));
    expect(ahead.jobs).toHaveLength(1000);
    expect(ahead.beyondWork).toBe(500 * 8);
    // Done before the job starts, all of it: 500 x 8 more than the 1000 played ahead of it.
    const played = eta({ own: job(4, 2), ahead: queueAhead(1000, [job(4, 2)], job(1)) });
    expect(eta({ own: job(4, 2), ahead })).toBe(played + 4000);
  });
});

describe('ETA, one job at a time (concurrency 1)', () => {
  it('of a waiting job is all running work, the work ahead and its own, at the measured rate', () => {
    const inputs = { own: job(10, 2), othersRunning: [job(6), job(25, 2)], ahead: { jobs: [job(20, 2)], beyondWork: 0 }, secondsPerImageStep: 0.5 };
    expect(eta(inputs)).toBe((6 + 50 + 40 + 20) * 0.5);
  });

  it('of a running job alone is its remaining steps x images at the rate', () => {
    expect(eta({ own: job(15, 2), running: true, secondsPerImageStep: 2 })).toBe(60);
  });
});

describe('ETA with jobs running at once (continuous batching)', () => {
  it('counts another running job’s images for each step they share: all its steps if it ends first, the job’s own if it outlasts it', () => {
    expect(eta({ own: job(15), running: true, othersRunning: [job(6), job(50)], concurrency: 3 })).toBe(15 + 6 + 15);
    // A job of 8 images sharing all 10 of its steps costs 8 image-steps per step, not "at most the job's own work".
    expect(eta({ own: job(10), running: true, othersRunning: [job(10, 8)], concurrency: 2 })).toBe(10 + 80);
    expect(eta({ own: job(10, 4), running: true, othersRunning: [job(3, 2), job(40, 1)], concurrency: 3 })).toBe(40 + 6 + 10);
  });

  it('starts a waiting job in a free slot at once: a long job running beside it delays it by the steps they share only', () => {
    // The old count (all running work, then its own) said 400 + 10.
    expect(eta({ own: job(10), othersRunning: [job(100, 4)], concurrency: 2 })).toBe(10 * (1 + 4));
  });

  it('starts a waiting job when a slot frees, in queue order, and shares the rounds from then on', () => {
    // Slots 2: [4, 20] run; after 4 rounds the first ends and the job ahead (6) starts, ending after 6
    // more; then this one (8) starts beside the 20 (10 left) and ends after 8 rounds.
    const inputs = { own: job(8), othersRunning: [job(4), job(20)], ahead: { jobs: [job(6)], beyondWork: 0 }, concurrency: 2 };
    expect(eta(inputs)).toBe(4 * 2 + 6 * 2 + 8 * 2);
    // One slot: all of it, in order.
    expect(eta({ ...inputs, concurrency: 1 })).toBe(4 + 20 + 6 + 8);
  });

  it('shares a job’s rounds with the jobs queued behind it that take the slots freeing before it ends', () => {
    // Running, 2 slots: the next waiting job starts beside it at once, the one after it when that ends.
    expect(eta({ own: job(10), running: true, behind: [job(4, 2), job(20)], concurrency: 2 })).toBe(4 * (1 + 2) + 6 * (1 + 1));
    // Waiting beside a long job: no slot left for the one behind it with 2 slots, one with 3.
    expect(eta({ own: job(10), othersRunning: [job(100, 4)], behind: [job(3)], concurrency: 2 })).toBe(10 * 5);
    expect(eta({ own: job(10), othersRunning: [job(100, 4)], behind: [job(3)], concurrency: 3 })).toBe(3 * 6 + 7 * 5);
    // One slot: nothing behind it starts before it ends.
    expect(eta({ own: job(10), running: true, behind: [job(4, 2)], concurrency: 1 })).toBe(10);
  });

  it('keeps more running jobs than slots (several workers) running, and starts no one until they fit', () => {
    expect(eta({ own: job(5), othersRunning: [job(2), job(3), job(10)], concurrency: 2 })).toBe(2 * 3 + 1 * 2 + 5 * 2);
  });

  it('of a job with nothing left is 0, and a job with nothing left ahead of it costs nothing', () => {
    expect(eta({ own: job(0, 4), running: true, othersRunning: [job(9)], concurrency: 2 })).toBe(0);
    expect(eta({ own: job(3), othersRunning: [job(0)], ahead: { jobs: [job(0, 5)], beyondWork: 0 }, concurrency: 1 })).toBe(3);
  });
});

describe('Retry-After', () => {
  const perUnit = (secondsPerImageStep: number, concurrency = 1) => ({ secondsPerImageStep, concurrency });

  it('waits for the queue ahead of a job queued now: every running and waiting job, one at a time', () => {
    const waiting = queueAhead(3, [job(8), job(4, 2)], job(100));
    // 5 steps left of the running job, then the three waiting ones: 8 and 4 x 2, and one not read,
    // counted as the average of those (6 steps of 1.5 images).
    expect(queueWaitSeconds({ running: [job(5)], waiting }, perUnit(1))).toBe(5 + 8 + 8 + 9);
    expect(queueWaitSeconds({ running: [job(5)], waiting }, perUnit(0.5))).toBe((5 + 8 + 8 + 9) * 0.5);
    expect(queueWaitSeconds({ running: [], waiting: queueAhead(0, [], job(100)) }, perUnit(1))).toBe(0);
  });

  it('starts a job queued now in the first slot that frees once every job ahead has started, with several at once', () => {
    // Two slots. Running: 2 and 6 steps left; waiting: 3 steps then 4. Rounds cost the images in them:
    // 2 rounds of 2 (the 2 ends, the 3 starts), 3 of 2 (the 3 ends, the 4 starts), 1 of 2 (the 6 ends): a slot is free.
    const waiting = queueAhead(2, [job(4), job(3)], job(100));
    expect(queueWaitSeconds({ running: [job(2), job(6)], waiting }, perUnit(1, 2))).toBe(2 * 2 + 3 * 2 + 1 * 2);
    // With one slot, all of it: 2 + 6 + 3 + 4.
    expect(queueWaitSeconds({ running: [job(2), job(6)], waiting }, perUnit(1, 1))).toBe(2 + 6 + 3 + 4);
  });

  it('is that wait, at least 1 s, or 10 s before any measurement, while a worker is alive', () => {
    expect(retryAfterSecondsWhenFull({ waitSeconds: 39.2, workersAlive: 1 })).toBe(40);
    expect(retryAfterSecondsWhenFull({ waitSeconds: 0, workersAlive: 2 })).toBe(1);
    expect(retryAfterSecondsWhenFull({ waitSeconds: null, workersAlive: 1 })).toBe(10);
  });

  it('adds the time a worker takes to start when none is alive', () => {
    expect(retryAfterSecondsWhenFull({ waitSeconds: null, workersAlive: 0 })).toBe(NO_WORKER_RETRY_AFTER_SECONDS);
    expect(retryAfterSecondsWhenFull({ waitSeconds: 39.2, workersAlive: 0 })).toBe(NO_WORKER_RETRY_AFTER_SECONDS + 40);
  });
});

describe('ETA with several workers sharing the queue', () => {
  it('adds up their slots and shares each round among them: a queue of equal jobs drains N times as fast', () => {
    const ahead = { jobs: [job(10), job(10), job(10), job(10), job(10)], beyondWork: 0 };
    // One worker, one slot: the five ahead, then its own.
    expect(eta({ own: job(10), ahead })).toBe(60);
    // Three workers of one slot: three jobs at a time, each round spread over three workers.
    expect(eta({ own: job(10), ahead, workers: 3 })).toBe(20);
    // Two workers of two slots: four at a time (two each, rounds of 2 images per worker), then the
    // last two, one per worker.
    expect(eta({ own: job(10), ahead, concurrency: 2, workers: 2 })).toBe(10 * 2 + 10 * 1);
  });

  it('gives a lone job no speed-up from idle workers: a job runs on one worker', () => {
    expect(eta({ own: job(15), running: true, workers: 3 })).toBe(15);
    // Two jobs on three workers: one each.
    expect(eta({ own: job(10), running: true, othersRunning: [job(10, 1)], workers: 3 })).toBe(10);
    // A job of 4 images beside a job of 1 on two workers: the rounds cost (4 + 1) / 2 per step.
    expect(eta({ own: job(10), running: true, othersRunning: [job(10, 4)], concurrency: 8, workers: 2 })).toBe(25);
  });

  it('with one worker is the single-worker estimate exactly', () => {
    const inputs = { own: job(8), othersRunning: [job(4), job(20)], ahead: { jobs: [job(6)], beyondWork: 0 }, concurrency: 2 };
    expect(eta({ ...inputs, workers: 1 })).toBe(eta(inputs));
  });

  it('gives a full queue a shorter Retry-After with more workers', () => {
    const queue = { running: [job(10), job(10), job(10)], waiting: queueAhead(6, [job(10)], job(10)) };
    expect(queueWaitSeconds(queue, { secondsPerImageStep: 1, concurrency: 1 })).toBe(90);
    expect(queueWaitSeconds(queue, { secondsPerImageStep: 1, concurrency: 1, workers: 3 })).toBe(30);
  });
});

describe('the pool of live workers', () => {
  it('is as many workers as are alive, their slots averaged, at the harmonic mean of their measured rates', () => {
    // 10 and 3.33 image-steps a second together: 13.33 for two workers, 0.15 s each.
    const pool = poolThroughput([{ concurrency: 8, secondsPerImageStep: 0.1 }, { concurrency: 4, secondsPerImageStep: 0.3 }], null);
    expect(pool?.workers).toBe(2);
    expect(pool?.concurrency).toBe(6);
    expect(pool?.secondsPerImageStep).toBeCloseTo(0.15, 10);
  });

  it('counts a worker that has not measured yet as the typical measured one, or as the last recorded rate', () => {
    expect(poolThroughput([{ concurrency: 8, secondsPerImageStep: 0.2 }, { concurrency: 8, secondsPerImageStep: null }], { secondsPerImageStep: 9, concurrency: 1 })).toEqual({
      secondsPerImageStep: 0.2,
      concurrency: 8,
      workers: 2,
    });
    // Heartbeats without their slots (workers older than that field) count the recorded concurrency.
    const unmeasured = { concurrency: null, secondsPerImageStep: null };
    expect(poolThroughput([unmeasured, unmeasured, unmeasured], { secondsPerImageStep: 0.5, concurrency: 4 })).toEqual({ secondsPerImageStep: 0.5, concurrency: 4, workers: 3 });
    expect(poolThroughput([unmeasured], null)).toBeNull();
  });

  it('with no worker alive is the one worker that will start, at the last recorded rate', () => {
    expect(poolThroughput([], { secondsPerImageStep: 0.5, concurrency: 4 })).toEqual({ secondsPerImageStep: 0.5, concurrency: 4, workers: 1 });
    expect(poolThroughput([], null)).toBeNull();
  });
});
