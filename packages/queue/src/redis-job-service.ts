import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { isFinished } from '@pixelflow/schemas';
import { publishCancel } from './cancel.ts';
import { etaSeconds, jobShape, poolThroughput, queueAhead, queueWaitSeconds, remainingShape, retryAfterSecondsWhenFull, type PoolMember, type Throughput } from './eta.ts';
import { JobEvents, type StoredEvent } from './job-events.ts';
import type { JobQueue, OwnerCap, QueueDepth } from './job-queue.ts';
import { JobRecords, placed, type JobRecord, type Placement } from './job-records.ts';
import type { CancelOutcome, JobRequest, JobService, JobSnapshot, Submission } from './job-service.ts';
import type { Keys } from './keys.ts';
import { pingRedis } from './redis.ts';
import { ThroughputRecord } from './throughput.ts';
import { liveWorkers, takesJobs, type WorkerHeartbeat } from './workers.ts';

// The job service on Redis: composes the record (JobRecords), its event
// stream (JobEvents) and the BullMQ delivery (JobQueue) into the operations
// routes and workers ask for, so that no caller touches a key.

export interface RedisJobServiceOptions {
  /** A fail-fast client connection (connectRedis 'client'): records, events, throughput, health. */
  redis: Redis;
  keys: Keys;
  /** The BullMQ queue; give it the same fail-fast connection for its reads. */
  queue: JobQueue;
  /** How long a finished (here: canceled) job stays readable. */
  retentionSeconds: number;
  now?: () => Date;
}

/**
 * Jobs ahead whose size a status request reads for its ETA (beyond them it extrapolates), and jobs
 * behind it (or next, for a running job), which take the worker's slots that free before it ends;
 * likewise the last queued jobs a queue-full answer reads for its Retry-After.
 */
const ETA_SAMPLE = 50;
/**
 * How old a read of the heartbeats a status request's ETA may use: workers come and go in seconds
 * (their heartbeat keys live three heartbeat intervals), and a SCAN per status request would cost
 * round trips in proportion to every key in Redis.
 */
const POOL_READ_MAX_AGE_MS = 1000;

/**
 * Retry-After for a key over its max_active: one of its own jobs must end first, which its client can
 * watch (GET /jobs/{id}/events); a few seconds keeps a client that only retries from hammering the API.
 */
const OWNER_CAP_RETRY_AFTER_SECONDS = 5;

function newJobId(): string {
  // What JobId accepts: not all digits and no ':' (BullMQ's rules for custom ids); unguessable.
  return `j${randomBytes(12).toString('hex')}`;
}

export class RedisJobService implements JobService {
  private readonly redis: Redis;
  private readonly keys: Keys;
  private readonly queue: JobQueue;
  private readonly records: JobRecords;
  private readonly jobEvents: JobEvents;
  private readonly throughputRecord: ThroughputRecord;
  private readonly retentionSeconds: number;
  private readonly now: () => Date;
  /** The heartbeat read in flight, which calls meanwhile share (see liveWorkers). */
  private workersRead: Promise<WorkerHeartbeat[]> | null = null;
  /** The last heartbeat read, for ETAs (POOL_READ_MAX_AGE_MS). */
  private lastWorkers: { at: number; workers: WorkerHeartbeat[] } | null = null;

  constructor(options: RedisJobServiceOptions) {
    this.redis = options.redis;
    this.keys = options.keys;
    this.queue = options.queue;
    this.records = new JobRecords(options.redis, options.keys);
    this.jobEvents = new JobEvents(options.redis, options.keys);
    this.throughputRecord = new ThroughputRecord(options.redis, options.keys);
    this.retentionSeconds = options.retentionSeconds;
    this.now = options.now ?? (() => new Date());
  }

