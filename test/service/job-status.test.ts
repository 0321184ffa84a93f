import { connectRedis, JobRecords, keys } from '@pixelflow/queue';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HandDrivenWorker } from '../../packages/queue/test/support/hand-driven-worker.ts';
import { postJob, REDIS_URL, startService, type TestService } from './support.ts';

// GET /jobs/:id while a job passes between the queue and a worker: a job that a worker has taken but
// not yet started, or that went back to the wait list, reads as it stands, never queued without a
// place nor running while it waits. The worker here is driven by hand, so that the job can be held
// at those moments; what it writes to the record is what ours writes.

let service: TestService;
let worker: HandDrivenWorker;
const bullConnection = connectRedis(REDIS_URL, 'worker', 'job-status-test');

beforeAll(async () => {
  service = await startService({ worker: false });
  worker = new HandDrivenWorker(bullConnection, service.prefix);
});
afterAll(async () => {
  await worker.close();
  bullConnection.disconnect();
  await service.stop();
});

async function submitted(): Promise<string> {
  return ((await (await postJob(service.url, { class: 1, num_images: 1, steps: 2 })).json()) as { id: string }).id;
}

async function statusOf(id: string): Promise<Record<string, unknown>> {
  return (await (await fetch(`${service.url}/jobs/${id}`)).json()) as Record<string, unknown>;
}

describe('GET /jobs/:id between the queue and a worker', () => {
  it('says queued, first in line, once a worker has taken the job and before it wrote its start; a cancel then is at once', async () => {
    const id = await submitted();
    expect(await statusOf(id)).toMatchObject({ status: 'queued', queue_position: 1 });
    await worker.take('taking');
    expect(await statusOf(id)).toMatchObject({ status: 'queued', queue_position: 1, started_at: null, progress: null });
    // As for any queued job: canceled at once (the worker's start will find it canceled).
    expect((await fetch(`${service.url}/jobs/${id}`, { method: 'DELETE' })).status).toBe(200);
    expect(await statusOf(id)).toMatchObject({ status: 'canceled', queue_position: null });
  });

  it('says queued with its place, without the stopped attempt\'s progress, once the job is back in the wait list', async () => {
    const id = await submitted();
    const behind = await submitted();
    const records = new JobRecords(service.redis, keys(service.prefix));
    const job = await worker.take('stopping');
    expect(job.id).toBe(id);
    await records.start(id, new Date());
    await records.reportProgress(id, { stage: 1, stages: 4, step: 3, steps_total: 8, fraction: 3 / 8 });
    expect(await statusOf(id)).toMatchObject({ status: 'running', progress: { step: 3 } });
    // Handed back to the wait list; the record is not queued again yet.
    await job.handBack();
    expect(await statusOf(id)).toMatchObject({ status: 'queued', queue_position: 1, progress: null, previews: [], started_at: null });
    expect(await statusOf(behind)).toMatchObject({ status: 'queued', queue_position: 2 });
  });
});
