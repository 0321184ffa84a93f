import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pixelflow } from '../../packages/cli/test/support/run-cli.ts';
import { startService, waitForStatus, type TestService } from './support.ts';

// `pixelflow jobs` against the real service (API, worker on the committed tiny model, Redis): a
// real CLI process per command, through the generated client.

let service: TestService;
let out: string;
beforeAll(async () => {
  service = await startService({ worker: true });
  out = await mkdtemp(join(tmpdir(), 'pixelflow-cli-jobs-'));
});
afterAll(async () => {
  await service.stop();
  await rm(out, { recursive: true, force: true });
});

const jobs = (...args: string[]) => pixelflow(['jobs', ...args, '--api', service.url]);
const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

describe('pixelflow jobs', () => {
  it('creates a job, watches it to the end with per-stage lines, and writes its PNGs as the job reports them', async () => {
    const dir = join(out, 'created');
    const created = await jobs('create', '--class', '2', '--count', '2', '--seed', '5', '--steps', '2', '--out', dir, '--request-id', 'cli-jobs-1');
    expect(created.stderr).toMatch(/job j[0-9a-f]{24} queued/);
    expect(created.code, created.stderr).toBe(0);
    const [id, ...paths] = created.stdout.trim().split('\n');
    expect(id).toMatch(/^j[0-9a-f]{24}$/);
    expect(paths).toEqual([join(dir, 'pixelflow-5-00.png'), join(dir, 'pixelflow-5-01.png')]);
    // Off a terminal: one line per stage, then the outcome.
    expect(created.stderr).toContain('stage 4/4');
    expect(created.stderr).toMatch(/job j[0-9a-f]{24} succeeded: 2 images/);
    const job = JSON.parse((await jobs('get', id as string)).stdout) as { status: string; result: { images: { sha256: string }[] } };
    expect(job.status).toBe('succeeded');
    for (const [i, path] of paths.entries()) expect(sha256(await readFile(path))).toBe(job.result.images[i]?.sha256);
    // The request id followed the job.
    expect(await service.redis.hget(`${service.prefix}:job:${id as string}`, 'request_id')).toBe('cli-jobs-1');

    const again = await jobs('download', id as string, '--out', dir);
    expect(again.code).toBe(2);
    expect(again.stderr).toBe(`pixelflow jobs: ${join(dir, 'pixelflow-5-00.png')} and 1 more already exist; pass --force to replace them (nothing written)\n`);
    const forced = await jobs('download', id as string, '--out', dir, '--force');
    expect(forced.code, forced.stderr).toBe(0);
    expect((await readdir(dir)).sort()).toEqual(['pixelflow-5-00.png', 'pixelflow-5-01.png']);
  });

  it('cancels a running job; watch then ends with status 1 and says so', async () => {
    const created = await jobs('create', '--class', '6', '--count', '8', '--steps', '100', '--json');
    expect(created.code, created.stderr).toBe(0);
    const { id } = JSON.parse(created.stdout) as { id: string };
    await waitForStatus(service.url, id, ['running']);
    const canceled = await jobs('cancel', id);
    expect(canceled.code, canceled.stderr).toBe(0);
    expect(canceled.stderr).toMatch(/is stopping|canceled/);
    const watched = await jobs('watch', id);
    expect(watched.code).toBe(1);
    expect(watched.stderr).toContain(`job ${id} canceled`);
    const download = await jobs('download', id);
    expect(download).toMatchObject({ code: 1, stderr: `pixelflow jobs: job ${id} is canceled: it has no images\n` });
  });

  it('watch starts the bar over when the job goes back to the queue (its worker stopped) and follows it to the end', async () => {
    // A worker that hands its running job back 100 ms after it is told to stop.
    await service.worker?.stop();
    await service.startWorker({ SHUTDOWN_GRACE_MS: '100' });
    const created = await jobs('create', '--class', '5', '--count', '8', '--steps', '100', '--seed', '9');
    const id = created.stdout.trim();
    await waitForStatus(service.url, id, ['running']);
    const watching = jobs('watch', id);
    // SIGTERM's hand-back: the stopping worker returns the job to the queue; the next one runs it.
    await service.worker?.stop();
    expect((await (await fetch(`${service.url}/jobs/${id}`)).json()) as { status: string }).toMatchObject({ status: 'queued' });
    await service.startWorker();
    const watched = await watching;
    expect(watched.code, watched.stderr).toBe(0);
    expect(watched.stderr).toContain(`job ${id} went back to the queue; it will start over`);
    expect(watched.stderr).toContain(`job ${id} succeeded: 8 images`);
  });

  it('answers bad input and service problems in one line, in flag terms', async () => {
    expect(await jobs('create', '--class', '1', '--count', '9')).toMatchObject({ code: 2, stderr: 'pixelflow jobs: --count must be an integer from 1 to 8\n' });
    expect(await jobs('create', '--class', '1', '--steps', '1,2')).toMatchObject({ code: 2, stderr: 'pixelflow jobs: --steps has 2 entries but the model has 4 stages\n' });
    const missing = await jobs('get', `j${'0'.repeat(24)}`);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^pixelflow jobs: no job "j0{24}" .*\(404 not-found\)\n$/);
    expect(await jobs('wach', 'x')).toMatchObject({ code: 2, stderr: "pixelflow jobs: unknown action 'wach' (did you mean watch?) (actions: create, get, watch, cancel, download)\n" });
    expect(await jobs('get')).toMatchObject({ code: 2, stderr: expect.stringContaining('get needs a job id') });
    expect(await jobs('get', 'x', '--class', '3')).toMatchObject({ code: 2, stderr: 'pixelflow jobs: generation options belong to create, not get\n' });
    const unreachable = await pixelflow(['jobs', 'get', `j${'0'.repeat(24)}`, '--api', 'http://127.0.0.1:1']);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/^pixelflow jobs: cannot reach the service at http:\/\/127\.0\.0\.1:1 .*is it running\? \(pnpm start\)\n$/);
  });

  it('--idempotency-key makes create safe to run again: the same key and options print the same job, other options are refused', async () => {
    const key = `cli-${Date.now()}`;
    const first = await jobs('create', '--class', '3', '--steps', '1', '--seed', '9', '--idempotency-key', key);
    expect(first.code, first.stderr).toBe(0);
    const again = await jobs('create', '--class', '3', '--steps', '1', '--seed', '9', '--idempotency-key', key);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toBe(first.stdout);
    const reused = await jobs('create', '--class', '4', '--steps', '1', '--seed', '9', '--idempotency-key', key);
    expect(reused.code).toBe(2);
    expect(reused.stderr).toMatch(/^pixelflow jobs: Idempotency-Key .* was used with a different request body.*\(422 idempotency-key-reused\)\n$/);
    expect(await jobs('get', 'x', '--idempotency-key', key)).toMatchObject({ code: 2, stderr: 'pixelflow jobs: --idempotency-key belongs to create\n' });
    expect(await jobs('create', '--class', '3', '--idempotency-key', 'x'.repeat(256))).toMatchObject({ code: 2, stderr: 'pixelflow jobs: --idempotency-key must be 1 to 255 printable ASCII characters\n' });
  });
});
