import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../../packages/queue/test/support/redis-server.ts';
import { bundle, ensureFresh, REPO, serviceNodeArgs } from '../../scripts/compiled.mjs';

// Several API and worker processes on one Redis, as a deployment past one machine runs them: the
// compiled bundles `pnpm start` runs (or their sources), configured by environment variables only, under one key
// prefix of their own and one results store, which the caller's environment names (S3): each
// process has a results folder of its own, so nothing is shared through a disk. Each process logs to a file in the cluster's folder, whose end a failure quotes.
// Used by the cluster test (test/cluster/) and by `pnpm bench:cluster`.

export interface ClusterOptions {
  redisUrl: string;
  model: string;
  /** Added to every process's environment (store, timings, batching, ...). */
  env?: Record<string, string>;
  /** Key prefix; a random one of the cluster's own by default. */
  prefix?: string;
  logLevel?: string;
  /**
   * Run the TypeScript sources (through tsx) instead of the compiled bundles: each process then pays
   * about a second to compile at start, but nothing is built first (the tests); the bench runs the
   * bundles, as `pnpm start` does.
   */
  fromSource?: boolean;
}

const SOURCES = { api: 'services/api/src/main.ts', worker: 'services/worker/src/main.ts' } as const;

export class ServiceProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly logFile: string;
  readonly exited: Promise<void>;

  constructor(name: string, child: ChildProcess, logFile: string) {
    this.name = name;
    this.child = child;
    this.logFile = logFile;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  signal(signal: NodeJS.Signals): void {
    if (this.alive()) this.child.kill(signal);
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  async stop(graceMs = 20_000): Promise<void> {
    if (!this.alive()) return;
    this.child.kill('SIGCONT');
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  async log(): Promise<string> {
    return readFile(this.logFile, 'utf8').catch(() => '');
  }

  async tail(lines = 20): Promise<string> {
    return (await this.log()).split('\n').slice(-lines).join('\n');
  }
}

export class ApiProcess extends ServiceProcess {
  readonly url: string;

  constructor(name: string, child: ChildProcess, logFile: string, port: number) {
    super(name, child, logFile);
    this.url = `http://127.0.0.1:${port}`;
  }
}

export class WorkerProcess extends ServiceProcess {
  readonly workerId: string;
  readonly metricsUrl: string;

  constructor(name: string, child: ChildProcess, logFile: string, workerId: string, metricsPort: number) {
    super(name, child, logFile);
    this.workerId = workerId;
    this.metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  }

  async metrics(): Promise<string> {
    const response = await fetch(this.metricsUrl, { signal: AbortSignal.timeout(5000) });
    return response.text();
  }

  /** The value of one series of its scrape (`series` as written there, labels included), or null. */
  async metric(series: string): Promise<number | null> {
    const line = (await this.metrics()).split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? null : Number(line.slice(series.length + 1));
  }
}

export class Cluster {
  readonly prefix: string;
  readonly apis: ApiProcess[] = [];
  readonly workers: WorkerProcess[] = [];
  readonly folder: string;
  readonly results: string;
  private readonly options: ClusterOptions;

  private constructor(options: ClusterOptions, folder: string) {
    this.options = options;
    this.prefix = options.prefix ?? `pfcluster-${randomBytes(4).toString('hex')}`;
    this.folder = folder;
    this.results = join(folder, 'results');
  }

  /** A cluster with no process yet; the service bundles are rebuilt first if a source is newer. */
  static async create(options: ClusterOptions): Promise<Cluster> {
    if (!options.fromSource) await ensureFresh([bundle('api'), bundle('worker')]);
    return new Cluster(options, await mkdtemp(join(tmpdir(), 'pixelflow-cluster-')));
  }

  private env(name: string, extra: Record<string, string>): NodeJS.ProcessEnv {
    return {
      ...process.env,
      REDIS_URL: this.options.redisUrl,
      REDIS_PREFIX: this.prefix,
      MODEL_DIR: this.options.model,
      // A folder per process: no two share a disk, as on separate machines; the store the
      // caller's environment names (S3) is what they share.
      RESULTS_DIR: join(this.results, name),
      HOST: '127.0.0.1',
      LOG_LEVEL: this.options.logLevel ?? 'info',
      WORKER_METRICS_HOST: '127.0.0.1',
      ...this.options.env,
      ...extra,
    };
  }

  private spawn(name: string, kind: 'api' | 'worker', env: NodeJS.ProcessEnv): { child: ChildProcess; logFile: string } {
    const logFile = join(this.folder, `${name}.log`);
    const fd = openSync(logFile, 'a');
    const args = this.options.fromSource ? ['--enable-source-maps', '--import', 'tsx', SOURCES[kind]] : serviceNodeArgs(kind);
    const child = spawn(process.execPath, args, { cwd: REPO, env, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    return { child, logFile };
  }

  /** Starts an API; resolves once /healthz answers. */
  async startApi(extra: Record<string, string> = {}): Promise<ApiProcess> {
    const port = await freePort();
    const name = `api-${this.apis.length + 1}`;
    const { child, logFile } = this.spawn(name, 'api', this.env(name, { PORT: String(port), ...extra }));
    const api = new ApiProcess(name, child, logFile, port);
    this.apis.push(api);
    await untilOrExit(api, async () => (await fetch(`${api.url}/healthz`)).ok);
    return api;
  }

  /** Starts a worker (WORKER_ID worker-N); resolves once it takes jobs (pixelflow_worker_ready 1). */
  async startWorker(extra: Record<string, string> = {}): Promise<WorkerProcess> {
    const metricsPort = await freePort();
    const name = `worker-${this.workers.length + 1}`;
    const { child, logFile } = this.spawn(name, 'worker', this.env(name, { WORKER_ID: name, WORKER_METRICS_PORT: String(metricsPort), ...extra }));
    const worker = new WorkerProcess(name, child, logFile, name, metricsPort);
    this.workers.push(worker);
    await untilOrExit(worker, async () => (await worker.metric('pixelflow_worker_ready')) === 1);
    return worker;
  }

  /** A client of the cluster's Redis, for reading what the services wrote; the caller disconnects it. */
  redis(): Redis {
    return new Redis(this.options.redisUrl);
  }

  /**
   * Stops every process (SIGTERM, SIGKILL after `graceMs`), deletes the cluster's keys (unless
   * `keepKeys`: a Redis of the test's own that goes with it) and, unless `keepFolder`, its folder.
   */
  async stop(options: { graceMs?: number; keepFolder?: boolean; keepKeys?: boolean } = {}): Promise<void> {
    await Promise.all([...this.apis, ...this.workers].map((p) => p.stop(options.graceMs)));
    if (!options.keepKeys) await this.deleteKeys();
    if (!options.keepFolder) await rm(this.folder, { recursive: true, force: true });
  }

  private async deleteKeys(): Promise<void> {
    const redis = this.redis();
    try {
      let cursor = '0';
      do {
        const [next, found] = await redis.scan(cursor, 'MATCH', `${this.prefix}:*`, 'COUNT', 1000);
        cursor = next;
        if (found.length > 0) await redis.del(...found);
      } while (cursor !== '0');
    } finally {
      redis.disconnect();
    }
  }
}

/** Polls `check` every 100 ms for up to 90 s, giving up as soon as the process exits; the error quotes its log. */
async function untilOrExit(process: ServiceProcess, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (!process.alive()) throw new Error(`${process.name} exited at start-up; ${process.logFile} ends:\n${await process.tail()}`);
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${process.name}; ${process.logFile} ends:\n${await process.tail()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
