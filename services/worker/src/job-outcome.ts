import type { JobError, JobImage, JobStatus } from '@pixelflow/schemas';

// What running a job can come to. runJob decides which; the processor acts on it (job-processor.ts),
// and every ending goes through endJob (job-ending.ts), so there is one place that ends a job.

/** Why a running job's AbortSignal was aborted. */
export const ABORT_CANCELED = 'canceled';
/** The worker is stopping: the job goes back to the queue for another worker (or this one, later). */
export const ABORT_SHUTDOWN = 'shutdown';
/** BullMQ could not renew the job's lock: another worker may own it now, so this one lets go of it. */
export const ABORT_LOCK_LOST = 'lock-lost';

export type AbortReason = typeof ABORT_CANCELED | typeof ABORT_SHUTDOWN | typeof ABORT_LOCK_LOST;

/** How a job ends: its final status and what the record keeps with it. */
export type JobEnding = { status: 'succeeded'; images: JobImage[] } | { status: 'failed'; error: JobError } | { status: 'canceled' };

export type JobOutcome =
  /** The record is gone or already ended (canceled while queued, say): nothing ran. */
  | { kind: 'skipped'; status: JobStatus | null }
  /** The job ran (or was canceled before its first step) and ends so. */
  | { kind: 'ended'; ending: JobEnding; times?: EndingTimes }
  /** The job stopped part-way and is not this worker's to end. */
  | { kind: 'let-go'; reason: typeof ABORT_SHUTDOWN | typeof ABORT_LOCK_LOST };

/** When a job was created and when this worker started it, for the ending's metrics; absent when unknown. */
export interface EndingTimes {
  createdAt?: Date;
  startedAt?: Date;
}

/** First line of an error's message: what records, events and logs keep. */
export function errorLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n')[0] ?? '';
}
