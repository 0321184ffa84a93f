import type { JobRecords } from '@pixelflow/queue';
import type { Logger } from 'pino';
import type { WorkerMetrics } from './metrics.ts';
import type { JobEnding } from './job-outcome.ts';

// The one place where this worker ends a job: the record's final status and
// event (one Lua script, so a job ends once whoever tries first), and the
// metrics of that ending, counted only by the call that actually ended it.

export interface JobEnder {
  /**
   * Ends job `id` as `ending` unless it already ended. `startedAt` is when this worker started it
   * (for pixelflow_job_run_seconds), absent for a job that failed before it could be run.
   */
  end(id: string, ending: JobEnding, startedAt?: Date): Promise<void>;
}

export function jobEnder(records: JobRecords, metrics: WorkerMetrics, retentionSeconds: number, log: Logger): JobEnder {
  return {
    async end(id, ending, startedAt) {
      const now = new Date();
      const final = await records.finish(id, ending, now, retentionSeconds);
      if (final !== ending.status) {
        log.debug({ job_id: id, wanted: ending.status, status: final }, 'job had already ended');
        return;
      }
      metrics.jobsFinished.inc({ status: ending.status });
      if (startedAt) metrics.jobRun.observe((now.getTime() - startedAt.getTime()) / 1000);
    },
  };
}
