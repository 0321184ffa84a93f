import { setTimeout as sleep } from 'node:timers/promises';
import type { JobRecords } from '@pixelflow/queue';
import type { Logger } from 'pino';
import type { WorkerMetrics } from './metrics.ts';
import { errorLine, type EndingTimes, type JobEnding } from './job-outcome.ts';

// The one place where this worker ends a job: the record's final status and
// event (one Lua script, so a job ends once whoever tries first), and the
// metrics of that ending, counted only by the call that actually ended it.
// A write Redis refuses is tried again, the same ending, until it is written
// or the caller gives up: an ending (a succeeded job's images above all) is
// never turned into a failure because it could not be written at once. The
// script commits the status last, so trying again after a failure part-way
// writes the whole ending (job-records.ts).

/** First wait before writing an ending again; it doubles up to RETRY_MAX_MS. */
const RETRY_FIRST_MS = 200;
const RETRY_MAX_MS = 5000;

export interface JobEnder {
  /**
   * Ends job `id` as `ending` unless it already ended, trying again while the write fails; rejects
   * with the last error once `until` aborts (at once if it already has). `times` say when it was
   * created and when this worker started it (pixelflow_job_latency_seconds, _run_seconds), what is known.
   */
  end(id: string, ending: JobEnding, until: AbortSignal, times?: EndingTimes): Promise<void>;
}

/**
 * An ending this worker gave up writing (it was stopping, or lost the job's lock). It is still how
 * the job ended: thrown to BullMQ, it carries the ending to the 'failed' handler, which writes it
 * instead of a failure should BullMQ fail the job over it.
 */
export class EndingNotWritten extends Error {
  readonly ending: JobEnding;
  readonly times: EndingTimes;

  constructor(ending: JobEnding, times: EndingTimes, cause: unknown) {
    super(`could not record that the job ${ending.status}: ${errorLine(cause)}`, { cause });
    this.name = 'EndingNotWritten';
    this.ending = ending;
    this.times = times;
  }
}

export function jobEnder(records: JobRecords, metrics: WorkerMetrics, retentionSeconds: number, log: Logger): JobEnder {
  return {
    async end(id, ending, until, times = {}) {
      // The time it ended, however long writing that takes.
      const now = new Date();
      const final = await retrying(() => records.finish(id, ending, now, retentionSeconds), until, (error, waitMs) =>
        log.warn({ err: error, job_id: id, status: ending.status, retry_in_ms: waitMs }, 'could not record how the job ended; trying again'),
      );
      if (final !== ending.status) {
        log.debug({ job_id: id, wanted: ending.status, status: final }, 'job had already ended');
        return;
      }
      metrics.jobsFinished.inc({ status: ending.status });
      if (ending.status === 'succeeded') metrics.imagesGenerated.inc(ending.images.length);
      if (ending.status === 'failed') metrics.jobFailures.inc({ type: ending.error.type });
      if (times.startedAt) metrics.jobRun.observe((now.getTime() - times.startedAt.getTime()) / 1000);
      if (times.createdAt) metrics.jobLatency.observe({ status: ending.status }, Math.max(0, now.getTime() - times.createdAt.getTime()) / 1000);
    },
  };
}

/** `write`'s result, calling it again after each failure (heard by `onFailure`) until `until` aborts. */
async function retrying<T>(write: () => Promise<T>, until: AbortSignal, onFailure: (error: unknown, waitMs: number) => void): Promise<T> {
  for (let waitMs = RETRY_FIRST_MS; ; waitMs = Math.min(2 * waitMs, RETRY_MAX_MS)) {
    try {
      return await write();
    } catch (error) {
      if (until.aborted) throw error;
      onFailure(error, waitMs);
      // Cut short (rejecting) when `until` aborts.
      await sleep(waitMs, undefined, { signal: until }).catch(() => undefined);
      if (until.aborted) throw error;
    }
  }
}
