import type { ChainableCommander, Redis } from 'ioredis';
import {
  isFinished,
  JobError,
  type JobEventPayload,
  JobImage,
  JobProgress,
  JobStatus,
  ResolvedGeneration,
  StagePreview,
  WebhookDelivery,
  WebhookEvent,
} from '@pixelflow/schemas';
import { z } from 'zod';
import { addEvents, addUnannounced, announce, execReplies } from './job-events.ts';
import type { Keys } from './keys.ts';

// A job's record: a Redis hash that the API creates and reads and the worker
// moves through its states. BullMQ only carries the job id to a worker; the
// record is the truth about a job, so a canceled or finished job stays
// visible until it expires, whatever BullMQ has done with its own entry.
// State changes are Lua scripts, so the API's cancel and the worker's start
// cannot both win.

/** What the API writes when it accepts a job. */
export interface NewJob {
  id: string;
  model: string;
  parameters: ResolvedGeneration;
  createdAt: Date;
  /** The HTTP request that created it (X-Request-Id), so that one id follows a job from HTTP to pixels. */
  requestId?: string;
  /** Where to tell that it ended; kept apart from the parameters (those go into the PNGs). */
  webhook?: JobWebhookTarget;
  /** Who may see and cancel it: the creating API key's name; '' (or absent) for the one tenant of AUTH=off. */
  owner?: string;
}

/** A job's webhook as its record keeps it. */
export const JobWebhookTarget = z.object({ url: z.string(), events: z.array(WebhookEvent) });
export type JobWebhookTarget = z.infer<typeof JobWebhookTarget>;

export interface JobRecord {
  id: string;
  status: JobStatus;
  model: string;
  parameters: ResolvedGeneration;
  /** Times a worker has started it (2+ after a worker died mid-job). */
  attempt: number;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  expiresAt: Date | null;
  progress: JobProgress | null;
  previews: StagePreview[];
  images: JobImage[] | null;
  error: JobError | null;
  cancelRequested: boolean;
  /** The id of the HTTP request that created it; null for jobs created otherwise. */
  requestId: string | null;
  webhook: JobWebhookTarget | null;
  /** How its webhook's events were delivered, one per event handed to the webhook queue. */
  webhookDeliveries: WebhookDelivery[];
  /** The name of the API key that created it; '' with AUTH=off, and for records written before jobs had owners. */
  owner: string;
}

const PREVIEW_FIELD = 'preview:';
const DELIVERY_FIELD = 'webhook_delivery:';

// KEYS[1] job hash. ARGV: started_at (ISO), preview field prefix. Returns the status after the call.
// A job started again (its worker died or let it go) starts over from its seed: the progress and
// stage previews an earlier attempt reported are not where this one is (nor what ETAs should count
// as done), so they go; this attempt reports its own.
const START = `
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return false end
if status == 'queued' or status == 'running' then
  redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[1])
  redis.call('HINCRBY', KEYS[1], 'attempt', 1)
  local stale = { 'progress' }
  for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.sub(field, 1, #ARGV[2]) == ARGV[2] then table.insert(stale, field) end
  end
  redis.call('HDEL', KEYS[1], unpack(stale))
  return 'running'
end
return status
`;

