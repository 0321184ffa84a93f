import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../services/api/src/app.ts';
import { loadApiConfig } from '../../services/api/src/config.ts';
import { freePort } from '../../packages/queue/test/support/redis-server.ts';
import { startReceiver, type Receiver } from '../../packages/webhooks/test/support/receiver.ts';
import { postJob, REPO, startService, type TestService } from './support.ts';

// An API process killed with SIGKILL while it is delivering a webhook (the receiver has the
// request and has not answered): the delivery is not lost. Once the dead process's lock lapses
// (at most 20 s), another API process delivers the same event under the same webhook-id. The
// killed API is a real child process; the one that takes over is this test's in-process API.

const API_MAIN = join(REPO, 'services/api/src/main.ts');
const secret = `whsec_${randomBytes(32).toString('base64')}`;

let receiver: Receiver;
let service: TestService | null = null;
let child: ChildProcess | null = null;

beforeAll(async () => {
  receiver = await startReceiver();
});

afterAll(async () => {
  if (child !== null && child.exitCode === null) child.kill('SIGKILL');
  await service?.stop();
  await receiver.close();
});

async function spawnApi(env: Record<string, string>): Promise<{ url: string; process: ChildProcess }> {
  const port = await freePort();
  const started = spawn(process.execPath, ['--import', 'tsx', API_MAIN], {
    cwd: REPO,
    env: { ...process.env, ...env, PORT: String(port), LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const url = `http://127.0.0.1:${port}`;
  await expect.poll(async () => (await fetch(`${url}/healthz`).catch(() => null))?.status, { timeout: 60_000, interval: 100 }).toBe(200);
  return { url, process: started };
}

describe('an API process killed mid-delivery', () => {
  it('leaves the delivery to another API process, under the same webhook-id', async () => {
    receiver.answer = 'hang';
    const env = { WEBHOOK_SECRET: secret, WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_TIMEOUT_MS: '60000', WEBHOOK_BACKOFF_MS: '100', WEBHOOK_BACKOFF_MAX_MS: '300' };
    // The in-process API shares the prefix but is closed at once: only the child delivers at first.
    service = await startService({ worker: false, env });
    await service.app.close();
    const api = await spawnApi(service.env);
    child = api.process;
    const { id } = (await (await postJob(api.url, { class: 3, num_images: 1, steps: 1, webhook: { url: receiver.url, events: ['job.canceled'] } })).json()) as { id: string };
    expect((await fetch(`${api.url}/jobs/${id}`, { method: 'DELETE' })).status).toBe(200);
    await expect.poll(() => receiver.received.length, { timeout: 30_000, interval: 50 }).toBe(1);
    child.kill('SIGKILL');
    await new Promise((resolve) => child?.once('exit', resolve));

    receiver.answer = 204;
    const next = await buildApp(loadApiConfig(service.env), { logger: false });
    try {
      await next.listen({ host: '127.0.0.1', port: 0 });
      const address = next.server.address();
      const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
      // Two locks (20 s) and a poll, with room for a loaded CI machine.
      await expect
        .poll(async () => ((await (await fetch(`${url}/jobs/${id}`)).json()) as { webhook: { deliveries: { status: string }[] } }).webhook.deliveries[0], { timeout: 60_000, interval: 200 })
        .toMatchObject({ status: 'delivered', last_status_code: 204 });
    } finally {
      await next.close();
    }
    expect(receiver.received.length).toBe(2);
    expect(new Set(receiver.received.map((r) => r.headers['webhook-id']))).toEqual(new Set([`msg_${id}_canceled`]));
    expect(new Set(receiver.received.map((r) => r.body)).size).toBe(1);
  });
});
