import { spawn, type ChildProcess } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJob, readSse, REPO, startService, waitForStatus, type SseEvent, type TestService } from './support.ts';

// A worker killed with SIGKILL in the middle of a job: once a worker runs again, BullMQ's stalled
// check hands the job back, it runs again from its seed, succeeds with the images an unbroken run
// gives, and exactly one set of files exists. Workers here are real child processes.

const WORKER_MAIN = join(REPO, 'services/worker/src/main.ts');

let service: TestService;
const children: ChildProcess[] = [];

function spawnWorker(extra: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', WORKER_MAIN], {
    cwd: REPO,
    env: { ...process.env, ...service.env, LOG_LEVEL: 'warn', ...extra },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(child);
  return child;
}

/** Events that say where a job is, without its progress and previews. */
const STATE_EVENTS = new Set(['queued', 'started', 'succeeded', 'failed', 'canceled']);

/**
 * The state events of job `id` that its stream has sent so far: the stream of an unfinished job does
 * not end, so it is read until its second heartbeat (comment lines, every SSE_HEARTBEAT_MS; the
 * replay is the stream's first read) and left.
 */
async function stateEventsSoFar(id: string): Promise<SseEvent[]> {
  const controller = new AbortController();
  const response = await fetch(`${service.url}/jobs/${id}/events`, { signal: controller.signal });
  const reader = (response.body as ReadableStream<Uint8Array>).pipeThrough(new TextDecoderStream()).getReader();
  let text = '';
  while ((text.match(/^:/gm) ?? []).length < 2) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  controller.abort();
  const blocks = text.split('\n\n').filter((block) => /^event: /m.test(block));
  return blocks
    .map((block) => {
      const field = (name: string): string => new RegExp(`^${name}: (.*)$`, 'm').exec(block)?.[1] ?? '';
      return { id: field('id'), event: field('event'), data: JSON.parse(field('data')) as unknown };
    })
    .filter((event) => STATE_EVENTS.has(event.event));
}

async function ready(): Promise<void> {
  await expect.poll(async () => (await fetch(`${service.url}/readyz`)).status, { timeout: 30_000, interval: 100 }).toBe(200);
}

beforeAll(async () => {
  service = await startService({ worker: false });
});
afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  await service.stop();
});

describe('a worker killed mid-job', () => {
  it('leaves the job to the next worker, which completes it with the same images, once', async () => {
    const first = spawnWorker();
    await ready();
    const request = { class: 5, num_images: 8, steps: 100, seed: 99 };
    const { id } = (await (await postJob(service.url, request)).json()) as { id: string };
    await expect.poll(async () => ((await (await fetch(`${service.url}/jobs/${id}`)).json()) as { progress: { step: number } | null }).progress?.step ?? 0, {
      timeout: 30_000,
      interval: 20,
    }).toBeGreaterThan(20);
    first.kill('SIGKILL');
    await new Promise((resolve) => first.once('exit', resolve));
    expect(((await (await fetch(`${service.url}/jobs/${id}`)).json()) as { status: string }).status).toBe('running');

    spawnWorker();
    const done = await waitForStatus(service.url, id, ['succeeded', 'failed'], 90_000);
    expect(done['status']).toBe('succeeded');
    const { events } = await readSse(await fetch(`${service.url}/jobs/${id}/events`));
    expect(events.filter((e) => e.event === 'started').map((e) => (e.data as { attempt: number }).attempt)).toEqual([1, 2]);
    expect(events.filter((e) => e.event === 'succeeded')).toHaveLength(1);
    // A SIGKILL between a file's write and its rename leaves that attempt's `.partial` behind; no
    // reader sees it (keys never end so), and it goes with the job's folder when the job expires.
    const files = (await readdir(join(service.results, id))).filter((name) => !name.endsWith('.partial')).sort();
    expect(files).toEqual([...Array.from({ length: 8 }, (_, i) => `image-${i}.png`), 'stage-0.png', 'stage-1.png', 'stage-2.png', 'stage-3.png'].sort());

    // An unbroken run of the same request gives the same images.
    const { id: again } = (await (await postJob(service.url, request)).json()) as { id: string };
    const clean = await waitForStatus(service.url, again, ['succeeded'], 60_000);
    const hashes = (job: Record<string, unknown>): string[] => (job['result'] as { images: { sha256: string }[] }).images.map((i) => i.sha256);
    expect(hashes(done)).toEqual(hashes(clean));
  });

  it('on SIGTERM stops taking jobs, hands the running one back after its grace period, and exits 0', async () => {
    // Only this test's worker may take the job: stop the ones before it, and wait until none is ready.
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
    await expect.poll(async () => (await fetch(`${service.url}/readyz`)).status, { timeout: 10_000, interval: 100 }).toBe(503);
    const worker = spawnWorker({ SHUTDOWN_GRACE_MS: '100' });
    await ready();
    const { id } = (await (await postJob(service.url, { class: 2, num_images: 8, steps: 100, seed: 3 })).json()) as { id: string };
    await expect.poll(async () => ((await (await fetch(`${service.url}/jobs/${id}`)).json()) as { progress: { step: number } | null }).progress?.step ?? 0, {
      timeout: 30_000,
      interval: 20,
    }).toBeGreaterThan(20);
    const exited = new Promise<number | null>((resolve) => worker.once('exit', (code) => resolve(code)));
    worker.kill('SIGTERM');
    expect(await exited).toBe(0);
    // Handed back: waiting for the next worker, not failed, not lost, and it says so. Its status
    // is queued with its place, without the progress of the attempt that stopped ...
    expect(await service.redis.lrange(`${service.prefix}:generate:wait`, 0, -1)).toContain(id);
    expect(await (await fetch(`${service.url}/jobs/${id}`)).json()).toMatchObject({ status: 'queued', queue_position: 1, progress: null, previews: [], started_at: null });
    // ... and its event stream says queued again after it started.
    expect((await stateEventsSoFar(id)).map((event) => event.event)).toEqual(['queued', 'started', 'queued']);

    spawnWorker();
    const done = await waitForStatus(service.url, id, ['succeeded', 'failed'], 90_000);
    expect(done['status']).toBe('succeeded');
    const { events } = await readSse(await fetch(`${service.url}/jobs/${id}/events`));
    expect(events.filter((e) => STATE_EVENTS.has(e.event)).map((e) => [e.event, e.data])).toEqual([
      ['queued', { position: 1 }],
      ['started', { attempt: 1, steps_total: 400 }],
      ['queued', { position: 1 }],
      ['started', { attempt: 2, steps_total: 400 }],
      ['succeeded', done['result']],
    ]);
  });
});

describe('configuration errors', () => {
  it('stop a service at start with one line per bad variable and exit 2', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', WORKER_MAIN], {
      cwd: REPO,
      env: { ...process.env, REDIS_URL: 'localhost:6379', ORT_PROVIDER: 'tpu' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    expect(code).toBe(2);
    expect(stderr.trim().split('\n')).toEqual([
      'pixelflow worker: invalid configuration: REDIS_URL must be a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379 (got "localhost:6379"); ORT_PROVIDER must be cpu or cuda (got "tpu")',
    ]);
  });
});
