import { EnvError } from '@pixelflow/schemas';
import { pino } from 'pino';
import { loadWorkerConfig } from './config.ts';
import { startWorker } from './worker.ts';

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
  let worker;
  try {
    worker = await startWorker(config, log);
  } catch (error) {
    log.fatal({ err: error }, 'worker failed to start');
    process.stderr.write(`pixelflow worker: ${(error as Error).message}\n`);
    return 1;
  }
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      log.info({ signal }, 'signal received');
      void worker.stop();
    });
  }
  await worker.stopped;
  return 0;
}

process.exitCode = await main();
