import type { JobStatus, ResolvedGeneration } from '@pixelflow/schemas';
import type { Throughput } from './eta.ts';
import type { StoredEvent } from './job-events.ts';
import type { OwnerCap, QueueDepth } from './job-queue.ts';
import type { JobRecord, JobWebhookTarget } from './job-records.ts';
import type { WorkerHeartbeat } from './workers.ts';

// What the API and the worker ask of the job store, job by job, without
// knowing that it is Redis and BullMQ underneath: RedisJobService is the real
// one; tests of the HTTP routes give the API an in-memory one instead.

/** A job to accept: the model that runs it and its parameters, defaults filled in. */
export interface JobRequest {
  model: string;
  parameters: ResolvedGeneration;
  /** The HTTP request's id (X-Request-Id), kept on the record and in the worker's log lines. */
  requestId?: string;
  /** The API key name that owns it (principal.ts's scopeOf); '' or absent with AUTH=off. */
  owner?: string;
  /** Where to tell that it ended (checked by the caller); never part of the parameters. */
  webhook?: JobWebhookTarget;
}

/**
 * The answer to submit(): queued (with its place, 1 = next), or refused because the queue is full,
 * with how long to wait before asking again and, where the service can tell, how many workers are
 * alive to run the queue (a stopping one is not).
 */
export type Submission =
  | { accepted: true; id: string; position: number }
  | { accepted: false; inQueue: number; retryAfterSeconds: number; workersAlive?: number }
  | OverOwnerCap;

/** Refused because its owner already has `maxActive` jobs queued or running (`ownerActive` of them). */
export interface OverOwnerCap {
  accepted: false;
  ownerActive: number;
  maxActive: number;
  retryAfterSeconds: number;
}

/** A job as a status request sees it: its record and what only the queue knows. */
export interface JobSnapshot {
  record: JobRecord;
  /** 1 = next to run; null unless the job waits in the queue. */
  queuePosition: number | null;
  /** Seconds until it ends (eta.ts); null when finished or before a worker has measured throughput. */
  etaSeconds: number | null;
}

/**
 * What a cancel request did: a waiting job is `canceled` at once, a running one is `stopping`
 * (its worker has been told), a finished one keeps its ending.
 */
export type CancelOutcome =
  | { outcome: 'canceled' }
  | { outcome: 'stopping' }
  | { outcome: 'finished'; status: Exclude<JobStatus, 'queued' | 'running'> }
  | { outcome: 'not-found' };

export interface JobService {
  /**
   * Records and queues a job unless `queueCap` jobs are already waiting or running: atomically, so
   * that concurrent submissions never take the queue past the cap. With `ownerCap`, likewise unless its
   * owner has `maxActive` jobs waiting or running, both caps checked and taken in one atomic step.
   */
  submit(request: JobRequest, queueCap: number, ownerCap?: OwnerCap): Promise<Submission>;
  /** The job with its queue position and ETA; null when there is no such job. */
  snapshot(id: string): Promise<JobSnapshot | null>;
  /** The job's record alone (no queue reads); null when there is no such job. */
  record(id: string): Promise<JobRecord | null>;
  exists(id: string): Promise<boolean>;
  /** The job's events after `afterId` (all when undefined), oldest first, at most `count`. */
  events(id: string, afterId?: string, count?: number): Promise<StoredEvent[]>;
  cancel(id: string): Promise<CancelOutcome>;
  /** Jobs waiting and running. */
  depth(): Promise<QueueDepth>;
  /** Stores a worker's measured seconds per (image x step), amortised over its concurrent jobs, and their number (eta.ts). */
  recordThroughput(throughput: Throughput): Promise<void>;
  /** The last throughput a worker recorded; null before any did. */
  throughput(): Promise<Throughput | null>;
  /** Whether the job store's connection is up right now (no round trip): requests fail fast while it is not. */
  connected(): boolean;
  /** Resolves once the job store answers, or rejects after `timeoutMs` with the reason. */
  ping(timeoutMs: number): Promise<void>;
  /** Every worker whose heartbeat has not expired. */
  liveWorkers(): Promise<WorkerHeartbeat[]>;
}
