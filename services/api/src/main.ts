import type { FastifyInstance } from 'fastify';
import { EnvError } from '@pixelflow/schemas';
import { buildApp } from './app.ts';
import { loadApiConfig, type ApiConfig } from './config.ts';
import { connectInfrastructure, type ConnectedInfrastructure } from './connect-infrastructure.ts';

// The API process: the infrastructure (Redis, the results folder), the app on
// it, and the order they close in. Configuration errors are one line on stderr
// and exit 2; SIGTERM/SIGINT close the server (SSE streams first), then the
// connections, and exit.

async function start(config: ApiConfig): Promise<{ app: FastifyInstance; infrastructure: ConnectedInfrastructure } | null> {
  let infrastructure: ConnectedInfrastructure | undefined;
  let app: FastifyInstance | undefined;
  try {
    infrastructure = await connectInfrastructure(config);
    app = await buildApp(config, { infrastructure, logger: { level: config.LOG_LEVEL, base: { service: 'api', pid: process.pid } } });
    infrastructure.reportErrorsTo(app.log);
    await app.listen({ host: config.HOST, port: config.PORT });
    return { app, infrastructure };
  } catch (error) {
    process.stderr.write(`pixelflow api: ${(error as Error).message}\n`);
    // A failed start leaves the Redis connections open, reconnecting for good.
    await app?.close().catch(() => undefined);
    await infrastructure?.close();
    return null;
  }
}

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
  const started = await start(config);
  if (!started) return 1;
  const { app, infrastructure } = started;
  await new Promise<void>((resolve) => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      process.once(signal, () => {
        app.log.info({ signal }, 'closing');
        void app.close().finally(() => infrastructure.close()).then(resolve, resolve);
      });
    }
  });
  return 0;
}

process.exitCode = await main();
