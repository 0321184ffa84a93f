import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../packages/queue/test/support/redis-server.ts';
import { bundle, ensureFresh, REPO, serviceNodeArgs } from '../scripts/compiled.mjs';

// The API and the worker as `pnpm start` and the images run them: their compiled bundles, plain
// node, no tsx. The API through the launcher its `pnpm start` script uses (scripts/launch.mjs), the
// worker's bundle directly (scripts/start.ts, deploy/Dockerfile). On the real Redis, under a key
// prefix of this file's own, with the committed tiny model.

const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const prefix = `pftest-${randomBytes(4).toString('hex')}`;
let results: string;
let url: string;
const children: { name: string; child: ChildProcess; output: string }[] = [];

function start(name: string, args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(process.execPath, args, { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const entry = { name, child, output: '' };
  child.stdout?.on('data', (chunk: Buffer) => (entry.output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (entry.output += chunk.toString()));
  children.push(entry);
  return child;
}

const exited = (child: ChildProcess) =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve(child.exitCode)
    : new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

beforeAll(async () => {
  await ensureFresh([bundle('api'), bundle('worker')], { logLevel: 'error' });
  results = await mkdtemp(join(tmpdir(), 'pixelflow-compiled-services-'));
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    REDIS_URL,
    REDIS_PREFIX: prefix,
    MODEL_DIR: join(REPO, 'test/fixtures/tiny'),
    RESULTS_DIR: results,
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    PORT: String(port),
    ORT_THREADS: '1',
    WORKER_METRICS_HOST: '127.0.0.1',
    WORKER_METRICS_PORT: '0',
    HEARTBEAT_INTERVAL_MS: '300',
    WORKER_STALE_MS: '3000',
    WARMUP: 'false',
  };
  start('api', [join(REPO, 'scripts/launch.mjs'), 'api'], env);
  start('worker', serviceNodeArgs('worker'), env);
});

afterAll(async () => {
  for (const { child } of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  const redis = new Redis(REDIS_URL);
  const stale = await redis.keys(`${prefix}:*`);
  if (stale.length > 0) await redis.del(...stale);
  redis.disconnect();
  await rm(results, { recursive: true, force: true });
});

describe('the compiled services', () => {
  it('start, become ready, run a job on the tiny model and stop cleanly on SIGTERM', async () => {
    const output = () => children.map((c) => `--- ${c.name}\n${c.output}`).join('\n');
    for (let waited = 0; (await fetch(`${url}/readyz`).catch(() => null))?.status !== 200; waited += 100) {
      if (waited > 60_000) throw new Error(`not ready after 60 s:\n${output()}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect((await fetch(`${url}/healthz`)).status).toBe(200);

    const created = await fetch(`${url}/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ class: 3, num_images: 1, steps: 1, seed: 7 }),
    });
    expect(created.status).toBe(202);
    const { id } = (await created.json()) as { id: string };
    let job: { status: string; result?: { images: { url: string }[] } } = { status: '' };
    await expect
      .poll(async () => (job = (await (await fetch(`${url}/jobs/${id}`)).json()) as typeof job).status, { timeout: 30_000, interval: 100 })
      .toMatch(/^(succeeded|failed|canceled)$/);
    expect(job.status, output()).toBe('succeeded');
    // The PNG was encoded by the worker's encoder thread, a script beside the sources.
    const image = await fetch(`${url}${job.result?.images[0]?.url ?? ''}`);
    expect(image.status).toBe(200);
    expect(Buffer.from(await image.arrayBuffer()).subarray(1, 4).toString()).toBe('PNG');

    for (const { child } of children) child.kill('SIGTERM');
    expect(await Promise.all(children.map(({ child }) => exited(child)))).toEqual([0, 0]);
  });
});
