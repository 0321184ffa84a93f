import { describe, expect, it } from 'vitest';
import { etaSeconds, extrapolateWorkAhead, jobWork, queueFullRetryAfterSeconds, remainingWork } from '../src/eta.ts';

// The estimates by themselves: pure arithmetic over work units (steps x images).

const parameters = { class_label: 0, class_name: 'c', num_images: 2, seed: 1, cfg_scale: 1, noise_shift: 1, steps: [1, 2, 3, 4], solver: 'euler' as const };

describe('work units', () => {
  it('count steps x images, less what a worker reported done', () => {
    expect(jobWork(parameters)).toBe(20);
    expect(remainingWork({ parameters, progress: null })).toBe(20);
    expect(remainingWork({ parameters, progress: { stage: 1, stages: 4, step: 5, steps_total: 10, fraction: 0.25 } })).toBe(15);
  });

  it('extrapolate the jobs ahead from the nearest ones, or from the job itself when none was sampled', () => {
    expect(extrapolateWorkAhead(10, [4, 8], 100)).toBe(60);
    expect(extrapolateWorkAhead(3, [], 7)).toBe(21);
    expect(extrapolateWorkAhead(0, [], 7)).toBe(0);
  });
});

describe('ETA', () => {
  it('of a waiting job is all running work, the work ahead and its own, at the measured rate', () => {
    expect(etaSeconds({ ownRemaining: 20, running: false, othersRunning: [6, 50], workAhead: 40, secondsPerImageStep: 0.5 })).toBe(58);
  });

  it('of a running job alone is its remaining work at the rate', () => {
    expect(etaSeconds({ ownRemaining: 15, running: true, othersRunning: [], workAhead: 0, secondsPerImageStep: 2 })).toBe(30);
  });

  it('of a running job that shares the worker counts each other job up to its own remaining work', () => {
    // 6 is done before it and counts whole; 50 outlasts it and delays it by 15 (shared calls).
    expect(etaSeconds({ ownRemaining: 15, running: true, othersRunning: [6, 50], workAhead: 0, secondsPerImageStep: 1 })).toBe(36);
  });

  it('gives Retry-After for a full queue as one job of this size, at least 1 s, 10 s before any measurement', () => {
    expect(queueFullRetryAfterSeconds(parameters, 0.26)).toBe(6);
    expect(queueFullRetryAfterSeconds(parameters, 0.001)).toBe(1);
    expect(queueFullRetryAfterSeconds(parameters, null)).toBe(10);
  });
});
