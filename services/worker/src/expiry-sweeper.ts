import type { JobRecords } from '@pixelflow/queue';
import type { ResultStore } from '@pixelflow/results';
import type { Logger } from 'pino';

// Deletes jobs whose retention ended: their files first, then record and
// events (Redis expires those by itself too; the files have no TTL). Every
// worker sweeps; deleting twice is harmless.

const SWEEP_INTERVAL_MS = 60_000;

export class ExpirySweeper {
  private timer: NodeJS.Timeout | undefined;
  private readonly records: JobRecords;
  private readonly store: ResultStore;
  private readonly log: Logger;

  constructor(records: JobRecords, store: ResultStore, log: Logger) {
    this.records = records;
    this.store = store;
    this.log = log;
  }

  start(): void {
    this.timer ??= setInterval(() => void this.sweep(), SWEEP_INTERVAL_MS);
    void this.sweep();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  async sweep(now = new Date()): Promise<void> {
    try {
      for (const jobId of await this.records.expired(now)) {
        await this.store.deleteJob(jobId);
        await this.records.delete(jobId);
        this.log.debug({ job_id: jobId }, 'expired job deleted');
      }
    } catch (error) {
      this.log.warn({ err: error }, 'sweeping expired jobs failed');
    }
  }
}
