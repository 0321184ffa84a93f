import { randomInt } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { IDEMPOTENCY_KEY_PATTERN, type JobService } from '@pixelflow/queue';
import { imageKey, previewKey, ResultStoreUnavailableError, type ResultStore } from '@pixelflow/results';
import { formatIssuePath, GenerationError, Job, JobId, JobSubmission, MAX_SEED, resolveGeneration } from '@pixelflow/schemas';
import { z } from 'zod';
import { matchesIfNoneMatch } from '../conditional-get.ts';
import { scopeOf } from '../auth/principal.ts';
import type { ApiContext } from '../context.ts';
import { submitIdempotently, type SubmissionReply } from '../idempotent-submission.ts';
import { jobView } from '../job-view.ts';
import { checkWebhookRequest } from '../webhook-request.ts';
import { JOB_ROUTE_PROBLEMS, json, notModified, png, presignedRedirect, problems } from '../openapi/responses.ts';
import { jobNotFound as notFound, problem, sendProblem } from '../problems.ts';
import { guardJobRoutes } from './job-guard.ts';

// POST /jobs, GET /jobs/:id, DELETE /jobs/:id and the job's PNGs.

const JobParams = z.object({ id: JobId });

/** The IETF draft's Idempotency-Key: one request's identity, chosen by the client (a UUID, say). */
const IdempotencyKey = z
  .string()
  .regex(IDEMPOTENCY_KEY_PATTERN, { error: 'must be 1 to 255 printable ASCII characters' })
  .optional()
  .meta({
    description:
      'Makes the request safe to retry: within 24 h, a repeat with the same key (per API key) and the same body (compared as parsed JSON: key order and whitespace do not matter) creates no job and gets the first answer again. The same key with another body is a 422. 1 to 255 printable ASCII characters; a quoted Structured Field string ("...") names the key inside its quotes.',
  });

/**
 * A path segment naming an index, written one way only (plain decimal: no sign, leading zero,
 * space or hex), so that one image has one URL, and with a message of ours when it is not.
 */
function indexParam(pattern: RegExp, rule: string) {
  return z
    .string()
    .regex(pattern, { error: rule })
    .transform(Number)
    .meta({ description: rule.replace(/^must be /, 'An index: ') });
}
/** Images per job: 1 to 8 (GenerationRequest's num_images). */
const IMAGE_INDEX = indexParam(/^[0-7]$/, 'must be an image index from 0 to 7, in plain decimal');
/** Stages of a cascade: at most 16. */
const STAGE_INDEX = indexParam(/^(?:[0-9]|1[0-5])$/, 'must be a stage index from 0 to 15, in plain decimal');

/** Seconds a client waits before asking again for a file while the result store is away. */
const STORE_RETRY_AFTER_SECONDS = 5;
/** An image never changes under its URL (a retried job writes the same bytes for the same seed). */
const IMMUTABLE = 'public, max-age=31536000, immutable';

interface PngToServe {
  key: string;
  /** The validator the job's record holds (images), or null (previews: the store's). */
  recordedEtag: string | null;
  ifNoneMatch: string | string[] | undefined;
}

function notModifiedReply(reply: FastifyReply, etag: string): FastifyReply {
  return reply.code(304).header('etag', etag).header('cache-control', IMMUTABLE).send();
}

/**
 * RESULTS_REDIRECT=stream: the file through this process as the store streams it, never whole in
 * memory. A preview asked for with If-None-Match is looked up (stat) before any body is opened.
 * Null when the store has no such object.
 */
async function streamPng(store: ResultStore, png: PngToServe, reply: FastifyReply): Promise<FastifyReply | null> {
  if (png.recordedEtag === null && png.ifNoneMatch !== undefined) {
    const stored = await store.stat(png.key);
    if (!stored) return null;
    if (matchesIfNoneMatch(png.ifNoneMatch, stored.etag)) return notModifiedReply(reply, stored.etag);
  }
  const opened = await store.open(png.key);
  if (!opened) return null;
  const etag = png.recordedEtag ?? opened.etag;
  if (matchesIfNoneMatch(png.ifNoneMatch, etag)) {
    opened.body.destroy();
    return notModifiedReply(reply, etag);
  }
  return reply.header('etag', etag).header('cache-control', IMMUTABLE).header('content-length', opened.size).type('image/png').send(opened.body);
}

/**
 * RESULTS_REDIRECT=presigned: a 307 to a presigned URL of the object, so the bytes go from the
 * store to the client. The object is looked up first (one HEAD): a missing file is our 404
 * problem and an unreachable store our 503, not the store's XML, and previews get their
 * validator. The redirect itself is not cached: its URL expires.
 */
