import { EnvError } from '@pixelflow/schemas';
import { pino } from 'pino';
import { loadWorkerConfig } from './config.ts';
import { startWorker, type RunningWorker } from './worker.ts';

// `pnpm --filter @pixelflow/worker start`: the worker process. Configuration
// errors are one line on stderr and exit 2; SIGTERM/SIGINT stop it cleanly.

async function main(): Promise<number> {
  let config;
  try {
    config = loadWorkerConfig();
  } catch (error) {
    if (error instanceof EnvError) {
      process.stderr.write(`pixelflow worker: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  const log = pino({ level: config.LOG_LEVEL, base: { service: 'worker', pid: process.pid } });
  // Signals are handled from the start: one that arrives while the model loads stops the worker
  // as soon as it is up, instead of killing the process half-way.
  let worker: RunningWorker | undefined;
  let stopRequested = false;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      log.info({ signal }, 'signal received');
      stopRequested = true;
      void worker?.stop();
    });
  }
  try {
    worker = await startWorker(config, log);
  } catch (error) {
    log.fatal({ err: error }, 'worker failed to start');
    process.stderr.write(`pixelflow worker: ${(error as Error).message}\n`);
    return 1;
  }
  if (stopRequested) void worker.stop();
  await worker.stopped;
  return 0;
}

process.exitCode = await main();
