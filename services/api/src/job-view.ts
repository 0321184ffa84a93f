import type { JobRecord } from '@pixelflow/queue';
import type { Job } from '@pixelflow/schemas';

// The job resource of GET /jobs/:id from a job's record, plus what only the
// queue knows (position) and a time estimate from the worker's measured
// throughput: seconds per (sampler step x image), times the work left ahead.

export interface QueueSnapshot {
  /** The job's place in the queue (1 = next); null unless it is waiting. */
  position: number | null;
  /** Work (steps x images) left in running jobs. */
  runningWork: number;
  /** Seconds per step per image; null until a worker has measured it. */
  secondsPerImageStep: number | null;
}

/** Steps x images: the unit of work the ETA counts. */
export function jobWork(record: Pick<JobRecord, 'parameters'>): number {
  return record.parameters.steps.reduce((a, b) => a + b, 0) * record.parameters.num_images;
}

export function remainingWork(record: Pick<JobRecord, 'parameters' | 'progress'>): number {
  const fraction = record.progress?.fraction ?? 0;
  return jobWork(record) * (1 - fraction);
}

/**
 * @param workAhead steps x images of the waiting jobs ahead of this one (queued jobs only)
 */
export function jobView(record: JobRecord, snapshot: QueueSnapshot, workAhead = 0): Job {
  let position: number | null = null;
  let eta: number | null = null;
  const rate = snapshot.secondsPerImageStep;
  if (record.status === 'queued') {
    position = snapshot.position;
    if (rate !== null && position !== null) {
      eta = (snapshot.runningWork + workAhead + jobWork(record)) * rate;
    }
  } else if (record.status === 'running' && rate !== null) {
    eta = remainingWork(record) * rate;
  }
  return {
    id: record.id,
    status: record.status,
    model: record.model,
    parameters: record.parameters,
    progress: record.progress,
    queue_position: position,
    eta_seconds: eta === null ? null : Math.round(eta * 10) / 10,
    created_at: record.createdAt.toISOString(),
    started_at: record.startedAt?.toISOString() ?? null,
    finished_at: record.finishedAt?.toISOString() ?? null,
    expires_at: record.expiresAt?.toISOString() ?? null,
    previews: record.previews,
    result: record.images === null ? null : { images: record.images },
    error: record.error,
  };
}
