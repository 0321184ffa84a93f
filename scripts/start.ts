import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { EnvError } from '@pixelflow/schemas';
import { buildWeb } from '@pixelflow/web/build';
import { loadApiConfig, type ApiConfig } from '../services/api/src/config.ts';
import { ortThreadsOnSharedMachine } from '../services/worker/src/config.ts';
import { bundle, ensureFresh, REPO, serviceNodeArgs } from './compiled.mjs';
import { readableLogs, wantsReadableLogs } from './service-logs.ts';

// `pnpm start`: the whole service on one machine with the embedded default
// model: finds Redis (or starts a private redis-server when none answers and
// the binary is installed), starts the worker and the API, waits until the
// API is ready and prints its URL. Ctrl-C stops everything cleanly.
// The services run as compiled bundles (scripts/build.mjs), rebuilt here first
// when a source is newer than them. Configuration is the services' environment
// variables (docs/operators/running.md).

const env: Record<string, string | undefined> = { ...process.env };
env['RESULTS_DIR'] ??= join(REPO, 'data/results');
// The worker shares this machine with the API and Redis: leave them a CPU (sharedMachineOrtThreads).
env['ORT_THREADS'] = ortThreadsOnSharedMachine(env);
// Redis to probe and the address to print, as the services will read them (their defaults
// included), so a changed default cannot send this script elsewhere.
let config: ApiConfig;
try {
  config = loadApiConfig(env);
} catch (error) {
  if (!(error instanceof EnvError)) throw error;
  say(error.message);
  process.exit(2);
}
const children: ChildProcess[] = [];
let stopping = false;

/**
 * What the ready line says about API keys. On this machine AUTH stays off unless asked for (the API
 * listens on 127.0.0.1 by default, where every client is local), and the line says so, loudest when
 * the API listens beyond loopback without keys.
 */
function authLine({ AUTH, HOST }: ApiConfig): string {
  if (AUTH === 'on') return 'auth: on (make a key: pnpm pixelflow keys create --name NAME)';
  const loopback = ['127.0.0.1', 'localhost', '::1'].includes(HOST);
  return loopback ? 'auth: off (API keys are not needed on 127.0.0.1; AUTH=on turns them on)' : `auth: OFF while listening on ${HOST}: anyone who reaches it may use it; set AUTH=on (docs/api-keys.md)`;
}

function say(line: string): void {
  process.stderr.write(`pixelflow start: ${line}\n`);
}

async function redisAnswers(url: string): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 1500, retryStrategy: () => null });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.ping();
    return true;
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

function hasRedisServer(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

async function ensureRedis(): Promise<void> {
  const url = config.REDIS_URL;
  if (await redisAnswers(url)) {
    say(`using Redis at ${url}`);
    return;
  }
  const parsed = new URL(url);
  const local = ['127.0.0.1', 'localhost', '::1', '[::1]'].includes(parsed.hostname);
  if (!local || !hasRedisServer()) {
    say(`no Redis answers at ${url}.`);
    say('Start one (Debian/Ubuntu: `apt-get install redis-server`; Docker: `docker run -p 6379:6379 redis:7`),');
    say('or point REDIS_URL at yours. With redis-server installed, `pnpm start` runs a private one itself.');
    process.exit(1);
  }
  const port = parsed.port === '' ? '6379' : parsed.port;
  const dir = mkdtempSync(join(tmpdir(), 'pixelflow-redis-'));
  // A throwaway Redis for this run: no persistence, and it never evicts queue data.
  const redis = spawn('redis-server', ['--port', port, '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction'], {
    stdio: 'ignore',
  });
  children.push(redis);
  redis.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  for (let i = 0; i < 50; i++) {
    if (await redisAnswers(url)) {
      say(`started a private redis-server on port ${port} (its data goes when this stops)`);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  say(`redis-server did not start on port ${port}`);
  shutdown(1);
}

/** Rebuilds the API's and the worker's bundles if a source is newer than them; exits 1 if that fails. */
async function ensureServicesBuilt(): Promise<void> {
  try {
    const rebuilt = await ensureFresh([bundle('api'), bundle('worker')], { logLevel: 'error' });
    if (rebuilt.length > 0) say(`rebuilt the ${rebuilt.join(' and ')} from changed sources`);
  } catch (error) {
    say((error as Error).message);
    process.exit(1);
  }
}

function startService(name: 'api' | 'worker'): void {
  const readable = wantsReadableLogs();
  const child = spawn(process.execPath, serviceNodeArgs(name), { cwd: REPO, env, stdio: ['inherit', readable ? 'pipe' : 'inherit', 'inherit'] });
  // One readable stream per service: lines of two services must not mix mid-line.
  if (readable) child.stdout?.pipe(readableLogs(1));
  children.push(child);
  child.once('exit', (code, signal) => {
    if (stopping) return;
    say(`the ${name} stopped unexpectedly (${signal ?? `exit ${code}`}); stopping everything`);
    shutdown(1);
  });
}

function shutdown(code: number): void {
  if (stopping) return;
  stopping = true;
  const running = children.filter((c) => c.exitCode === null && c.signalCode === null).reverse();
  // API and worker first (the worker may hand its job back), Redis last.
  const services = running.filter((c) => c.spawnfile !== 'redis-server');
  const redis = running.filter((c) => c.spawnfile === 'redis-server');
  for (const child of services) child.kill('SIGTERM');
  void Promise.all(services.map((c) => new Promise((resolve) => c.once('exit', resolve)))).then(() => {
    for (const child of redis) child.kill('SIGTERM');
    process.exit(code);
  });
}

process.on('SIGINT', () => shutdown(0));
process.on('SIGTERM', () => shutdown(0));

await ensureServicesBuilt();
await ensureRedis();
// The page is built on every start (about a second), so it always matches the sources.
if (env['WEB_DIR'] === undefined) {
  try {
    await buildWeb();
  } catch (error) {
    say(`building the web page failed (${(error as Error).message}); the API runs without it`);
  }
}
startService('worker');
startService('api');
const base = `http://${config.HOST === '0.0.0.0' ? '127.0.0.1' : config.HOST}:${config.PORT}`;
for (let waited = 0; !stopping; waited += 250) {
  const status = await fetch(`${base}/readyz`).then((r) => r.status, () => 0);
  if (status === 200) {
    say(`ready: open ${base}/ in a browser  (API docs: ${base}/docs, try: curl -s -X POST ${base}/jobs${config.AUTH === 'on' ? ' -H "Authorization: Bearer $KEY"' : ''} -H 'content-type: application/json' -d '{"class": "digit 7"}'); ${authLine(config)}`);
    break;
  }
  if (waited > 0 && waited % 10_000 === 0) say(`waiting for the worker to load the model (${waited / 1000} s)`);
  await new Promise((resolve) => setTimeout(resolve, 250));
}