// Ends the job with `status` and appends its final event in the same step: a reader never sees
// a finished job whose stream lacks its ending (or an ending whose record still says running).
// The event has JobEvents.append's format (fields name and data; the job id published on the
// events channel). KEYS[1] job hash, KEYS[2] events stream, KEYS[3] expiry zset, KEYS[4] webhook outbox zset.
// A script that fails part-way keeps the writes it made (Redis has no rollback), so the steps that
// can fail (a key of the wrong type, a command refused) come before the status, which commits the
// ending: a failed ending leaves the job unfinished, for the worker to write again in full, not
// ended without its final event. Before the status, only the idempotent ZADDs precede the XADD.
// A job with a webhook joins the webhook outbox (KEYS[4]) in the same step, so no ending is ever
// written without its delivery owed: whoever dispatches the outbox (@pixelflow/webhooks) hands it
// to the webhook queue and only then removes it, surviving the crash of any process in between.
const END = `
local function finish(status, finished_at, expires_at, expires_ms, job_id, event_data, channel)
  -- The sweeper deletes the job's files by the zset; record and events go by themselves even without one.
  redis.call('ZADD', KEYS[3], expires_ms, job_id)
  if redis.call('HEXISTS', KEYS[1], 'webhook') == 1 then
    local now = redis.call('TIME')
    redis.call('ZADD', KEYS[4], 'NX', now[1] * 1000 + math.floor(now[2] / 1000), job_id)
  end
  redis.call('XADD', KEYS[2], '*', 'name', status, 'data', event_data)
  redis.call('HSET', KEYS[1], 'status', status, 'finished_at', finished_at, 'expires_at', expires_at)
  redis.call('PEXPIREAT', KEYS[1], expires_ms)
  redis.call('PEXPIREAT', KEYS[2], expires_ms)
  redis.call('PUBLISH', channel, job_id)
end
`;

// KEYS as END's. ARGV: status, finished_at (ISO), expires_at (ISO), expires_at (ms), field name, field JSON
// ('' for none), job id, event data (JSON), events channel.
// Only a running job (or a queued one, for cancel) finishes; returns the status after the call.
const FINISH = `${END}
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return false end
if status ~= 'running' and status ~= 'queued' then return status end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], ARGV[5], ARGV[6]) end
finish(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[7], ARGV[8], ARGV[9])
return ARGV[1]
`;

// KEYS as END's. ARGV: finished_at, expires_at (ISO), expires_at (ms), job id, event data (JSON), events channel.
// Returns the status BEFORE the call: 'queued' (now canceled), 'running' (flagged: the worker must
// stop it), a finished status (nothing changed), or nil when there is no such job.
const CANCEL = `${END}
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return false end
if status == 'queued' then
  finish('canceled', ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
  return 'queued'
end
if status == 'running' then
  redis.call('HSET', KEYS[1], 'cancel_requested', '1')
  return 'running'
end
return status
`;

// A job handed back to BullMQ's wait list (its worker stopped) or returned there by BullMQ's stalled
// check (its worker died or lost the lock) is queued again: running -> queued, with a `queued` event
// giving its place, so that neither a status request nor an event stream says it runs while no
// worker has it. What the earlier attempt reported goes, as at START (the record says so at once,
// not only when a worker starts it again). Only while the job is in the wait list and no worker
// holds its lock: a worker that took it meanwhile has started it, or is about to (START).
// KEYS[1] job hash, KEYS[2] events stream, KEYS[3] BullMQ's lock of the job, KEYS[4] BullMQ's wait
// list. ARGV: job id, preview field prefix, events channel. Returns the status after the call.
const REQUEUE = `
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return false end
if status ~= 'running' or redis.call('EXISTS', KEYS[3]) == 1 then return status end
local index = redis.call('LPOS', KEYS[4], ARGV[1])
if not index then return status end
local stale = { 'progress', 'started_at' }
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(field, 1, #ARGV[2]) == ARGV[2] then table.insert(stale, field) end
end
redis.call('HDEL', KEYS[1], unpack(stale))
redis.call('HSET', KEYS[1], 'status', 'queued')
-- BullMQ pushes new jobs on the left of its wait list and workers take from the right.
local position = redis.call('LLEN', KEYS[4]) - index
redis.call('XADD', KEYS[2], '*', 'name', 'queued', 'data', cjson.encode({ position = position }))
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 'queued'
`;

/** Where BullMQ holds a job: in its wait list (at `position`, 1 = next), taken by a worker, or neither (not added yet, or gone). */
export type Placement = { waiting: number } | 'active' | 'elsewhere';

