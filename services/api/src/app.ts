import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { loadModelDir } from '@pixelflow/formats';
import type { ModelManifest } from '@pixelflow/schemas';
import type { ApiConfig } from './config.ts';
import { connectInfrastructure } from './connect-infrastructure.ts';
import { registerCors } from './cors.ts';
import type { ApiContext } from './context.ts';
import { registerAuthentication } from './auth/authenticate.ts';
import { decoratePrincipal } from './auth/principal.ts';
import { registerRateLimit } from './auth/rate-limit.ts';
import { answerFrameworkError, clientErrorHandler, registerErrorHandlers } from './errors.ts';
import { problem, problemKindOf, sendProblem } from './problems.ts';
import { ProbesAtDebug, withRedaction } from './request-logs.ts';
import { decorateInfrastructure, type ApiInfrastructure } from './infrastructure.ts';
import { ApiMetrics } from './metrics.ts';
import { registerOpenApi } from './openapi/document.ts';
import { eventRoutes } from './routes/events.ts';
import { jobRoutes } from './routes/jobs.ts';
import { opsRoutes } from './routes/ops.ts';
import { webRoutes } from './routes/web.ts';

// The Fastify application: schemas on every route (zod, through the type
// provider, which also writes the OpenAPI document), problem+json errors,
// request metrics, and the routes, over the infrastructure it is given as
// decorators. It keeps no state of its own beyond open SSE streams, so any
// number of replicas can share one Redis.

export interface BuildOptions {
  logger?: FastifyServerOptions['logger'];
  /**
   * The job service, event hub and result store the routes use; whoever made them closes them.
   * Without it, buildApp connects to Redis and the results folder itself and closes them with the app.
   */
  infrastructure?: ApiInfrastructure;
}

export async function buildApp(config: ApiConfig, options: BuildOptions = {}): Promise<FastifyInstance> {
  const { manifest } = await loadModelDir(config.MODEL_DIR);
  if (options.infrastructure) return assembleApp(config, manifest, options.infrastructure, options.logger);
  const infrastructure = await connectInfrastructure(config);
  try {
    const app = await assembleApp(config, manifest, infrastructure, options.logger);
    infrastructure.reportErrorsTo(app.log);
    app.addHook('onClose', () => infrastructure.close());
    return app;
  } catch (error) {
    // Left open, the connections would keep the process alive after its caller gave up.
    await infrastructure.close();
    throw error;
  }
}

async function assembleApp(config: ApiConfig, manifest: ModelManifest, infrastructure: ApiInfrastructure, logger: BuildOptions['logger']): Promise<FastifyInstance> {
  const app = Fastify({
    logger: withRedaction(logger ?? { level: config.LOG_LEVEL }),
    bodyLimit: config.BODY_LIMIT_BYTES,
    // Request ids in every log line, echoed in X-Request-Id and kept on the jobs a request creates;
    // a client's own X-Request-Id is used when it is a plausible id, not any text it sends.
    requestIdHeader: false,
    genReqId: (request) => requestIdOf(request.headers['x-request-id']),
    logController: new ProbesAtDebug(),
    ...connectionOptions(config),
    // Refusals Fastify and Node would otherwise send as their own JSON (errors.ts).
    frameworkErrors: answerFrameworkError,
    clientErrorHandler: clientErrorHandler(config),
    return503OnClosing: false, // the closing hook below answers instead
  });
  app.server.maxConnections = config.MAX_CONNECTIONS;
  warnOfDroppedConnections(app, config.MAX_CONNECTIONS);
  decorateInfrastructure(app, infrastructure);
  decoratePrincipal(app);
  const ctx: ApiContext = { config, manifest, metrics: new ApiMetrics(infrastructure.jobs), streams: new Set() };
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  // Bodies are JSON only; anything else is a 415, not a string that fails validation.
  app.removeContentTypeParser('text/plain');
  addLifecycleHooks(app, ctx);
  if (config.AUTH === 'on') {
    if (!infrastructure.apiKeys) throw new Error('AUTH=on needs the API key store (infrastructure.apiKeys)');
    registerAuthentication(app, infrastructure.apiKeys);
  }
  // After authentication: a key's rate is known once its principal is.
  if (infrastructure.rateCounts) await registerRateLimit(app, { ...infrastructure.rateCounts, perAddressPerMinute: config.RATE_LIMIT_PER_MINUTE });
  registerErrorHandlers(app);
  await registerCors(app, config.CORS_ORIGINS);
  await registerOpenApi(app, manifest);
  await app.register(jobRoutes(ctx));
  await app.register(eventRoutes(ctx));
  await app.register(opsRoutes(ctx));
  await app.register(webRoutes(ctx));
  return app;
}

