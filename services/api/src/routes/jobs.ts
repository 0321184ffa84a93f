import { randomBytes, randomInt, createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { publishCancel } from '@pixelflow/queue';
import { imageKey, previewKey } from '@pixelflow/results';
import { formatIssuePath, GenerationError, GenerationRequest, isFinished, Job, JobId, MAX_SEED, Problem, resolveGeneration } from '@pixelflow/schemas';
import { z } from 'zod';
import type { ApiContext } from '../context.ts';
import { jobView, jobWork, remainingWork } from '../job-view.ts';
import { jobNotFound as notFound, problem, sendProblem } from '../problems.ts';
import { guardJobRoutes } from './job-guard.ts';

// POST /jobs, GET /jobs/:id, DELETE /jobs/:id and the job's PNGs.

const JobParams = z.object({ id: JobId });
/** Jobs ahead whose size a status request reads for its ETA; beyond them it extrapolates. */
const ETA_SAMPLE = 50;

function newJobId(): string {
  // Not all digits and no ':' (BullMQ's rules for custom ids); unguessable.
  return `j${randomBytes(12).toString('hex')}`;
}

async function viewOf(ctx: ApiContext, id: string): Promise<Job | null> {
  const record = await ctx.records.get(id);
  if (!record) return null;
  if (isFinished(record.status)) {
    return jobView(record, { position: null, runningWork: 0, secondsPerImageStep: null });
  }
  const [standing, active, rate] = await Promise.all([
    record.status === 'queued' ? ctx.queue.standing(id, ETA_SAMPLE) : null,
    ctx.queue.activeIds(),
    ctx.redis.hget(ctx.keys.throughput, 'seconds_per_image_step'),
  ]);
  const [running, sampled] = await Promise.all([ctx.records.workOf(active), ctx.records.workOf(standing?.ahead ?? [])]);
  // Work ahead: the sizes of the nearest jobs ahead, extrapolated to all of them (O(1) per request).
  const aheadCount = (standing?.position ?? 1) - 1;
  const sampledWork = sampled.reduce((sum, r) => sum + jobWork(r), 0);
  const workAhead = sampled.length === 0 ? aheadCount * jobWork(record) : (sampledWork / sampled.length) * aheadCount;
  const snapshot = {
    position: standing?.position ?? null,
    runningWork: running.reduce((sum, r) => sum + remainingWork(r), 0),
    secondsPerImageStep: rate === null ? null : Number(rate),
  };
  return jobView(record, snapshot, workAhead);
}

export function jobRoutes(ctx: ApiContext) {
  return async function (app: FastifyInstance): Promise<void> {
    guardJobRoutes(app, ctx.redis);
    const api = app.withTypeProvider<ZodTypeProvider>();

    api.post(
      '/jobs',
      {
        schema: {
          summary: 'Create a generation job',
          description: 'Validates the request, fills in the model defaults (and a random seed when none is given) and queues it. Follow it with GET /jobs/{id} or GET /jobs/{id}/events.',
          tags: ['jobs'],
          body: GenerationRequest,
          response: { 202: Job, 400: Problem, 503: Problem },
        },
      },
      async (request, reply) => {
        let parameters;
        try {
          parameters = resolveGeneration(request.body, ctx.manifest, () => randomInt(0, MAX_SEED + 1));
        } catch (error) {
          if (!(error instanceof GenerationError)) throw error;
          ctx.metrics.jobsRejected.inc({ reason: 'validation' });
          return sendProblem(reply, problem('validation', error.message, { errors: [{ path: formatIssuePath(error.field), message: error.reason }], instance: '/jobs' }));
        }
        const depth = await ctx.queue.depth();
        if (depth.waiting + depth.active >= ctx.config.QUEUE_CAP) {
          ctx.metrics.jobsRejected.inc({ reason: 'queue_full' });
          const rate = Number((await ctx.redis.hget(ctx.keys.throughput, 'seconds_per_image_step')) ?? 'NaN');
          const perJob = Number.isFinite(rate) ? rate * jobWork({ parameters }) : 10;
          const retryAfter = String(Math.max(1, Math.ceil(perJob)));
          return sendProblem(reply, problem('queue-full', `${depth.waiting + depth.active} jobs are queued or running (the cap is ${ctx.config.QUEUE_CAP})`, { instance: '/jobs' }), { 'retry-after': retryAfter });
        }
        const id = newJobId();
        await ctx.records.create({ id, model: ctx.manifest.name, parameters, createdAt: new Date() });
        try {
          // The queued event goes first: once queued, a worker may report `started` at once.
          await ctx.events.append(id, 'queued', { position: depth.waiting + 1 });
          await ctx.queue.add(id);
        } catch (error) {
          await ctx.records.delete(id).catch(() => undefined);
          throw error;
        }
        ctx.metrics.jobsCreated.inc();
        const view = await viewOf(ctx, id);
        request.log.info({ job_id: id, parameters }, 'job created');
        return reply.code(202).header('location', `/jobs/${id}`).send(view as Job);
      },
    );

    api.get(
      '/jobs/:id',
      { schema: { summary: 'A job: status, parameters, progress, position, ETA, result', tags: ['jobs'], params: JobParams, response: { 200: Job, 404: Problem } } },
      async (request, reply) => {
        const view = await viewOf(ctx, request.params.id);
        if (!view) return sendProblem(reply, notFound(request.params.id));
        return view;
      },
    );

    api.delete(
      '/jobs/:id',
      {
        schema: {
          summary: 'Cancel a job',
          description: 'A queued job is canceled at once (200). A running job stops within one model call (202; follow it until its status is canceled) and keeps the stage previews it reached.',
          tags: ['jobs'],
          params: JobParams,
          response: { 200: Job, 202: Job, 404: Problem, 409: Problem },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        const now = new Date();
        const before = await ctx.records.requestCancel(id, now, ctx.config.JOB_RETENTION_SECONDS);
        if (before === null) return sendProblem(reply, notFound(id));
        if (before === 'queued') {
          // Canceled before any worker ran it (requestCancel appended its final event): drop the delivery.
          await ctx.queue.removeWaiting(id);
        } else if (before === 'running') {
          await publishCancel(ctx.redis, ctx.keys, id);
        }
        if (before === 'queued' || before === 'running') {
          request.log.info({ job_id: id, was: before }, 'job cancel requested');
          return reply.code(before === 'queued' ? 200 : 202).send((await viewOf(ctx, id)) as Job);
        }
        return sendProblem(reply, problem('job-finished', `job ${id} already ${before}`, { instance: `/jobs/${id}` }));
      },
    );

    const servePng = (kind: 'images' | 'previews') =>
      async function (this: FastifyInstance, request: { params: { id: string; n: number }; headers: Record<string, string | string[] | undefined> }, reply: import('fastify').FastifyReply) {
        const { id, n } = request.params;
        const record = await ctx.records.get(id);
        const missing = (): unknown => sendProblem(reply, problem('not-found', `job ${JSON.stringify(id)} has no ${kind === 'images' ? 'image' : 'preview'} ${n}`, { instance: `/jobs/${id}/${kind}/${n}` }));
        if (!record) return sendProblem(reply, notFound(id));
        const image = kind === 'images' ? record.images?.[n] : undefined;
        if (!image && !(kind === 'previews' && record.previews.some((p) => p.stage === n))) return missing();
        const cacheable = (etag: string): typeof reply => reply.header('etag', etag).header('cache-control', 'public, max-age=31536000, immutable');
        // An image's hash is in its record: revalidating it needs no read from the disk.
        if (image && request.headers['if-none-match'] === `"${image.sha256}"`) return cacheable(`"${image.sha256}"`).code(304).send();
        const png = await ctx.store.get(image ? imageKey(id, n) : previewKey(id, n));
        if (!png) return missing();
        const etag = `"${image ? image.sha256 : createHash('sha256').update(png).digest('hex')}"`;
        if (request.headers['if-none-match'] === etag) return cacheable(etag).code(304).send();
        return cacheable(etag).type('image/png').send(png);
      };

    api.get(
      '/jobs/:id/images/:n',
      {
        schema: {
          summary: 'A generated image (PNG with its parameters in an iTXt chunk)',
          tags: ['jobs'],
          params: z.object({ id: JobId, n: z.coerce.number().int().min(0).max(7) }),
          response: { 200: z.any().meta({ description: 'image/png' }), 304: z.null(), 404: Problem },
        },
      },
      servePng('images'),
    );

    api.get(
      '/jobs/:id/previews/:n',
      {
        schema: {
          summary: 'The preview PNG of image 0 at the end of stage n (0-based)',
          tags: ['jobs'],
          params: z.object({ id: JobId, n: z.coerce.number().int().min(0).max(15) }),
          response: { 200: z.any().meta({ description: 'image/png' }), 304: z.null(), 404: Problem },
        },
      },
      servePng('previews'),
    );
  };
}