/**
 * A job's status and place in the queue, from its record and where BullMQ holds it, for the moments
 * the two disagree. A job in the wait list is queued at its place, whatever the record says: a
 * running record there was handed back or returned by the stalled check and not yet queued again
 * (REQUEUE), and what its earlier attempt reported is not where the job is. A queued record whose job
 * a worker has taken, its START not yet written, is still queued, first in line: running begins at
 * START (which a cancel meanwhile still wins: a cancel now is answered as for a queued job), as the
 * job's `started` event says.
 */
export function placed(record: JobRecord, placement: Placement): { record: JobRecord; queuePosition: number | null } {
  if (isFinished(record.status)) return { record, queuePosition: null };
  if (placement === 'active') return { record, queuePosition: record.status === 'queued' ? 1 : null };
  if (placement === 'elsewhere') return { record, queuePosition: null };
  return { record: { ...record, status: 'queued', startedAt: null, progress: null, previews: [] }, queuePosition: placement.waiting };
}

const CANCELED: JobEventPayload<'canceled'> = { reason: 'canceled by request' };

function json<T>(schema: z.ZodType<T>, text: string | undefined): T | null {
  return text === undefined || text === '' ? null : schema.parse(JSON.parse(text));
}

function date(text: string | undefined): Date | null {
  return text === undefined || text === '' ? null : new Date(text);
}

/** A record from its hash's fields; null for a hash that is not there. */
function recordFrom(id: string, fields: Record<string, string>): JobRecord | null {
  if (fields['status'] === undefined) return null;
  const previews = Object.entries(fields)
    .filter(([name]) => name.startsWith(PREVIEW_FIELD))
    .map(([, value]) => StagePreview.parse(JSON.parse(value)))
    .sort((a, b) => a.stage - b.stage);
  return {
    id,
    status: JobStatus.parse(fields['status']),
    model: fields['model'] ?? '',
    parameters: ResolvedGeneration.parse(JSON.parse(fields['parameters'] ?? 'null')),
    attempt: Number(fields['attempt'] ?? 0),
    createdAt: date(fields['created_at']) ?? new Date(0),
    startedAt: date(fields['started_at']),
    finishedAt: date(fields['finished_at']),
    expiresAt: date(fields['expires_at']),
    progress: json(JobProgress, fields['progress']),
    previews,
    images: json(z.array(JobImage), fields['images']),
    error: json(JobError, fields['error']),
    cancelRequested: fields['cancel_requested'] === '1',
    requestId: fields['request_id'] ?? null,
    webhook: json(JobWebhookTarget, fields['webhook']),
    webhookDeliveries: Object.entries(fields)
      .filter(([name]) => name.startsWith(DELIVERY_FIELD))
      .map(([, value]) => WebhookDelivery.parse(JSON.parse(value)))
      .sort((a, b) => WebhookEvent.options.indexOf(a.event) - WebhookEvent.options.indexOf(b.event)),
    owner: fields['owner'] ?? '',
  };
}

