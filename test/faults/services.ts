import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Redis } from 'ioredis';
import { benchServiceEnv } from '../../bench/service-processes.ts';
import { freePort } from '../../packages/queue/test/support/redis-server.ts';
import { REPO, serviceNodeArgs } from '../../scripts/compiled.mjs';
import type { SuiteRedis } from './redis.ts';

// The API and the worker as `pnpm start` runs them: their compiled bundles as child processes of
// this one, configured by environment variables only. Each check gets a deployment of its own (a
// Redis key prefix and a results folder) on the suite's Redis, so that one check's jobs, streams
// and queue never count in another's. Their logs go to files in the run's folder (named in the
// report when a check fails) instead of this terminal.

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class ServiceProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly logFile: string;
  readonly exited: Promise<Exit>;
  private exit: Exit | null = null;

  constructor(name: string, child: ChildProcess, logFile: string) {
    this.name = name;
    this.child = child;
    this.logFile = logFile;
    this.exited = new Promise<Exit>((resolve) =>
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      }),
    );
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error(`${this.name} has no pid (it did not start)`);
    return this.child.pid;
  }

  alive(): boolean {
    return this.exit === null;
  }

  /** Sends `signal` and waits for the exit (SIGKILL after `graceMs` if it is still running then). */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 30_000): Promise<Exit> {
    if (this.exit) return this.exit;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }
}

/** What heap-probe.mjs reports: bytes the process's JavaScript holds after a full collection. */
export interface HeapAfterGc {
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

const HEAP_PROBE = fileURLToPath(new URL('./heap-probe.mjs', import.meta.url));

export class ApiProcess extends ServiceProcess {
  readonly port: number;
  private readonly heapProbeFile: string | null;
  private heapProbes = 0;

  constructor(child: ChildProcess, logFile: string, port: number, heapProbeFile: string | null) {
    super('api', child, logFile);
    this.port = port;
    this.heapProbeFile = heapProbeFile;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Collects the API's garbage and reads what it still holds (an API started with `heapProbe`). */
  async heapAfterGc(timeoutMs = 10_000): Promise<HeapAfterGc> {
    if (this.heapProbeFile === null) throw new Error('the API was started without the heap probe');
    this.heapProbes += 1;
    this.child.kill('SIGUSR2');
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = await readFile(this.heapProbeFile, 'utf8').catch(() => '');
      const report = text === '' ? null : (JSON.parse(text) as HeapAfterGc & { answered: number });
      if (report && report.answered >= this.heapProbes) return report;
      if (Date.now() > deadline) throw new Error(`the API's heap probe did not answer within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

export class WorkerProcess extends ServiceProcess {
  readonly metricsPort: number;

  constructor(child: ChildProcess, logFile: string, metricsPort: number) {
    super('worker', child, logFile);
    this.metricsPort = metricsPort;
  }

  /** The worker's own /metrics, or '' when it does not answer. */
  async metrics(): Promise<string> {
    try {
      const response = await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`, { signal: AbortSignal.timeout(2000) });
      return response.ok ? await response.text() : '';
    } catch {
      return '';
    }
  }

  /** Jobs it runs now (pixelflow_jobs_running), or null when its metrics do not answer. */
  async running(): Promise<number | null> {
    return metricValue(await this.metrics(), 'pixelflow_jobs_running');
  }
}

/** The value of an unlabelled (or first matching) series in a Prometheus text scrape. */
export function metricValue(scrape: string, series: string): number | null {
  for (const line of scrape.split('\n')) {
    if (line.startsWith(`${series} `) || line.startsWith(`${series}{`)) {
      const value = Number(line.slice(line.lastIndexOf(' ') + 1));
      if (Number.isFinite(value)) return value;
    }
  }
  return null;
}

let deployments = 0;

/** One check's service: its key prefix, results folder, environment and the processes it started. */
export class Deployment {
  readonly name: string;
  readonly prefix: string;
  readonly results: string;
  readonly processes: ServiceProcess[] = [];
  private readonly root: string;
  private readonly redis: SuiteRedis;
  private readonly model: string;
  private readonly env: Record<string, string>;
  private starts = 0;

  constructor(name: string, root: string, redis: SuiteRedis, model: string, env: Record<string, string>) {
    this.name = name;
    this.root = root;
    this.redis = redis;
    this.model = model;
    this.env = env;
    deployments += 1;
    this.prefix = `faults-${deployments}-${name}`;
    this.results = join(root, name, 'results');
  }

