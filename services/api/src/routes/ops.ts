import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { JobService, WorkerHeartbeat } from '@pixelflow/queue';
import { ClassList, ModelList, Readiness } from '@pixelflow/schemas';
import { z } from 'zod';
import type { ApiContext } from '../context.ts';
import { json, problems, text } from '../openapi/responses.ts';
import { problem, PROBLEMS, problemType, sendProblem, sendRedisUnavailable, type ProblemKind } from '../problems.ts';
import { requireRedis } from './job-guard.ts';

// The model, health, readiness, metrics and the problem types' explanations.

const ProblemType = z.object({ type: z.string(), title: z.string(), status: z.int(), description: z.string() });

async function servingWorkers(jobs: JobService, ctx: ApiContext): Promise<WorkerHeartbeat[]> {
  const now = Date.now();
  const all = await jobs.liveWorkers();
  return all.filter(
    (w) => w.model.weights_sha256 === ctx.manifest.source.weights_sha256 && now - Date.parse(w.sent_at) <= ctx.config.WORKER_STALE_MS,
  );
}

export function opsRoutes(ctx: ApiContext) {
  return async function (app: FastifyInstance): Promise<void> {
    const api = app.withTypeProvider<ZodTypeProvider>();
    // The manifest does not change while the API runs: only the workers' state is per request.
    const m = ctx.manifest;
    const model = {
      name: m.name,
      resolution: m.resolution,
      stages: m.stages.map((s) => ({ index: s.index, resolution: s.resolution })),
      classes: m.classes.names.length,
      parameters: m.architecture.parameters,
      dtype: m.dtype,
      defaults: m.defaults,
    };
    const classList = { classes: m.classes.names.map((name, index) => ({ index, name })) };

    api.get('/models', { onRequest: requireRedis(app), schema: { operationId: 'listModels', summary: 'The model this service runs', tags: ['models'], response: { 200: json(ModelList, 'The model, with its state'), ...problems('service-unavailable') } } }, async () => {
      const workers = await servingWorkers(app.jobs, ctx);
      const ready = workers.filter((w) => w.state === 'ready');
      const status = ready.length > 0 ? ('ready' as const) : workers.some((w) => w.state === 'loading') ? ('loading' as const) : ('unavailable' as const);
      return { models: [{ ...model, status, provider: ready[0]?.provider ?? null, workers: ready.length }] };
    });

    api.get(
      '/models/classes',
      { schema: { operationId: 'listModelClasses', summary: 'The classes a job can ask for', tags: ['models'], response: { 200: json(ClassList, 'The classes, by index'), ...problems() } } },
      async () => classList,
    );

    api.get(
      '/healthz',
      { schema: { operationId: 'getLiveness', summary: 'Liveness: the API process answers', tags: ['ops'], response: { 200: json(z.object({ status: z.literal('ok') }), 'The process is alive'), ...problems() } } },
      async () => ({ status: 'ok' as const }),
    );

    api.get(
      '/readyz',
      {
        onRequest: requireRedis(app),
        schema: {
          operationId: 'getReadiness',
          summary: 'Readiness: Redis answers and a worker has the model loaded',
          description: 'Load balancers should send traffic only while this is 200. It is 503 while the worker still loads the model (the moment the original demo answered "Bad Gateway").',
          tags: ['ops'],
          response: { 200: json(Readiness, 'Ready: Redis answers and a worker has the model loaded'), ...problems('service-unavailable') },
        },
      },
      async (request, reply) => {
        try {
          await app.jobs.ping(1000);
        } catch (error) {
          // The client hears what is wrong in the API's words; ioredis's own text (addresses,
          // option names) is for the operator's log.
          request.log.warn({ err: error }, 'readiness: Redis did not answer PING');
          return sendRedisUnavailable(reply, request.url);
        }
        const workers = await servingWorkers(app.jobs, ctx);
        const ready = workers.filter((w) => w.state === 'ready');
        if (ready.length === 0) {
          const detail = workers.some((w) => w.state === 'loading') ? `a worker is loading the model ${ctx.manifest.name}` : `no worker with the model ${ctx.manifest.name} has sent a heartbeat in the last ${ctx.config.WORKER_STALE_MS / 1000} s`;
          return sendProblem(reply, problem('service-unavailable', detail, { instance: '/readyz' }), { 'retry-after': '5' });
        }
        return { status: 'ready' as const, workers: ready.length };
      },
    );

    const metricsSchema = {
      operationId: 'getMetrics',
      summary: 'Prometheus metrics of the API (the worker serves its own)',
      tags: ['ops'],
      response: { 200: text('text/plain', 'The metrics in the Prometheus text exposition format, version 0.0.4'), ...problems() },
    };
    app.get('/metrics', { schema: metricsSchema }, async (_request, reply) => {
      return reply.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
    });

    api.get(
      '/problems/:kind',
      {
        schema: {
          operationId: 'getProblemType',
          summary: 'What a problem type means',
          tags: ['ops'],
          params: z.object({ kind: z.string().meta({ description: 'The last segment of a problem’s type, e.g. validation' }) }),
          response: { 200: json(ProblemType, 'The problem type'), ...problems('not-found') },
        },
      },
      async (request, reply) => {
        const kind = request.params.kind as ProblemKind;
        const known = Object.hasOwn(PROBLEMS, kind) ? PROBLEMS[kind] : undefined;
        if (!known) return sendProblem(reply, problem('not-found', `no problem type ${JSON.stringify(request.params.kind)}`));
        return { type: problemType(kind), title: known.title, status: known.status, description: known.about };
      },
    );
  };
}
