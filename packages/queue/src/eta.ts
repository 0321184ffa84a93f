import type { JobProgress, ResolvedGeneration } from '@pixelflow/schemas';

// Every time estimate the service gives, in one place. The unit of work is one
// sampler step for one image (steps x images). Workers record seconds per unit
// (JobService.recordThroughput) as worker time amortised over the jobs they run
// at once, batched model calls included: a throughput of the whole worker, not
// the speed of one job. With the worker busy all along (it is: there is always
// this job's own work left), a job ends once the worker has got through all the
// work done before that moment:
//
//   ETA = (work of every job, its own included, done before it ends) x seconds per (image x step)
//
// What is done before it ends depends on how the worker shares its time. A worker
// runs up to `concurrency` jobs at once (MAX_CONCURRENT_JOBS) and merges their
// model calls, so every running job takes one step per round of calls, whatever
// its image count, and a round costs the images of all of them. So another job
// delays this one by its images x the steps it takes while this one runs: all
// its remaining steps if it ends first, this one's remaining steps if it
// outlasts it. A waiting job starts when a slot frees (first come, first served),
// and so do the jobs queued behind it, which then share its rounds: etaSeconds
// plays the rounds forward, job by job, to count exactly that. With concurrency 1
// this is the queue in order: all work ahead, then its own.
//
// Several workers sharing the queue are one pool: their slots add up (a waiting
// job starts when any of them frees one), and a round of calls is shared among
// the workers that run its jobs, each running its own part at once. The pool
// plays forward as one worker with all the slots whose round costs the images
// of its jobs divided by the workers busy with them (as many as there are jobs,
// up to all of them): jobs spread evenly over the workers, each as fast as the
// pool's typical worker (poolThroughput: the harmonic mean of the rates the live
// workers measured, so that a pool of one fast and one slow worker gets through
// the work of both together). With one worker this is the model above exactly.

/** Seconds a queue-full answer asks a client to wait when no worker has measured throughput yet. */
const UNMEASURED_RETRY_AFTER_SECONDS = 10;
/**
 * Seconds a queue-full answer adds for a worker to start when none is alive: nothing leaves the
 * queue until one does, and a worker takes tens of seconds to start and load its model, so asking
 * again sooner only finds the queue as full.
 */
export const NO_WORKER_RETRY_AFTER_SECONDS = 60;
/**
 * Waiting jobs played forward one by one (the nearest ones ahead); jobs further ahead count with
 * all their work, as all of it is done before this one starts. Bounds a status request's arithmetic
 * however long the queue is (QUEUE_CAP is 1000 by default).
 */
const MAX_PLAYED_AHEAD = 1000;

/** A job as estimates see it: the sampler steps it still has to take, and its images (rows of each step). */
export interface JobShape {
  steps: number;
  images: number;
}

/**
 * What a worker measured, for estimates: its seconds per (image x step) and how many jobs it runs at
 * once; for a pool (poolThroughput), its typical worker's, and how many workers share the queue.
 */
export interface Throughput {
  secondsPerImageStep: number;
  concurrency: number;
  /** Workers sharing the queue, each this fast with this many slots; 1 when absent. */
  workers?: number;
}

/** One live worker as the pool sees it: its slots and, once it has run jobs, its measured seconds per (image x step). */
export interface PoolMember {
  /** Its slots; null when its heartbeat does not say (a worker older than that field): as recorded. */
  concurrency: number | null;
  secondsPerImageStep: number | null;
}

/**
 * The queue's workers as one pool: as many workers as are alive, with their slots averaged and the
 * harmonic mean of their measured rates (the pool's work per second is the sum of theirs); a worker
 * that has not measured yet counts as the typical measured one. With no member measured, `recorded`
 * (the last rate any worker recorded) stands for each; null when there is neither. With no worker
 * alive, the pool is the one worker that will start (Retry-After adds its start-up time).
 */
export function poolThroughput(members: readonly PoolMember[], recorded: Throughput | null): Throughput | null {
  const rates = members.flatMap((m) => (m.secondsPerImageStep !== null && m.secondsPerImageStep > 0 ? [m.secondsPerImageStep] : []));
  const secondsPerImageStep = rates.length > 0 ? rates.length / sum(rates.map((seconds) => 1 / seconds)) : recorded?.secondsPerImageStep;
  if (secondsPerImageStep === undefined) return null;
  if (members.length === 0) return { secondsPerImageStep, concurrency: recorded?.concurrency ?? 1, workers: 1 };
  const slots = members.map((m) => Math.max(1, m.concurrency ?? recorded?.concurrency ?? 1));
  return { secondsPerImageStep, concurrency: sum(slots) / members.length, workers: members.length };
}

/** Steps x images: the unit of work every estimate counts. */
export function jobWork(parameters: Pick<ResolvedGeneration, 'steps' | 'num_images'>): number {
  const { steps, images } = jobShape(parameters);
  return steps * images;
}

/** A job that has not started: all its steps. */
export function jobShape(parameters: Pick<ResolvedGeneration, 'steps' | 'num_images'>): JobShape {
  return { steps: parameters.steps.reduce((a, b) => a + b, 0), images: parameters.num_images };
}

/**
 * What a job still has to do, from the progress its worker reported: the steps between the last
 * one done and the worker's count of all of them (exact for Euler, Dopri5's running estimate).
 */
export function remainingShape(job: { parameters: Pick<ResolvedGeneration, 'steps' | 'num_images'>; progress: JobProgress | null }): JobShape {
  const whole = jobShape(job.parameters);
  if (!job.progress) return whole;
  return { steps: Math.max(0, job.progress.steps_total - job.progress.step), images: whole.images };
}