async function redirectToPng(store: ResultStore, png: PngToServe, reply: FastifyReply, seconds: number): Promise<FastifyReply | null> {
  if (!store.presignedUrl) throw new Error('RESULTS_REDIRECT=presigned with a result store that cannot presign (the env schema requires RESULTS_STORE=s3)');
  const stored = await store.stat(png.key);
  if (!stored) return null;
  const etag = png.recordedEtag ?? stored.etag;
  if (matchesIfNoneMatch(png.ifNoneMatch, etag)) return notModifiedReply(reply, etag);
  const url = await store.presignedUrl(png.key, seconds);
  return reply.code(307).header('location', url).header('cache-control', 'no-store').send();
}

async function viewOf(jobs: JobService, id: string): Promise<Job | null> {
  const snapshot = await jobs.snapshot(id);
  return snapshot && jobView(snapshot);
}

export function jobRoutes(ctx: ApiContext) {
  return async function (app: FastifyInstance): Promise<void> {
    guardJobRoutes(app);
    const api = app.withTypeProvider<ZodTypeProvider>();

    api.post(
      '/jobs',
      {
        schema: {
          operationId: 'createJob',
          summary: 'Create a generation job',
          description: 'Validates the request, fills in the model defaults (and a random seed when none is given) and queues it. Follow it with GET /jobs/{id} or GET /jobs/{id}/events.',
          tags: ['jobs'],
          body: JobSubmission,
          headers: z.object({ 'idempotency-key': IdempotencyKey }).loose(),
          response: {
            202: json(Job, 'The job, queued; Location is its URL. With an Idempotency-Key seen before (same API key, same body, within 24 h): the first answer to that key, replayed byte for byte, with the header Idempotent-Replayed: true', ['Location']),
            ...problems('validation', 'body-too-large', 'unsupported-media-type', 'idempotency-in-progress', 'idempotency-key-reused', 'too-many-active-jobs', 'rate-limited', 'queue-full', 'service-unavailable'),
          },
        },
      },
      async (request, reply) => {
        // The webhook stays beside the parameters: they alone go into the PNGs' metadata.
        const { webhook, ...generation } = request.body;
        let parameters;
        try {
          parameters = resolveGeneration(generation, ctx.manifest, () => randomInt(0, MAX_SEED + 1));
        } catch (error) {
          if (!(error instanceof GenerationError)) throw error;
          return sendProblem(reply, problem('validation', error.message, { errors: [{ path: formatIssuePath(error.field), message: error.reason }], instance: '/jobs' }));
        }
        const owner = scopeOf(request.principal);
        const checked = webhook === undefined ? undefined : await checkWebhookRequest(webhook, owner, ctx.config);
        if (checked !== undefined && 'refused' in checked) {
          const detail = `${checked.path}: ${checked.refused}`;
          return sendProblem(reply, problem('validation', detail, { errors: [{ path: checked.path, message: checked.refused }], instance: '/jobs' }));
        }
        const submit = async (): Promise<SubmissionReply> => {
          const maxActive = request.principal?.maxActive ?? null;
          const submission = await app.jobs.submit(
            { model: ctx.manifest.name, parameters, requestId: request.id, owner, ...(checked !== undefined && { webhook: checked.target }) },
            ctx.config.QUEUE_CAP,
            ...(maxActive === null ? [] : [{ owner, maxActive }]),
          );
          if (!submission.accepted && 'ownerActive' in submission) {
            const detail = `this API key has ${submission.ownerActive} jobs queued or running, its max_active is ${submission.maxActive}; one must end first`;
            return { reply: sendProblem(reply, problem('too-many-active-jobs', detail, { instance: '/jobs' }), { 'retry-after': String(submission.retryAfterSeconds) }), answer: null };
          }
          if (!submission.accepted) {
            const noWorker = submission.workersAlive === 0 ? '; no worker is running: jobs wait until one starts' : '';
            const detail = `${submission.inQueue} jobs are queued or running (the cap is ${ctx.config.QUEUE_CAP})${noWorker}`;
            return { reply: sendProblem(reply, problem('queue-full', detail, { instance: '/jobs' }), { 'retry-after': String(submission.retryAfterSeconds) }), answer: null };
          }
          const { id } = submission;
          ctx.metrics.jobsCreated.inc();
          const view = await viewOf(app.jobs, id);
          request.log.info({ job_id: id, parameters }, 'job created');
          const location = `/jobs/${id}`;
          // Serialised here, by the route's own schema, so that a replay sends these very bytes.
          const body = String(reply.serializeInput(view as Job, '202', 'application/json'));
          return { reply: reply.code(202).header('location', location).type('application/json; charset=utf-8').send(body), answer: { status: 202, location, body } };
        };
        const idempotencyKey = request.headers['idempotency-key'];
        if (idempotencyKey === undefined) return (await submit()).reply;
        if (!app.idempotency) throw new Error('an Idempotency-Key arrived but this app has no idempotency store');
        return submitIdempotently(app.idempotency, request, reply, idempotencyKey, submit);
      },
    );

    api.get(
      '/jobs/:id',
      {
        schema: {
          operationId: 'getJob',
          summary: 'A job: status, parameters, progress, position, ETA, result',
          tags: ['jobs'],
          params: JobParams,
          response: { 200: json(Job, 'The job'), ...problems(...JOB_ROUTE_PROBLEMS) },
        },
      },
      async (request, reply) => {
        const view = await viewOf(app.jobs, request.params.id);
        if (!view) return sendProblem(reply, notFound(request.params.id));
        return view;
      },
    );

    api.delete(
      '/jobs/:id',
      {
        schema: {
          operationId: 'cancelJob',
          summary: 'Cancel a job',
          description: 'A queued job is canceled at once (200). A running job stops within one model call (202; follow it until its status is canceled) and keeps the stage previews it reached.',
          tags: ['jobs'],
          params: JobParams,
          response: {
            200: json(Job, 'The job, canceled (it was queued)'),
            202: json(Job, 'The job, still running: the worker stops it within one model call'),
            ...problems(...JOB_ROUTE_PROBLEMS, 'job-finished'),
          },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        const cancel = await app.jobs.cancel(id);
        if (cancel.outcome === 'not-found') return sendProblem(reply, notFound(id));
        if (cancel.outcome === 'finished') {
          return sendProblem(reply, problem('job-finished', `job ${id} already ${cancel.status}`, { instance: `/jobs/${id}` }));
        }
        request.log.info({ job_id: id, outcome: cancel.outcome }, 'job cancel requested');
        // 202 while the worker stops it: the client follows the job until it is canceled.
        return reply.code(cancel.outcome === 'canceled' ? 200 : 202).send((await viewOf(app.jobs, id)) as Job);
      },
    );

    const { RESULTS_REDIRECT, RESULTS_PRESIGN_SECONDS } = ctx.config;

    const servePng = (kind: 'images' | 'previews') =>
      async function (this: FastifyInstance, request: FastifyRequest<{ Params: { id: string; n: number } }>, reply: FastifyReply) {
        const { id, n } = request.params;
        const instance = `/jobs/${id}/${kind}/${n}`;
        const record = await app.jobs.record(id);
        const missing = (): FastifyReply => sendProblem(reply, problem('not-found', `job ${JSON.stringify(id)} has no ${kind === 'images' ? 'image' : 'preview'} ${n}`, { instance }));
        if (!record) return sendProblem(reply, notFound(id));
        const image = kind === 'images' ? record.images?.[n] : undefined;
        if (!image && !(kind === 'previews' && record.previews.some((p) => p.stage === n))) return missing();
        const png: PngToServe = {
          key: image ? imageKey(id, n) : previewKey(id, n),
          // An image's hash is in its record: revalidating it needs nothing from the store. A
          // preview's validator is the store's own (content-derived on S3, the same for every replica).
          recordedEtag: image ? `"${image.sha256}"` : null,
          ifNoneMatch: request.headers['if-none-match'],
        };
        if (png.recordedEtag !== null && matchesIfNoneMatch(png.ifNoneMatch, png.recordedEtag)) return notModifiedReply(reply, png.recordedEtag);
        try {
          const served = RESULTS_REDIRECT === 'presigned' ? await redirectToPng(app.resultStore, png, reply, RESULTS_PRESIGN_SECONDS) : await streamPng(app.resultStore, png, reply);
          return served ?? missing();
        } catch (error) {
          if (!(error instanceof ResultStoreUnavailableError)) throw error;
          request.log.error({ err: error }, 'the result store is unavailable');
          // The job and its record are fine: the file is there once the store answers again.
          return sendProblem(reply, problem('service-unavailable', 'the result store is unreachable; retry shortly', { instance }), { 'retry-after': String(STORE_RETRY_AFTER_SECONDS) });
        }
      };

    api.get(
      '/jobs/:id/images/:n',
      {
        schema: {
          operationId: 'getJobImage',
          summary: 'A generated image (PNG with its parameters in an iTXt chunk)',
          tags: ['jobs'],
          params: z.object({ id: JobId, n: IMAGE_INDEX }),
          response: { 200: png('The image'), 304: notModified, 307: presignedRedirect, ...problems('validation', ...JOB_ROUTE_PROBLEMS) },
        },
      },
      servePng('images'),
    );

    api.get(
      '/jobs/:id/previews/:n',
      {
        schema: {
          operationId: 'getJobPreview',
          summary: 'The preview PNG of image 0 at the end of stage n (0-based)',
          tags: ['jobs'],
          params: z.object({ id: JobId, n: STAGE_INDEX }),
          response: { 200: png('The preview'), 304: notModified, 307: presignedRedirect, ...problems('validation', ...JOB_ROUTE_PROBLEMS) },
        },
      },
      servePng('previews'),
    );
  };
}