  async submit(request: JobRequest, queueCap: number, ownerCap?: OwnerCap): Promise<Submission> {
    const id = newJobId();
    const admission = await this.queue.admit(id, queueCap, ownerCap);
    if (!admission.admitted && admission.refusedBy === 'owner' && ownerCap !== undefined) {
      return { accepted: false, ownerActive: admission.ownerActive ?? ownerCap.maxActive, maxActive: ownerCap.maxActive, retryAfterSeconds: OWNER_CAP_RETRY_AFTER_SECONDS };
    }
    if (!admission.admitted) return { accepted: false, inQueue: admission.waiting + admission.active, ...(await this.whenFull(request, admission)) };
    const position = admission.waiting + 1;
    await this.enqueue(id, request, position, ownerCap?.owner);
    return { accepted: true, id, position };
  }

  /** Record, 'queued' event, delivery, for an admitted job; a job that could not be queued leaves nothing behind, its place included. */
  private async enqueue(id: string, request: JobRequest, position: number, placeOwner: string | undefined): Promise<void> {
    try {
      await this.records.create({ id, model: request.model, parameters: request.parameters, createdAt: this.now(), ...(request.requestId !== undefined && { requestId: request.requestId }), ...(request.owner !== undefined && { owner: request.owner }), ...(request.webhook !== undefined && { webhook: request.webhook }) });
      // The queued event goes first: once queued, a worker may report `started` at once.
      await this.jobEvents.append(id, 'queued', { position });
      await this.queue.add(id, placeOwner);
    } catch (error) {
      await Promise.all([this.records.delete(id), this.queue.release(id, placeOwner)].map((undo) => undo.catch(() => undefined)));
      throw error;
    }
  }

  /**
   * A refused job's Retry-After (eta.ts): the time a job queued now would wait, from the jobs running
   * and waiting and the measured throughput, and whether a worker is alive to run them.
   */
  private async whenFull(request: JobRequest, depth: QueueDepth): Promise<{ retryAfterSeconds: number; workersAlive: number }> {
    const [activeIds, newestIds, recorded, workers] = await Promise.all([this.queue.activeIds(), this.queue.newest(ETA_SAMPLE), this.throughput(), this.liveWorkers()]);
    const takingJobs = workers.filter(takesJobs);
    const workersAlive = takingJobs.length;
    const throughput = poolThroughput(takingJobs.map(poolMember), recorded);
    let waitSeconds: number | null = null;
    if (throughput !== null) {
      const work = new Map((await this.records.workOf([...activeIds, ...newestIds])).map((job) => [job.id, job]));
      const workOf = (ids: readonly string[]) => ids.flatMap((jobId) => work.get(jobId) ?? []);
      waitSeconds = queueWaitSeconds(
        {
          running: workOf(activeIds).map(remainingShape),
          // All that waits is ahead of a job queued now; those not read count as the last queued on average.
          waiting: queueAhead(depth.waiting, workOf(newestIds).map((job) => jobShape(job.parameters)), jobShape(request.parameters)),
        },
        throughput,
      );
    }
    return { retryAfterSeconds: retryAfterSecondsWhenFull({ waitSeconds, workersAlive }), workersAlive };
  }