/** The jobs waiting ahead of one, in the order they will start (played by etaSeconds), and the work of any beyond. */
export interface QueueAhead {
  jobs: JobShape[];
  /** Work of the jobs so far ahead that they are counted whole instead (MAX_PLAYED_AHEAD). */
  beyondWork: number;
}

/**
 * The `aheadCount` jobs waiting ahead of one, from the shapes of the nearest few (`sampledNearestFirst`,
 * nearest first), so that a status request reads the same from Redis however long the queue is. The
 * ones not sampled are further ahead (they start first) and count as the sample's average; with no
 * sample, as `own` each.
 */
export function queueAhead(aheadCount: number, sampledNearestFirst: readonly JobShape[], own: JobShape): QueueAhead {
  const sampled = sampledNearestFirst.slice(0, aheadCount);
  const n = sampled.length;
  const typical = n === 0 ? own : { steps: sum(sampled.map((job) => job.steps)) / n, images: sum(sampled.map((job) => job.images)) / n };
  const unsampled = aheadCount - n;
  const played = Math.min(unsampled, Math.max(0, MAX_PLAYED_AHEAD - n));
  return {
    jobs: [...Array.from({ length: played }, () => typical), ...sampled.reverse()],
    beyondWork: (unsampled - played) * typical.steps * typical.images,
  };
}

export interface EtaInputs {
  /** What the job still has to do (all of it while it waits). */
  own: JobShape;
  /** Whether the job runs now. */
  running: boolean;
  /** What every other running job still has to do. */
  othersRunning: readonly JobShape[];
  /** The jobs waiting ahead of it (none once it runs). */
  ahead: QueueAhead;
  /** Jobs waiting behind it (all waiting jobs once it runs), the next to start first: they take the slots that free up before it ends. */
  behind: readonly JobShape[];
  /** Jobs one worker runs at once. */
  concurrency: number;
  secondsPerImageStep: number;
  /** Workers sharing the queue (1 when absent): their slots add up, and they share each round's images. */
  workers?: number;
}

/**
 * Seconds until a job ends (the model at the top): rounds of calls are played forward, each job in a
 * slot taking one step per round and each round costing the images of the jobs in it, slots going to
 * the waiting jobs in order as jobs end, until this one ends.
 */
export function etaSeconds(inputs: EtaInputs): number {
  const { own, running, othersRunning, ahead, behind, secondsPerImageStep } = inputs;
  const workers = Math.max(1, Math.floor(inputs.workers ?? 1));
  const slots = Math.max(1, Math.round(inputs.concurrency * workers));
  const mine: JobShape = { ...own };
  // More may run than the pool's slots (workers that have since left): they all run on, and no one starts meanwhile.
  let active: JobShape[] = [...othersRunning.map((job) => ({ ...job })), ...(running ? [mine] : [])];
  const waiting: JobShape[] = [...ahead.jobs, ...(running ? [] : [mine]), ...behind];
  let next = 0;
  let work = ahead.beyondWork;
  for (;;) {
    if (mine.steps <= 0 && active.includes(mine)) return work * secondsPerImageStep;
    active = active.filter((job) => job.steps > 0);
    while (active.length < slots && next < waiting.length) {
      const job = waiting[next++] as JobShape;
      active.push(job === mine ? mine : { ...job });
    }
    if (active.some((job) => job.steps <= 0)) continue; // a job with nothing left started and ends at once
    // Until the next job ends, every job in a slot takes this many steps.
    const steps = Math.min(...active.map((job) => job.steps));
    // The round's images, spread over the workers running them: one worker per job, up to all of them.
    work += (steps * sum(active.map((job) => job.images))) / Math.min(workers, active.length);
    for (const job of active) job.steps -= steps;
  }
}

/** What a job queued now would find: the running jobs (what they still have to do) and the jobs waiting, all ahead of it. */
export interface QueueNow {
  running: readonly JobShape[];
  waiting: QueueAhead;
}

/**
 * Seconds until a job queued now would start: until every job ahead of it has started and a slot
 * has freed for it (with one job at a time, until the queue has drained), played as etaSeconds plays
 * a job's wait, for a job with no work of its own.
 */
export function queueWaitSeconds(queue: QueueNow, throughput: Throughput): number {
  return etaSeconds({
    own: { steps: 0, images: 0 },
    running: false,
    othersRunning: queue.running,
    ahead: queue.waiting,
    behind: [],
    concurrency: throughput.concurrency,
    secondsPerImageStep: throughput.secondsPerImageStep,
    workers: throughput.workers ?? 1,
  });
}

/**
 * Retry-After for a full queue: the time the queue takes to drain far enough for a job queued now to
 * start (queueWaitSeconds; null before any worker measured its throughput), since a client that comes
 * back sooner finds it as full, or the other refused clients ahead of it; plus the time a worker takes
 * to start when none is alive (`workersAlive`: workers that take jobs, loading or ready).
 */
export function retryAfterSecondsWhenFull({ waitSeconds, workersAlive }: { waitSeconds: number | null; workersAlive: number }): number {
  const seconds = workersAlive === 0 ? NO_WORKER_RETRY_AFTER_SECONDS + (waitSeconds ?? 0) : (waitSeconds ?? UNMEASURED_RETRY_AFTER_SECONDS);
  return Math.max(1, Math.ceil(seconds));
}

function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0);
}
