import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { jsonSchemaTransform, jsonSchemaTransformObject, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { connectRedis, JobEventHub, JobEvents, JobQueue, JobRecords, keys as makeKeys } from '@pixelflow/queue';
import { LocalResultStore } from '@pixelflow/results';
import { loadModelDir } from '@pixelflow/formats';
import type { ApiConfig } from './config.ts';
import type { ApiContext } from './context.ts';
import { registerErrorHandlers } from './errors.ts';
import { ApiMetrics } from './metrics.ts';
import { eventRoutes } from './routes/events.ts';
import { jobRoutes } from './routes/jobs.ts';
import { opsRoutes } from './routes/ops.ts';
import { webRoutes } from './routes/web.ts';

// The Fastify application: schemas on every route (zod, through the type
// provider, which also writes the OpenAPI document), problem+json errors,
// request metrics, and the routes. It keeps no state of its own beyond open
// SSE streams, so any number of replicas can share one Redis.

const REDIS_GRACE_MS = 2000;

export interface BuildOptions {
  logger?: FastifyServerOptions['logger'];
}

export async function buildApp(config: ApiConfig, options: BuildOptions = {}): Promise<FastifyInstance> {
  const { manifest } = await loadModelDir(config.MODEL_DIR);
  const keys = makeKeys(config.REDIS_PREFIX);
  let reportRedisError = (error: Error): void => void error;
  const onRedisError = (error: Error): void => reportRedisError(error);
  const redis = connectRedis(config.REDIS_URL, 'client', 'pixelflow-api', onRedisError);
  const bullConnection = connectRedis(config.REDIS_URL, 'worker', 'pixelflow-api-queue', onRedisError);
  const subscriber = connectRedis(config.REDIS_URL, 'subscriber', 'pixelflow-api-events', onRedisError);
  const queue = new JobQueue(bullConnection, keys, onRedisError, redis);
  // From here on a failure would leave the connections reconnecting for good, keeping the
  // process alive after its caller gave up.
  try {
    const metrics = new ApiMetrics(queue);
    const ctx: ApiContext = {
      config,
      manifest,
      keys,
      redis,
      queue,
      records: new JobRecords(redis, keys),
      events: new JobEvents(redis, keys),
      hub: new JobEventHub(subscriber, keys),
      store: new LocalResultStore(config.RESULTS_DIR),
      metrics,
      streams: new Set(),
    };

    const app = Fastify({
      logger: options.logger ?? { level: config.LOG_LEVEL },
      bodyLimit: config.BODY_LIMIT_BYTES,
      // Request ids in every log line; a client's X-Request-Id is kept.
      requestIdHeader: 'x-request-id',
      genReqId: () => crypto.randomUUID(),
    });
    reportRedisError = (error) => app.log.error({ err: error }, `Redis at ${config.REDIS_URL} is unreachable`);
    app.setValidatorCompiler(validatorCompiler);
    app.setSerializerCompiler(serializerCompiler);
    // Bodies are JSON only; anything else is a 415, not a string that fails validation.
    app.removeContentTypeParser('text/plain');
    registerErrorHandlers(app);

    app.addHook('onResponse', async (request, reply) => {
      const route = request.routeOptions.url ?? 'unmatched';
      if (route === '/jobs/:id/events' && reply.statusCode === 200) return; // observed when the stream ends
      metrics.httpDuration.observe({ method: request.method, route, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000);
    });
    // Open SSE streams would keep close() waiting forever; end them first.
    app.addHook('preClose', async () => {
      for (const close of [...ctx.streams]) close();
    });
    app.addHook('onClose', async () => {
      // A connection that never reached Redis would wait forever to quit politely.
      if (bullConnection.status === 'ready') await queue.close().catch(() => undefined);
      for (const connection of [redis, bullConnection, subscriber]) {
        if (connection.status === 'ready') await connection.quit().catch(() => undefined);
        else connection.disconnect();
      }
    });

    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'PixelFlow Serve',
          version: '1.0.0',
          description: `Class-to-image generation with PixelFlow (model: ${manifest.name}). POST a job, then poll GET /jobs/{id} or follow GET /jobs/{id}/events. Errors are RFC 9457 problem+json.`,
        },
        tags: [
          { name: 'jobs', description: 'Generation jobs, their progress and their images' },
          { name: 'models', description: 'The model served' },
          { name: 'ops', description: 'Health, readiness, metrics' },
        ],
      },
      transform: jsonSchemaTransform,
      transformObject: jsonSchemaTransformObject,
    });
    await app.register(swaggerUi, { routePrefix: '/docs' });
    app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

    await app.register(jobRoutes(ctx));
    await app.register(eventRoutes(ctx));
    await app.register(opsRoutes(ctx));
    await app.register(webRoutes(ctx));
    // Not awaited: the API starts (and says it is not ready) while Redis is away; the subscription
    // is made when Redis answers, and event streams re-read on every heartbeat meanwhile.
    ctx.hub.start().catch((error: unknown) => app.log.error({ err: error }, 'subscribing to job events failed'));
    // Give Redis a moment so that the first requests do not meet a connection still opening.
    if (redis.status !== 'ready') {
      // (Not events.once: it rejects on the connection errors that a Redis still away produces.)
      await Promise.race([new Promise((resolve) => redis.once('ready', resolve)), new Promise((resolve) => setTimeout(resolve, REDIS_GRACE_MS).unref())]);
    }
    return app;
  } catch (error) {
    for (const connection of [redis, bullConnection, subscriber]) connection.disconnect();
    throw error;
  }
}