  async snapshot(id: string): Promise<JobSnapshot | null> {
    const read = await this.records.get(id);
    if (!read) return null;
    if (isFinished(read.status)) return { record: read, queuePosition: null, etaSeconds: null };
    // Where the queue holds the job, whatever the record said: a worker may have taken it, or handed it
    // back, since (placed). The wait list is read before the active list, on one connection, so a job
    // that a worker takes meanwhile shows in one or the other.
    const [standing, next, activeIds, throughput] = await Promise.all([this.queue.standing(id, ETA_SAMPLE), this.queue.next(ETA_SAMPLE), this.queue.activeIds(), this.pool()]);
    const placement: Placement = standing ? { waiting: standing.position } : activeIds.includes(id) ? 'active' : 'elsewhere';
    // Queued but in neither list: canceled since the record was read, most likely.
    const current = placement === 'elsewhere' && read.status === 'queued' ? await this.records.get(id) : read;
    if (!current) return null;
    const { record, queuePosition } = placed(current, placement);
    if (isFinished(record.status)) return { record, queuePosition, etaSeconds: null };
    // A queued job the queue does not list (its add not landed yet) has no estimate.
    if (throughput === null || (record.status === 'queued' && queuePosition === null)) return { record, queuePosition, etaSeconds: null };
    const othersIds = activeIds.filter((active) => active !== id);
    const aheadIds = standing?.ahead ?? [];
    const behindIds = standing?.behind ?? next;
    // The records of all three groups in one round trip (missing jobs are left out).
    const work = new Map((await this.records.workOf([...othersIds, ...aheadIds, ...behindIds])).map((job) => [job.id, job]));
    const workOf = (ids: readonly string[]) => ids.flatMap((jobId) => work.get(jobId) ?? []);
    const own = remainingShape(record);
    const eta = etaSeconds({
      own,
      running: record.status === 'running',
      othersRunning: workOf(othersIds).map(remainingShape),
      ahead: queueAhead((queuePosition ?? 1) - 1, workOf(aheadIds).map((job) => jobShape(job.parameters)), own),
      behind: workOf(behindIds).map((job) => jobShape(job.parameters)),
      concurrency: throughput.concurrency,
      secondsPerImageStep: throughput.secondsPerImageStep,
      workers: throughput.workers ?? 1,
    });
    return { record, queuePosition, etaSeconds: eta };
  }

  async record(id: string): Promise<JobRecord | null> {
    return this.records.get(id);
  }

  async exists(id: string): Promise<boolean> {
    return this.records.exists(id);
  }

  async events(id: string, afterId?: string, count?: number): Promise<StoredEvent[]> {
    return this.jobEvents.read(id, afterId, count);
  }

  async cancel(id: string): Promise<CancelOutcome> {
    const before = await this.records.requestCancel(id, this.now(), this.retentionSeconds);
    if (before === null) return { outcome: 'not-found' };
    if (before === 'queued') {
      // Canceled before any worker ran it (requestCancel appended its final event): drop the delivery.
      await this.queue.removeWaiting(id);
      return { outcome: 'canceled' };
    }
    if (before === 'running') {
      // The record is flagged too, for a worker that takes the job after this message went out.
      await publishCancel(this.redis, this.keys, id);
      return { outcome: 'stopping' };
    }
    return { outcome: 'finished', status: before };
  }

  async depth(): Promise<QueueDepth> {
    return this.queue.depth();
  }

  async recordThroughput(throughput: Throughput): Promise<void> {
    await this.throughputRecord.record(throughput, this.now());
  }

  async throughput(): Promise<Throughput | null> {
    return this.throughputRecord.read();
  }

  /** The workers taking jobs as one pool (poolThroughput), from a heartbeat read at most POOL_READ_MAX_AGE_MS old. */
  private async pool(): Promise<Throughput | null> {
    const [recorded, workers] = await Promise.all([this.throughput(), this.recentWorkers()]);
    return poolThroughput(workers.filter(takesJobs).map(poolMember), recorded);
  }

  private async recentWorkers(): Promise<WorkerHeartbeat[]> {
    const now = Date.now();
    if (this.lastWorkers !== null && now - this.lastWorkers.at <= POOL_READ_MAX_AGE_MS) return this.lastWorkers.workers;
    const workers = await this.liveWorkers();
    this.lastWorkers = { at: now, workers };
    return workers;
  }

  connected(): boolean {
    return this.redis.status === 'ready';
  }

  async ping(timeoutMs: number): Promise<void> {
    await pingRedis(this.redis, timeoutMs);
  }

  async liveWorkers(): Promise<WorkerHeartbeat[]> {
    // Heartbeats are found by SCAN, round trips in proportion to all the keys in Redis: the refusals of
    // a full queue (and readiness probes) that arrive together share one read instead of one each.
    this.workersRead ??= liveWorkers(this.redis, this.keys).finally(() => {
      this.workersRead = null;
    });
    return this.workersRead;
  }
}

/** A heartbeat as the ETA's pool counts it. */
function poolMember(worker: WorkerHeartbeat): PoolMember {
  return { concurrency: worker.concurrency ?? null, secondsPerImageStep: worker.seconds_per_image_step ?? null };
}
