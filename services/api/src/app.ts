import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { jsonSchemaTransform, jsonSchemaTransformObject, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { connectRedis, JobEventHub, JobEvents, JobQueue, JobRecords, keys as makeKeys } from '@pixelflow/queue';
import { LocalResultStore } from '@pixelflow/results';
import { loadModelDir } from '@pixelflow/sampler';
import type { ApiConfig } from './config.ts';
import type { ApiContext } from './context.ts';
import { registerErrorHandlers } from './errors.ts';
import { ApiMetrics } from './metrics.ts';
import { eventRoutes } from './routes/events.ts';
import { jobRoutes } from './routes/jobs.ts';
import { opsRoutes } from './routes/ops.ts';

// The Fastify application: schemas on every route (zod, through the type
// provider, which also writes the OpenAPI document), problem+json errors,
// request metrics, and the routes. It keeps no state of its own beyond open
// SSE streams, so any number of replicas can share one Redis.

export interface BuildOptions {
  logger?: FastifyServerOptions['logger'];
}

export async function buildApp(config: ApiConfig, options: BuildOptions = {}): Promise<FastifyInstance> {
  const { manifest } = await loadModelDir(config.MODEL_DIR);
  const keys = makeKeys(config.REDIS_PREFIX);
  const redis = connectRedis(config.REDIS_URL, 'client', 'pixelflow-api');
  const bullConnection = connectRedis(config.REDIS_URL, 'worker', 'pixelflow-api-queue');
  const subscriber = connectRedis(config.REDIS_URL, 'subscriber', 'pixelflow-api-events');
  const queue = new JobQueue(bullConnection, keys);
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
    await queue.close();
    await Promise.all([redis.quit(), bullConnection.quit(), subscriber.quit()].map((p) => p.catch(() => undefined)));
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
  await ctx.hub.start();
  return app;
}
