import { spawn, type ChildProcess } from 'node:child_process';
import { bundle, ensureFresh, REPO, serviceNodeArgs } from '../scripts/compiled.mjs';

// What the service benchmarks share: the API and the worker as child processes, started the way
// `pnpm start` starts them (their compiled bundles, rebuilt first if a source is newer), and a wait
// for them to answer.

export interface BenchServiceOptions {
  redisUrl: string;
  prefix: string;
  model: string;
  results: string;
  port: string;
  metricsPort: string;
  ortThreads: string;
}

/** The services' environment for a benchmark: its own key prefix and folder, quiet logs, no queue cap. */
export function benchServiceEnv(o: BenchServiceOptions): NodeJS.ProcessEnv {
  return {
    ...process.env,
    REDIS_URL: o.redisUrl,
    REDIS_PREFIX: o.prefix,
    MODEL_DIR: o.model,
    RESULTS_DIR: o.results,
    HOST: '127.0.0.1',
    PORT: o.port,
    LOG_LEVEL: 'error',
    QUEUE_CAP: '1000000',
    WORKER_METRICS_HOST: '127.0.0.1',
    WORKER_METRICS_PORT: o.metricsPort,
    ORT_THREADS: o.ortThreads,
  };
}

/** Rebuilds the service bundles if a source is newer; call before startService (once is enough). */
export async function prepareServices(): Promise<void> {
  await ensureFresh([bundle('api'), bundle('worker')]);
}

/** Starts `services/<name>` with `env`; its output goes to this process's. */
export function startService(name: 'api' | 'worker', env: NodeJS.ProcessEnv): ChildProcess {
  return spawn(process.execPath, serviceNodeArgs(name), { cwd: REPO, env, stdio: ['ignore', 'inherit', 'inherit'] });
}

/** Resolves once `check` does, trying every 100 ms for up to `seconds`. */
export async function until(check: () => Promise<boolean>, what: string, seconds = 120): Promise<void> {
  for (let i = 0; i < seconds * 10; i++) {
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}
