import { WaitingError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { QUEUE_NAME, type JobRecords, type Keys, type QueuedJobData } from '@pixelflow/queue';
import type { Logger } from 'pino';
import { EndingNotWritten, type JobEnder } from './job-ending.ts';
import { ABORT_CANCELED, ABORT_LOCK_LOST, ABORT_SHUTDOWN, errorLine, type EndingTimes, type JobEnding, type JobOutcome } from './job-outcome.ts';
import type { ThroughputMeter } from './throughput-meter.ts';

// Takes jobs from BullMQ, up to `concurrency` at once, runs each, and acts on
// its outcome: an ending goes to the JobEnder (which tries again while Redis
// refuses it); a job stopped by shutdown goes back to the queue; a job whose
// lock was lost is left to BullMQ's stalled-job check, which returns it to the
// queue (its new owner, if any, must not see this worker write to it). A job
// whose ending could not be written by then is treated the same way. A job back
// in the queue either way has its record queued again (JobRecords.requeue), so
// that neither its status nor its event stream says it runs while no worker has it.

export type RunJob = (jobId: string, signal: AbortSignal, log: Logger) => Promise<JobOutcome>;

/**
 * Times BullMQ's stalled check may return a job to the queue (its worker died or lost the lock)
 * before the next worker to take it fails it instead: a job whose worker died is run once more.
 */
export const MAX_STALLED_COUNT = 2;

export interface JobProcessorOptions {
  connection: Redis;
  keys: Keys;
  /** Where a job handed back, or returned by the stalled check, is queued again. */
  records: Pick<JobRecords, 'requeue'>;
  concurrency: number;
  lockDurationMs: number;
  stalledIntervalMs: number;
  run: RunJob;
  ender: JobEnder;
  throughput: ThroughputMeter;
  /** Hears the number of jobs running whenever it changes. */
  onRunning?: (count: number) => void;
  /** Called with seconds per image-step whenever a job ends and a new figure is known. */
  onThroughput: (secondsPerImageStep: number) => Promise<void>;
  log: Logger;
}

export class JobProcessor {
  private readonly running = new Map<string, AbortController>();
  /** Jobs whose ending is being written: aborted when their lock is lost, to stop trying. */
  private readonly ending = new Map<string, AbortController>();
  /** Aborted when the shutdown grace has run out (or the processor has stopped): endings stop being tried again. */
  private readonly shutdown = new AbortController();
  private readonly options: JobProcessorOptions;
  private readonly bull: Worker<QueuedJobData>;
  /** BullMQ's wait list, where a job handed back or returned by the stalled check waits. */
  private readonly waitKey: string;

  constructor(options: JobProcessorOptions) {
    this.options = options;
    this.bull = new Worker<QueuedJobData>(QUEUE_NAME, (job, token) => this.process(job, token), {
      connection: options.connection,
      prefix: options.keys.prefix,
      concurrency: options.concurrency,
      autorun: false,
      lockDuration: options.lockDurationMs,
      stalledInterval: options.stalledIntervalMs,
      maxStalledCount: MAX_STALLED_COUNT,
    });
    const waitKey = this.bull.keys.wait;
    if (waitKey === undefined) throw new Error("BullMQ has no 'wait' key");
    this.waitKey = waitKey;
    const { log, ender } = options;
    // BullMQ fails a job for reasons outside the processor too (one that stalled more than
    // maxStalledCount times); its record, left running, would then never end nor expire. A job
    // failed over an ending this worker could not write ends as that ending, never as a failure.
    this.bull.on('failed', (job, error) => {
      if (!job) return;
      const unwritten = error instanceof EndingNotWritten ? error : null;
      const ending: JobEnding = unwritten?.ending ?? { status: 'failed', error: { type: 'worker_error', message: errorLine(error) } };
      ender.end(job.data.id, ending, this.shutdown.signal, unwritten?.times ?? {}).catch((endError: unknown) =>
        log.error({ err: endError, job_id: job.data.id, status: ending.status }, 'could not record the ending of a job BullMQ failed'),
      );
    });
    // This worker's stalled check returned the job to the wait list: its worker died or lost the lock.
    this.bull.on('stalled', (jobId) => {
      log.warn({ job_id: jobId }, 'a job whose worker died or lost its lock is back in the queue');
      void this.requeue(jobId, log);
    });
    this.bull.on('error', (error) => log.error({ err: error }, 'queue error'));
    this.bull.on('lockRenewalFailed', (ids) => {
      log.error({ job_ids: ids }, 'lost the lock of a running job: stopping it (another worker may take it over)');
      for (const jobId of ids) {
        this.running.get(jobId)?.abort(ABORT_LOCK_LOST);
        this.ending.get(jobId)?.abort(ABORT_LOCK_LOST);
      }
    });
  }

  /** Jobs running now. */
  get runningIds(): string[] {
    return [...this.running.keys()];
  }

  start(): void {
    void this.bull.run().catch((error: unknown) => this.options.log.error({ err: error }, 'worker loop failed'));
  }

  /** Stops job `jobId` if it runs here (the API asked); it ends canceled. */
  cancel(jobId: string): boolean {
    const controller = this.running.get(jobId);
    controller?.abort(ABORT_CANCELED);
    return controller !== undefined;
  }

  /**
   * Takes no new jobs; running ones get `graceMs` to finish, then are handed back to the queue.
   * Resolves when every job has finished or been handed back.
   */
  async stop(graceMs: number): Promise<void> {
    const closing = this.bull.close();
    const grace = setTimeout(() => {
      for (const controller of this.running.values()) controller.abort(ABORT_SHUTDOWN);
      this.shutdown.abort(ABORT_SHUTDOWN);
    }, graceMs);
    try {
      await closing;
    } finally {
      clearTimeout(grace);
      // Nothing of this processor runs any more; an ending still being tried (for 'failed') stops too.
      this.shutdown.abort(ABORT_SHUTDOWN);
    }
  }

  private async process(job: Job<QueuedJobData>, token: string | undefined): Promise<void> {
    const jobId = job.data.id;
    const controller = new AbortController();
    const log = this.options.log.child({ job_id: jobId });
    this.running.set(jobId, controller);
    this.options.onRunning?.(this.running.size);
    this.options.throughput.jobStarted();
    let outcome: JobOutcome;
    try {
      outcome = await this.options.run(jobId, controller.signal, log).catch((error: unknown): JobOutcome => {
        // Not even taken (Redis away at the start): fail it if it is ours, as the record may say running.
        log.error({ err: error }, 'job could not be started');
        return { kind: 'ended', ending: { status: 'failed', error: { type: 'worker_error', message: errorLine(error) } } };
      });
    } finally {
      // The same job taken again while this run unwound (its lock was lost) has its own controller now.
      if (this.running.get(jobId) === controller) this.running.delete(jobId);
      this.options.onRunning?.(this.running.size);
      this.options.throughput.jobEnded();
    }
    await this.act(job, token, outcome, log);
  }

  private async act(job: Job<QueuedJobData>, token: string | undefined, outcome: JobOutcome, log: Logger): Promise<void> {
    switch (outcome.kind) {
      case 'skipped':
        return;
      case 'ended': {
        // Ended here, the job completes in BullMQ.
        await this.end(job, token, outcome.ending, outcome.times ?? {}, log);
        const rate = this.options.throughput.take();
        if (rate !== null) await this.options.onThroughput(rate).catch((error: unknown) => log.warn({ err: error }, 'recording throughput failed'));
        return;
      }
      case 'let-go':
        if (outcome.reason === ABORT_SHUTDOWN) return this.handBack(job, token);
        // The lock is gone, so BullMQ cannot complete or fail it either; its stalled-job check
        // returns the job to the wait list (counting one stall) once the lock has expired.
        // (Should Redis have kept the lock after all, BullMQ fails the job with this message and
        // 'failed' above ends it so: an error the user sees, never a job left running forever.)
        throw new Error('this worker lost the job\'s lock (Redis unreachable for longer than LOCK_DURATION_MS)');
    }
  }

  /**
   * Writes the job's ending, the JobEnder trying again while Redis refuses it, until this worker
   * stops or loses the job's lock. Given up, the job is not failed: stopping, this worker hands it
   * back to the queue, for the next worker to run from its seed and end; with the lock lost,
   * BullMQ's stalled check returns it there. Either way EndingNotWritten carries the ending, should
   * BullMQ fail the job after all (then 'failed' above writes the ending).
   */
  private async end(job: Job<QueuedJobData>, token: string | undefined, ending: JobEnding, times: EndingTimes, log: Logger): Promise<void> {
    const jobId = job.data.id;
    const lockLost = new AbortController();
    this.ending.set(jobId, lockLost);
    try {
      await this.options.ender.end(jobId, ending, AbortSignal.any([lockLost.signal, this.shutdown.signal]), times);
    } catch (error) {
      const unwritten = new EndingNotWritten(ending, times, error);
      log.error({ err: error, status: ending.status, lock_lost: lockLost.signal.aborted }, 'gave up recording how the job ended: it goes back to the queue');
      if (lockLost.signal.aborted) throw unwritten;
      await this.handBack(job, token, unwritten);
    } finally {
      if (this.ending.get(jobId) === lockLost) this.ending.delete(jobId);
    }
  }

  /**
   * Back to the wait list now, for the next worker; WaitingError tells BullMQ the processor moved
   * it. Should Redis refuse that too, `unwritten` (when given) goes to BullMQ instead.
   */
  private async handBack(job: Job<QueuedJobData>, token: string | undefined, unwritten?: EndingNotWritten): Promise<never> {
    try {
      await job.moveToWait(token);
    } catch (error) {
      throw unwritten ?? error;
    }
    await this.requeue(job.data.id, this.options.log.child({ job_id: job.data.id }));
    throw new WaitingError();
  }

  /**
   * Queues the record of a job back in the wait list again, unless a worker has taken it since. A
   * write that fails is logged: status requests still read the job as queued (they see where it
   * waits), and the record is rewritten when a worker starts it again.
   */
  private async requeue(jobId: string, log: Logger): Promise<void> {
    try {
      // BullMQ's lock of a job is the key `<job key>:lock` (its stalled check reads the same).
      const status = await this.options.records.requeue(jobId, { lock: `${this.bull.toKey(jobId)}:lock`, wait: this.waitKey });
      if (status === 'queued') log.info('job queued again');
    } catch (error) {
      log.warn({ err: error }, 'could not record that the job is queued again');
    }
  }
}