// KEYS[1] job hash. ARGV: field, JSON, '1' to write only a field not there yet. Writes nothing once
// the job expired (an HSET would leave a stray record behind). Returns 1 when it wrote.
const SET_DELIVERY = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[3] == '1' then return redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
`;

export class JobRecords {
  private readonly redis: Redis;
  private readonly keys: Keys;

  constructor(redis: Redis, keys: Keys) {
    this.redis = redis;
    this.keys = keys;
  }

  async create(job: NewJob): Promise<void> {
    await this.redis.hset(this.keys.job(job.id), {
      id: job.id,
      status: 'queued',
      model: job.model,
      parameters: JSON.stringify(job.parameters),
      attempt: 0,
      created_at: job.createdAt.toISOString(),
      ...(job.requestId !== undefined && { request_id: job.requestId }),
      ...(job.webhook !== undefined && { webhook: JSON.stringify(JobWebhookTarget.parse(job.webhook)) }),
      ...(job.owner !== undefined && job.owner !== '' && { owner: job.owner }),
    });
  }

  /**
   * Records how a webhook event's delivery goes (`ifAbsent`: only when nothing is recorded for that
   * event yet); false when nothing was written (the job is gone, or `ifAbsent` found a state).
   */
  async recordDelivery(id: string, delivery: WebhookDelivery, { ifAbsent = false } = {}): Promise<boolean> {
    const field = `${DELIVERY_FIELD}${delivery.event}`;
    return (await this.redis.eval(SET_DELIVERY, 1, this.keys.job(id), field, JSON.stringify(delivery), ifAbsent ? '1' : '0')) === 1;
  }

  /** Ids of ended jobs whose webhook event is not in the webhook queue yet, longest waiting first. */
  async webhookOutbox(limit = 100): Promise<string[]> {
    return this.redis.zrange(this.keys.webhookOutbox, '0', String(limit - 1));
  }

  /** Takes a job out of the webhook outbox, once its event is in the webhook queue (or owes nothing). */
  async leaveWebhookOutbox(id: string): Promise<void> {
    await this.redis.zrem(this.keys.webhookOutbox, id);
  }

  async exists(id: string): Promise<boolean> {
    return (await this.redis.exists(this.keys.job(id))) === 1;
  }

  async get(id: string): Promise<JobRecord | null> {
    return recordFrom(id, await this.redis.hgetall(this.keys.job(id)));
  }

  /** The parameters and progress of several jobs in one round trip (missing jobs are left out). */
  async workOf(ids: readonly string[]): Promise<Pick<JobRecord, 'id' | 'parameters' | 'progress'>[]> {
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hmget(this.keys.job(id), 'parameters', 'progress');
    const replies = (await pipeline.exec()) ?? [];
    return ids.flatMap((id, i) => {
      const [error, values] = replies[i] ?? [null, null];
      const [parameters, progress] = (values as (string | null)[] | null) ?? [];
      if (error || !parameters) return [];
      return [{ id, parameters: ResolvedGeneration.parse(JSON.parse(parameters)), progress: json(JobProgress, progress ?? undefined) }];
    });
  }

  /**
   * A worker takes the job: queued (or running, after a worker died) -> running, clearing what an
   * earlier attempt reported (progress, previews). Returns the record after (whatever its status:
   * a canceled or finished job is not taken), read in the same round trip; null when it is gone.
   */
  async start(id: string, at: Date): Promise<JobRecord | null> {
    const key = this.keys.job(id);
    const [, fields] = execReplies(await this.redis.multi().eval(START, 1, key, at.toISOString(), PREVIEW_FIELD).hgetall(key).exec());
    return recordFrom(id, fields as Record<string, string>);
  }

  /**
   * Queues again a running job that its worker handed back to BullMQ's wait list, or that BullMQ's
   * stalled check returned there (see REQUEUE above); `queue` names BullMQ's keys for it. Returns
   * the status after: 'queued', or what it was when a worker holds the job again or it is not waiting.
   */
  async requeue(id: string, queue: { lock: string; wait: string }): Promise<JobStatus | null> {
    const status = (await this.redis.eval(REQUEUE, 4, this.keys.job(id), this.keys.events(id), queue.lock, queue.wait, id, PREVIEW_FIELD, this.keys.eventsChannel)) as string | null;
    return status === null ? null : JobStatus.parse(status);
  }

  /** Records a running job's progress and appends its progress event, in one transaction. */
  async reportProgress(id: string, progress: JobProgress): Promise<void> {
    await this.reportProgresses(id, [progress]);
  }

  /**
   * Several progress reports of one job, oldest first, in one transaction: the record keeps the last,
   * the stream gets every one as its own event, and followers are woken once. A worker whose model
   * calls come faster than Redis round trips sends what piled up meanwhile this way.
   */
  async reportProgresses(id: string, reports: readonly JobProgress[]): Promise<void> {
    if (reports.length === 0) return;
    execReplies(await announce(this.withProgress(this.redis.multi(), id, reports), this.keys, id).exec());
  }

  /**
   * Records a stage's preview and appends its `stage` event, in one transaction, after `progress`:
   * the reports of the calls before the stage ended that were not written yet (as reportProgresses).
   */
  async addPreview(id: string, preview: StagePreview, event: JobEventPayload<'stage'>, progress: readonly JobProgress[] = []): Promise<void> {
    const multi = this.withProgress(this.redis.multi(), id, progress).hset(this.keys.job(id), `${PREVIEW_FIELD}${preview.stage}`, JSON.stringify(preview));
    execReplies(await addEvents(multi, this.keys, id, 'stage', [event]).exec());
  }

  /** Adds progress reports to a transaction: the record keeps the last, the stream gets each (unannounced). */
  private withProgress(multi: ChainableCommander, id: string, reports: readonly JobProgress[]): ChainableCommander {
    const last = reports.at(-1);
    if (last === undefined) return multi;
    return addUnannounced(multi.hset(this.keys.job(id), 'progress', JSON.stringify(last)), this.keys, id, 'progress', reports);
  }

  /**
   * Ends a job that is running (or still queued): succeeded with its images, failed with an error,
   * or canceled, with its final event. A job that already ended keeps its first ending. Returns the status after.
   */
  async finish(
    id: string,
    outcome: { status: 'succeeded'; images: JobImage[] } | { status: 'failed'; error: JobError } | { status: 'canceled' },
    at: Date,
    retentionSeconds: number,
  ): Promise<JobStatus | null> {
    const expires = new Date(at.getTime() + retentionSeconds * 1000);
    const [field, value, event]: [string, string, JobEventPayload<typeof outcome.status>] =
      outcome.status === 'succeeded'
        ? ['images', JSON.stringify(outcome.images), { images: outcome.images }]
        : outcome.status === 'failed'
          ? ['error', JSON.stringify(outcome.error), { error: outcome.error }]
          : ['', '', CANCELED];
    const status = (await this.redis.eval(
      FINISH,
      4,
      this.keys.job(id),
      this.keys.events(id),
      this.keys.expiry,
      this.keys.webhookOutbox,
      outcome.status,
      at.toISOString(),
      expires.toISOString(),
      expires.getTime(),
      field,
      value,
      id,
      JSON.stringify(event),
      this.keys.eventsChannel,
    )) as string | null;
    return status === null ? null : JobStatus.parse(status);
  }

  /** Cancels a queued job (with its final event), flags a running one; returns the status before (see CANCEL above). */
  async requestCancel(id: string, at: Date, retentionSeconds: number): Promise<JobStatus | null> {
    const expires = new Date(at.getTime() + retentionSeconds * 1000);
    const status = (await this.redis.eval(
      CANCEL,
      4,
      this.keys.job(id),
      this.keys.events(id),
      this.keys.expiry,
      this.keys.webhookOutbox,
      at.toISOString(),
      expires.toISOString(),
      expires.getTime(),
      id,
      JSON.stringify(CANCELED),
      this.keys.eventsChannel,
    )) as string | null;
    return status === null ? null : JobStatus.parse(status);
  }

  /** Job ids whose retention ended by `now`, oldest first. */
  async expired(now: Date, limit = 100): Promise<string[]> {
    return this.redis.zrangebyscore(this.keys.expiry, 0, now.getTime(), 'LIMIT', 0, limit);
  }

  /** Deletes a job's record and events (its files are the result store's business). */
  async delete(id: string): Promise<void> {
    await this.redis.multi().del(this.keys.job(id), this.keys.events(id)).zrem(this.keys.expiry, id).exec();
  }
}
