import type { JobProgress, ResolvedGeneration } from '@pixelflow/schemas';

// Every time estimate the service gives, in one place. The unit of work is one
// sampler step for one image (steps x images). Workers record seconds per unit
// (JobService.recordThroughput) as worker time amortised over the jobs they run
// at once, batched model calls included: a throughput of the whole worker, not
// the speed of one job. So a job is done once the worker has got through all the
// work that has to happen before its end:
//
//   ETA = (remaining work of running jobs + work ahead in the queue + own remaining work)
//         x seconds per (image x step)
//
// which stays right however many jobs a worker runs concurrently. The figure is
// one worker's; several workers sharing a queue would divide it (not measured yet).

/** Seconds a queue-full answer asks a client to wait when no worker has measured throughput yet. */
const UNMEASURED_RETRY_AFTER_SECONDS = 10;

/** Steps x images: the unit of work every estimate counts. */
export function jobWork(parameters: Pick<ResolvedGeneration, 'steps' | 'num_images'>): number {
  return parameters.steps.reduce((a, b) => a + b, 0) * parameters.num_images;
}

/** The work a job still has to do, from the progress its worker reported. */
export function remainingWork(job: { parameters: ResolvedGeneration; progress: JobProgress | null }): number {
  return jobWork(job.parameters) * (1 - (job.progress?.fraction ?? 0));
}

/**
 * The work of `aheadCount` waiting jobs from the sizes of the nearest few (`sampled`), so that a
 * status request costs the same however long the queue is. With no sample, they count as `ownWork` each.
 */
export function extrapolateWorkAhead(aheadCount: number, sampled: readonly number[], ownWork: number): number {
  if (sampled.length === 0) return aheadCount * ownWork;
  return (sum(sampled) / sampled.length) * aheadCount;
}

export interface EtaInputs {
  /** The job's remaining work (all of it while it waits). */
  ownRemaining: number;
  /** Whether the job runs now, sharing the worker's model calls with the other running jobs. */
  running: boolean;
  /** Remaining work of every other running job. */
  othersRunning: readonly number[];
  /** Work of the jobs waiting ahead of it (0 once it runs). */
  workAhead: number;
  secondsPerImageStep: number;
}

/**
 * Seconds until a job ends (the formula at the top). A waiting job counts all running work, as it
 * ends after it. A running job shares model calls with the others, so each delays it by at most
 * its own remaining work: with one job running, this is that job's remaining work x rate.
 */
export function etaSeconds(inputs: EtaInputs): number {
  const { ownRemaining, running, othersRunning, workAhead, secondsPerImageStep } = inputs;
  const runningBefore = sum(othersRunning.map((work) => (running ? Math.min(work, ownRemaining) : work)));
  return (runningBefore + workAhead + ownRemaining) * secondsPerImageStep;
}

/** Retry-After for a full queue: about one job of this size, the time until a slot frees. */
export function queueFullRetryAfterSeconds(parameters: Pick<ResolvedGeneration, 'steps' | 'num_images'>, secondsPerImageStep: number | null): number {
  const perJob = secondsPerImageStep === null ? UNMEASURED_RETRY_AFTER_SECONDS : secondsPerImageStep * jobWork(parameters);
  return Math.max(1, Math.ceil(perJob));
}

function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0);
}
