import type { ResolvedGeneration } from '@pixelflow/schemas';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureLog, openWorkerHarness, type WorkerHarness } from './support/worker-harness.ts';

// One id follows a job from HTTP to pixels: the API stores the creating request's id on the record
// (JobRecords.create), and a real worker puts it on the lines it logs while it runs the job.

let h: WorkerHarness;

beforeAll(async () => {
  h = await openWorkerHarness('request-id');
});

afterAll(() => h.close());

const p: ResolvedGeneration = { class_label: 2, class_name: 'class 2', num_images: 1, seed: 3, cfg_scale: 1, noise_shift: 1, steps: [1, 1, 1, 1], solver: 'euler' };

describe('the request id of a job', () => {
  it('is on the record and on the lines the worker logs while it runs the job', async () => {
    const logs = captureLog();
    await h.startWorker({ WARMUP: 'false' }, logs.log);
    await h.records.create({ id: 'rid1', model: 'tiny-random', parameters: p, createdAt: new Date(), requestId: 'trace-7f3a.01' });
    await h.queue.add('rid1');
    await h.records.create({ id: 'rid2', model: 'tiny-random', parameters: p, createdAt: new Date() });
    await h.queue.add('rid2');
    await expect.poll(async () => [await h.statusOf('rid1'), await h.statusOf('rid2')], { timeout: 30_000, interval: 50 }).toEqual(['succeeded', 'succeeded']);
    expect((await h.records.get('rid1'))?.requestId).toBe('trace-7f3a.01');
    expect((await h.records.get('rid2'))?.requestId).toBeNull();

    const about = (id: string) => logs.lines.filter((line) => line['job_id'] === id && (line['msg'] === 'job started' || line['msg'] === 'job succeeded'));
    expect(about('rid1').map((line) => [line['msg'], line['request_id']])).toEqual([
      ['job started', 'trace-7f3a.01'],
      ['job succeeded', 'trace-7f3a.01'],
    ]);
    expect(about('rid2').map((line) => line['request_id'])).toEqual([undefined, undefined]);
  });
});
