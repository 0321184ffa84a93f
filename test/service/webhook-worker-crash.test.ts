import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startReceiver, type Receiver } from '../../packages/webhooks/test/support/receiver.ts';
import { postJob, REPO, startService, waitForStatus, type TestService } from './support.ts';

// A worker killed with SIGKILL in the middle of a job that names a webhook: the next worker runs
// the job again and ends it once, and the receiver is told once, job.succeeded with the images of
// the attempt that finished. Workers are real child processes, as in worker-crash.test.ts.

const WORKER_MAIN = join(REPO, 'services/worker/src/main.ts');
const secret = `whsec_${randomBytes(32).toString('base64')}`;

let service: TestService;
let receiver: Receiver;
const children: ChildProcess[] = [];

function spawnWorker(): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', WORKER_MAIN], {
    cwd: REPO,
    env: { ...process.env, ...service.env, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(child);
  return child;
}

beforeAll(async () => {
  receiver = await startReceiver();
  service = await startService({ worker: false, env: { WEBHOOK_SECRET: secret, WEBHOOK_ALLOW_PRIVATE: 'true' } });
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  await service.stop();
  await receiver.close();
});

describe('a worker killed mid-job with a webhook', () => {
  it('ends the job once and delivers job.succeeded once', async () => {
    const first = spawnWorker();
    const { id } = (await (await postJob(service.url, { class: 5, num_images: 8, steps: 100, seed: 99, webhook: { url: receiver.url } })).json()) as { id: string };
    await expect.poll(async () => ((await (await fetch(`${service.url}/jobs/${id}`)).json()) as { progress: { step: number } | null }).progress?.step ?? 0, {
      timeout: 60_000,
      interval: 20,
    }).toBeGreaterThan(20);
    first.kill('SIGKILL');
    await new Promise((resolve) => first.once('exit', resolve));
    expect(receiver.received).toEqual([]);

    spawnWorker();
    const done = await waitForStatus(service.url, id, ['succeeded', 'failed'], 90_000);
    expect(done['status']).toBe('succeeded');
    await expect.poll(() => receiver.received.length, { timeout: 30_000, interval: 50 }).toBe(1);
    const payload = new Webhook(secret).verify(receiver.received[0]!.body, receiver.received[0]!.headers as Record<string, string>) as { type: string; data: Record<string, unknown> };
    expect(payload.type).toBe('job.succeeded');
    expect(payload.data['result']).toEqual(done['result']);
    // A second ending (and so a second event) would have come by now: the job ended when done said so.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(receiver.received).toHaveLength(1);
  });
});