  private baseEnv(port: number, metricsPort: number): NodeJS.ProcessEnv {
    return {
      ...benchServiceEnv({
        redisUrl: this.redis.url,
        prefix: this.prefix,
        model: this.model,
        results: this.results,
        port: String(port),
        metricsPort: String(metricsPort),
        // The API, Redis and this suite share the machine with the worker (sharedMachineOrtThreads).
        ortThreads: '1',
      }),
      // Warnings and errors, for whoever reads a failed check's logs.
      LOG_LEVEL: 'warn',
      // A killed worker's heartbeat stops counting soon, so /readyz and Retry-After follow the kills.
      WORKER_STALE_MS: '3000',
      HEARTBEAT_INTERVAL_MS: '500',
      ...this.env,
    };
  }

  private async spawnService(kind: 'api' | 'worker', env: NodeJS.ProcessEnv, nodeFlags: string[] = []): Promise<{ child: ChildProcess; logFile: string }> {
    await mkdir(join(this.root, this.name), { recursive: true });
    this.starts += 1;
    const logFile = join(this.root, this.name, `${kind}-${this.starts}.log`);
    const fd = openSync(logFile, 'a');
    const child = spawn(process.execPath, [...nodeFlags, ...serviceNodeArgs(kind)], { cwd: REPO, env, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    return { child, logFile };
  }

  /**
   * Starts the API; resolves once /healthz answers. `extra` is added to the environment; with
   * `heapProbe`, the API answers heapAfterGc() (heap-probe.mjs).
   */
  async startApi(extra: Record<string, string> = {}, { heapProbe = false } = {}): Promise<ApiProcess> {
    const port = await freePort();
    const heapProbeFile = heapProbe ? join(this.root, this.name, `api-${this.starts + 1}.heap.json`) : null;
    const probeEnv = heapProbeFile ? { PIXELFLOW_HEAP_PROBE_FILE: heapProbeFile } : {};
    const probeFlags = heapProbeFile ? ['--expose-gc', '--import', pathToFileURL(HEAP_PROBE).href] : [];
    const { child, logFile } = await this.spawnService('api', { ...this.baseEnv(port, 0), ...extra, ...probeEnv }, probeFlags);
    const api = new ApiProcess(child, logFile, port, heapProbeFile);
    this.processes.push(api);
    await untilOrExit(api, () => fetch(`${api.url}/healthz`).then((r) => r.status === 200), `the API of ${this.name}`);
    return api;
  }

  /** Starts a worker; resolves once it has its model loaded and takes jobs (pixelflow_worker_ready 1), unless `wait` is false. */
  async startWorker(extra: Record<string, string> = {}, wait = true): Promise<WorkerProcess> {
    const metricsPort = await freePort();
    const { child, logFile } = await this.spawnService('worker', { ...this.baseEnv(0, metricsPort), ...extra });
    const worker = new WorkerProcess(child, logFile, metricsPort);
    this.processes.push(worker);
    if (wait) await untilOrExit(worker, async () => metricValue(await worker.metrics(), 'pixelflow_worker_ready') === 1, `the worker of ${this.name}`);
    return worker;
  }

  /** A connection to the suite's Redis, for reading what the services wrote; the caller closes it. */
  redisClient(): Redis {
    return this.redis.connect();
  }

  /** SIGKILLs whatever is still running (a check that failed half-way). */
  async killAll(): Promise<void> {
    await Promise.all(this.processes.filter((p) => p.alive()).map((p) => p.stop('SIGKILL')));
  }

  /** The files in a job's results folder. */
  async jobFiles(id: string): Promise<string[]> {
    return readdir(join(this.results, id)).catch(() => []);
  }

  async readResult(id: string, file: string): Promise<Buffer | null> {
    return readFile(join(this.results, id, file)).catch(() => null);
  }
}

/** Polls `check` every 100 ms for up to a minute, giving up as soon as `process` exits; the error ends with its log. */
async function untilOrExit(process: ServiceProcess, check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (!process.alive()) throw new Error(`${what} exited at start-up; ${process.logFile} ends:\n${await tail(process.logFile)}`);
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; ${process.logFile} ends:\n${await tail(process.logFile)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function tail(file: string): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.split('\n').slice(-15).join('\n');
}
