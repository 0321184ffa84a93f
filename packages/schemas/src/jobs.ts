import { z } from 'zod';
import { ResolvedGeneration } from './generation.ts';
import { JobWebhook } from './webhooks.ts';

// The job API's resources: what `GET /jobs/:id` returns, the events of
// `GET /jobs/:id/events`, and the RFC 9457 problem documents of every error.
// The API serialises with these and the worker writes what they describe, so
// both sides (and clients generated from the OpenAPI document) share one
// definition.

const JOB_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'canceled'] as const;
export const JobStatus = z.enum(JOB_STATUSES).meta({
  description: 'queued -> running -> succeeded | failed | canceled (a queued job can also be canceled)',
});
export type JobStatus = z.infer<typeof JobStatus>;

/**
 * A job's id as POST /jobs issues it: `j` and 24 hex digits (unguessable; never all digits and
 * no ':', as BullMQ's custom ids need). Anything else names no job, and checking it before any
 * Redis lookup keeps an id from reaching another key, e.g. `<id>:events`, the job's event stream.
 */
export const JobId = z
  .string()
  .regex(/^j[0-9a-f]{24}$/)
  .meta({ description: 'The id returned by POST /jobs' });

/** Statuses a job never leaves; each is also the name of the event that ends its stream. */
export const FINISHED_STATUSES = ['succeeded', 'failed', 'canceled'] as const satisfies readonly JobStatus[];

export function isFinished(status: JobStatus): status is (typeof FINISHED_STATUSES)[number] {
  return (FINISHED_STATUSES as readonly JobStatus[]).includes(status);
}

export const JobProgress = z
  .object({
    stage: z.int().min(0).meta({ description: 'Stage being computed, 0-based (the last stage once finished)' }),
    stages: z.int().min(1),
    step: z.int().min(0).meta({ description: 'Model calls done so far, over all stages' }),
    steps_total: z.int().min(0).meta({ description: 'Model calls the job takes (an estimate under dopri5)' }),
    fraction: z.number().min(0).max(1),
  })
  .meta({ id: 'JobProgress' });
export type JobProgress = z.infer<typeof JobProgress>;

export const JobImage = z
  .object({
    url: z.string().meta({ description: 'Path of the PNG on this API, e.g. /jobs/{id}/images/0' }),
    width: z.int().positive(),
    height: z.int().positive(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
  })
  .meta({ id: 'JobImage' });
export type JobImage = z.infer<typeof JobImage>;

export const JobError = z
  .object({
    type: z.string().meta({ description: 'Stable machine-readable kind, e.g. "sampling_failed"' }),
    message: z.string(),
  })
  .meta({ id: 'JobError' });
export type JobError = z.infer<typeof JobError>;

export const StagePreview = z
  .object({
    stage: z.int().min(0),
    resolution: z.int().positive(),
    url: z.string().meta({ description: 'Path of the stage-end preview PNG (image 0 of the job)' }),
  })
  .meta({ id: 'StagePreview' });
export type StagePreview = z.infer<typeof StagePreview>;

const Timestamp = z.iso.datetime();

export const Job = z
  .object({
    id: z.string(),
    status: JobStatus,
    model: z.string().meta({ description: 'Name of the model that serves (or served) the job' }),
    parameters: ResolvedGeneration,
    progress: JobProgress.nullable(),
    queue_position: z.int().min(1).nullable().meta({ description: '1 = next to run; null unless queued' }),
    eta_seconds: z.number().min(0).nullable().meta({
      description: 'Seconds until the job finishes, from measured throughput; null when unknown or finished',
    }),
    created_at: Timestamp,
    started_at: Timestamp.nullable(),
    finished_at: Timestamp.nullable(),
    expires_at: Timestamp.nullable().meta({ description: 'When the job and its images are deleted' }),
    previews: z.array(StagePreview),
    result: z.object({ images: z.array(JobImage) }).nullable(),
    error: JobError.nullable(),
    webhook: JobWebhook.nullable().meta({ description: 'The webhook the job named, with its deliveries; null when it named none' }),
  })
  .meta({ id: 'Job', description: 'A generation job' });
export type Job = z.infer<typeof Job>;

/** The data of each Server-Sent Event of a job, by event name. */
export const JobEventData = {
  queued: z.object({ position: z.int().min(1).nullable() }),
  started: z.object({ attempt: z.int().min(1), steps_total: z.int().min(0) }),
  progress: JobProgress,
  stage: z.object({
    stage: z.int().min(0),
    stages: z.int().min(1),
    resolution: z.int().positive(),
    url: z.string(),
    png_base64: z.string().optional().meta({
      description: 'The preview PNG itself, inline, when it is small (up to 16 KiB); otherwise fetch `url`',
    }),
  }),
  succeeded: z.object({ images: z.array(JobImage) }),
  failed: z.object({ error: JobError }),
  canceled: z.object({ reason: z.string() }),
} as const;
export type JobEventName = keyof typeof JobEventData;
export const JOB_EVENT_NAMES = Object.keys(JobEventData) as JobEventName[];
export type JobEventPayload<N extends JobEventName> = z.infer<(typeof JobEventData)[N]>;
/** Events after which a job's stream ends. */
export const FINAL_EVENTS: readonly JobEventName[] = FINISHED_STATUSES;

function eventOf<N extends JobEventName>(name: N) {
  return z.object({
    id: z.string().meta({ description: 'The event id; send it back as Last-Event-ID to resume after it' }),
    event: z.literal(name),
    data: JobEventData[name],
  });
}

/**
 * One event of GET /jobs/{id}/events as a client holds it once `data` is parsed: the OpenAPI
 * document describes the same events on the wire, where `data` is that JSON as text.
 */
export const JobEvent = z.discriminatedUnion('event', [
  eventOf('queued'),
  eventOf('started'),
  eventOf('progress'),
  eventOf('stage'),
  eventOf('succeeded'),
  eventOf('failed'),
  eventOf('canceled'),
]);
export type JobEvent = z.infer<typeof JobEvent>;

export const FieldProblem = z.object({
  path: z.string().meta({ description: 'The failing field, e.g. "steps[2]" or "cfg_scale"' }),
  message: z.string(),
});
export type FieldProblem = z.infer<typeof FieldProblem>;

/** RFC 9457 problem details; `type` is stable, `detail` is for people. */
export const Problem = z
  .object({
    type: z.string().meta({
      format: 'uri-reference',
      description: 'The kind of problem, a path on this API (e.g. /problems/validation) where GET explains it',
    }),
    title: z.string(),
    status: z.int().min(400).max(599),
    detail: z.string(),
    instance: z.string().optional(),
    errors: z.array(FieldProblem).optional().meta({ description: 'Every failing field (validation problems)' }),
  })
  .meta({ id: 'Problem' });
export type Problem = z.infer<typeof Problem>;