/**
 * How long a client may take and how many connections the server holds. Only the request is timed
 * (Node stops timing it once its body has arrived), so an event stream that stays open for the
 * length of a job is not cut. Node checks its connections every `connectionsCheckingInterval`
 * (30 s unless set), which would let a stalled request live half a minute past its limit.
 * A per-client cap is left to the proxy in front (deploy/README.md): behind it, every client has
 * the proxy's address, and X-Forwarded-For is only as trustworthy as that proxy.
 */
function connectionOptions(config: ApiConfig) {
  return {
    requestTimeout: config.REQUEST_TIMEOUT_MS,
    keepAliveTimeout: config.KEEP_ALIVE_TIMEOUT_MS,
    // The router's limit on one path segment, stated here because errors.ts reports it.
    routerOptions: { maxParamLength: 100 },
    http: {
      requestTimeout: config.REQUEST_TIMEOUT_MS,
      headersTimeout: config.HEADERS_TIMEOUT_MS,
      connectionsCheckingInterval: Math.min(1000, Math.floor(config.HEADERS_TIMEOUT_MS / 4)),
      // Node would answer a missing Host with an empty 400; errors.ts answers it as a problem.
      requireHostHeader: false,
    },
  };
}

/** Connections over MAX_CONNECTIONS are dropped by Node before a byte is read: say so, at most once a minute. */
function warnOfDroppedConnections(app: FastifyInstance, limit: number): void {
  let dropped = 0;
  let warnedAt = -Infinity;
  app.server.on('drop', () => {
    dropped += 1;
    if (performance.now() - warnedAt < 60_000) return;
    app.log.warn({ dropped, max_connections: limit }, 'dropped connections over MAX_CONNECTIONS');
    warnedAt = performance.now();
    dropped = 0;
  });
}

/** What a client may choose as its request id: up to 128 of letters, digits and . _ : - (UUIDs, trace ids). */
const CLIENT_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

function requestIdOf(header: string | string[] | undefined): string {
  return typeof header === 'string' && CLIENT_REQUEST_ID.test(header) ? header : crypto.randomUUID();
}

function addLifecycleHooks(app: FastifyInstance, ctx: ApiContext): void {
  let closing = false;
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    // A request that reaches a closing server (on a connection already open) is not started.
    if (closing) {
      return sendProblem(reply, problem('service-unavailable', 'the API is shutting down; retry shortly', { instance: request.url }), { 'retry-after': '1', connection: 'close' });
    }
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    // Every refusal of POST /jobs, whoever answered it (the route, schema validation, the body
    // parser, the Redis guard), counted by its problem type: validation, body_too_large, ...
    if (route === '/jobs' && request.method === 'POST' && reply.statusCode >= 400) {
      ctx.metrics.jobsRejected.inc({ reason: (problemKindOf(reply) ?? `http_${reply.statusCode}`).replaceAll('-', '_') });
    }
    if (route === '/jobs/:id/events' && reply.statusCode === 200) return; // observed when the stream ends
    ctx.metrics.httpDuration.observe({ method: request.method, route, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });
  // Open SSE streams would keep close() waiting forever; end them first.
  app.addHook('preClose', async () => {
    closing = true;
    for (const close of [...ctx.streams]) close();
  });
}
