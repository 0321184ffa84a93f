import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { buildApp } from '../../services/api/src/app.ts';
import { loadApiConfig } from '../../services/api/src/config.ts';
import { loadWorkerConfig } from '../../services/worker/src/config.ts';
import { startWorker, type RunningWorker } from '../../services/worker/src/worker.ts';

// A whole service for a test file: the real API on a free port and, when asked, the real worker
// in this process, on the real Redis under a key prefix of the file's own (deleted afterwards),
// with the committed tiny model and a temporary results folder.

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const TINY = join(REPO, 'test/fixtures/tiny');
export const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';

export interface TestService {
  url: string;
  prefix: string;
  results: string;
  env: Record<string, string>;
  app: FastifyInstance;
  redis: Redis;
  worker: RunningWorker | null;
  startWorker(extra?: Record<string, string>): Promise<RunningWorker>;
  stop(): Promise<void>;
}

export async function startService(options: { worker?: boolean; env?: Record<string, string> } = {}): Promise<TestService> {
  const prefix = `pftest-${randomBytes(4).toString('hex')}`;
  const results = await mkdtemp(join(tmpdir(), 'pixelflow-service-'));
  const env: Record<string, string> = {
    REDIS_URL,
    REDIS_PREFIX: prefix,
    MODEL_DIR: TINY,
    RESULTS_DIR: results,
    LOG_LEVEL: 'silent',
    HOST: '127.0.0.1',
    PORT: '0',
    SSE_HEARTBEAT_MS: '200',
    WORKER_STALE_MS: '3000',
    ORT_THREADS: '1',
    WORKER_METRICS_PORT: '0',
    WORKER_METRICS_HOST: '127.0.0.1',
    HEARTBEAT_INTERVAL_MS: '300',
    LOCK_DURATION_MS: '2000',
    STALLED_INTERVAL_MS: '500',
    ...options.env,
  };
  const app = await buildApp(loadApiConfig(env), { logger: false });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const redis = new Redis(REDIS_URL);
  const service: TestService = {
    url: `http://127.0.0.1:${port}`,
    prefix,
    results,
    env,
    app,
    redis,
    worker: null,
    async startWorker(extra = {}) {
      const worker = await startWorker(loadWorkerConfig({ ...env, ...extra }), pino({ level: 'silent' }));
      service.worker = worker;
      return worker;
    },
    async stop() {
      await service.worker?.stop();
      await app.close();
      const stale = await redis.keys(`${prefix}:*`);
      if (stale.length > 0) await redis.del(...stale);
      redis.disconnect();
      await rm(results, { recursive: true, force: true });
    },
  };
  if (options.worker) await service.startWorker();
  return service;
}

export interface SseEvent {
  id: string;
  event: string;
  data: unknown;
}

/** Reads a whole SSE response (until the server ends it) into its events; comments are counted. */
export async function readSse(response: Response): Promise<{ events: SseEvent[]; comments: number; retry: number | null }> {
  const text = await response.text();
  const events: SseEvent[] = [];
  let comments = 0;
  let retry: number | null = null;
  for (const block of text.split('\n\n')) {
    if (block.trim() === '') continue;
    const fields: Record<string, string> = {};
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) {
        comments += 1;
        continue;
      }
      const colon = line.indexOf(':');
      fields[line.slice(0, colon)] = line.slice(colon + 1).trimStart();
    }
    if (fields['retry'] !== undefined) retry = Number(fields['retry']);
    if (fields['event'] !== undefined) events.push({ id: fields['id'] ?? '', event: fields['event'], data: JSON.parse(fields['data'] ?? 'null') });
  }
  return { events, comments, retry };
}

export async function postJob(url: string, body: unknown): Promise<Response> {
  return fetch(`${url}/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

export async function waitForStatus(url: string, id: string, statuses: string[], timeoutMs = 30_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = (await (await fetch(`${url}/jobs/${id}`)).json()) as Record<string, unknown>;
    if (statuses.includes(job['status'] as string)) return job;
    if (Date.now() > deadline) throw new Error(`job ${id} is still ${String(job['status'])} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** An API process (services/api/src/main.ts through tsx) and the URL it listens on. */
export interface ApiProcess {
  child: ChildProcess;
  url: string;
}

/**
 * Starts the API as a process of its own on a free port of 127.0.0.1, with `env` (REDIS_URL,
 * REDIS_PREFIX, AUTH ...) over this process's environment; resolves once it listens, rejects with
 * its output when it exits first. For tests of what two replicas share through Redis.
 */
export function startApiProcess(env: Record<string, string | undefined>): Promise<ApiProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'services/api/src/main.ts')], {
    cwd: REPO,
    env: { ...process.env, MODEL_DIR: TINY, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let output = '';
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (match) {
        child.stdout?.off('data', onData);
        child.stdout?.resume();
        resolve({ child, url: match[1] as string });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => reject(new Error(`the API exited (${String(code)}) before listening: ${output}`)));
  });
}

/** SIGTERMs the API processes still running and waits for them to exit. */
export async function stopApiProcesses(apis: readonly ApiProcess[]): Promise<void> {
  await Promise.all(apis.map(({ child }) => new Promise((resolve) => (child.exitCode !== null ? resolve(null) : (child.once('exit', resolve), child.kill('SIGTERM'))))));
}
