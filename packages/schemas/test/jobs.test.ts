import { describe, expect, it } from 'vitest';
import { FINAL_EVENTS, Job, JOB_EVENT_NAMES, JobEventData, Problem } from '../src/jobs.ts';

const parameters = {
  class_label: 3,
  class_name: 'digit 3',
  num_images: 2,
  seed: 7,
  cfg_scale: 4,
  noise_shift: 1,
  steps: [10, 10, 10, 10],
  solver: 'euler',
} as const;

const queued = {
  id: 'j_0123456789abcdef',
  status: 'queued',
  model: 'pixelflow-mnist',
  parameters,
  progress: null,
  queue_position: 1,
  eta_seconds: 3.5,
  created_at: '2026-11-25T23:00:00.000Z',
  started_at: null,
  finished_at: null,
  expires_at: null,
  previews: [],
  result: null,
  error: null,
  webhook: null,
};

describe('Job', () => {
  it('accepts a queued job and a succeeded one', () => {
    expect(Job.parse(queued)).toEqual(queued);
    const done = {
      ...queued,
      status: 'succeeded',
      queue_position: null,
      eta_seconds: null,
      progress: { stage: 3, stages: 4, step: 40, steps_total: 40, fraction: 1 },
      started_at: '2026-11-25T23:00:01.000Z',
      finished_at: '2026-11-25T23:00:05.000Z',
      expires_at: '2026-11-26T23:00:05.000Z',
      result: { images: [{ url: '/jobs/j_0123456789abcdef/images/0', width: 32, height: 32, sha256: 'a'.repeat(64) }] },
    };
    expect(Job.parse(done)).toEqual(done);
  });

  it('refuses an unknown status, a bad checksum and an unresolved parameter set', () => {
    expect(Job.safeParse({ ...queued, status: 'done' }).success).toBe(false);
    const badImage = { ...queued, result: { images: [{ url: '/x', width: 32, height: 32, sha256: 'xyz' }] } };
    expect(Job.safeParse(badImage).success).toBe(false);
    expect(Job.safeParse({ ...queued, parameters: { ...parameters, seed: undefined } }).success).toBe(false);
  });
});

describe('job events', () => {
  it('have a schema for every name, and the final ones are among them', () => {
    expect(JOB_EVENT_NAMES).toEqual(['queued', 'started', 'progress', 'stage', 'succeeded', 'failed', 'canceled']);
    for (const name of FINAL_EVENTS) expect(JOB_EVENT_NAMES).toContain(name);
    expect(JobEventData.progress.parse({ stage: 1, stages: 4, step: 12, steps_total: 40, fraction: 0.3 }).step).toBe(12);
    expect(JobEventData.failed.safeParse({ error: { type: 'sampling_failed' } }).success).toBe(false);
  });
});

describe('Problem', () => {
  it('is an RFC 9457 document with optional field errors', () => {
    const problem = {
      type: 'https://pixelflow.dev/problems/validation',
      title: 'Invalid request',
      status: 400,
      detail: 'cfg_scale must be a number from 1 to 25',
      errors: [{ path: 'cfg_scale', message: 'must be a number from 1 to 25' }],
    };
    expect(Problem.parse(problem)).toEqual(problem);
    expect(Problem.safeParse({ ...problem, status: 200 }).success).toBe(false);
  });
});
