import { EnvError } from '@pixelflow/schemas';
import { buildApp } from './app.ts';
import { loadApiConfig } from './config.ts';

// The API process. Configuration errors are one line on stderr and exit 2;
// SIGTERM/SIGINT close the server (SSE streams first) and exit.

async function main(): Promise<number> {
  let config;
  try {
    config = loadApiConfig();
  } catch (error) {
    if (error instanceof EnvError) {
      process.stderr.write(`pixelflow api: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  let app;
  try {
    app = await buildApp(config, { logger: { level: config.LOG_LEVEL, base: { service: 'api', pid: process.pid } } });
    await app.listen({ host: config.HOST, port: config.PORT });
  } catch (error) {
    process.stderr.write(`pixelflow api: ${(error as Error).message}\n`);
    // A listen that failed leaves the Redis connections open, reconnecting for good.
    await app?.close().catch(() => undefined);
    return 1;
  }
  const running = app;
  await new Promise<void>((resolve) => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      process.once(signal, () => {
        running.log.info({ signal }, 'closing');
        void running.close().then(resolve, resolve);
      });
    }
  });
  return 0;
}

process.exitCode = await main();
