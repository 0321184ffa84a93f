import type { JobProgress } from '@pixelflow/schemas';

// A job's progress reports, sent in bursts: the first at once, then whatever
// piled up at most every `intervalMs`. Every report still becomes its own
// event (JobRecords.reportProgresses); what the burst saves is the Redis round
// trip, the wake-up of every API process following the job and the network
// write to every client, per model call. On a small machine those cost as
// much CPU as the model calls of a small model, which they run beside.

export class ProgressReporter {
  private pending: JobProgress[] = [];
  private timer: NodeJS.Timeout | undefined;
  private lastSent = Number.NEGATIVE_INFINITY;
  private readonly send: (reports: JobProgress[]) => void;
  private readonly intervalMs: number;
  private readonly now: () => number;

  /** `send` queues one write of the reports given (in order with the job's other writes). */
  constructor(send: (reports: JobProgress[]) => void, intervalMs: number, now: () => number = () => performance.now()) {
    this.send = send;
    this.intervalMs = intervalMs;
    this.now = now;
  }

  report(progress: JobProgress): void {
    this.pending.push(progress);
    if (this.timer) return;
    const wait = this.lastSent + this.intervalMs - this.now();
    if (wait <= 0) this.flush();
    else this.timer = setTimeout(() => this.flush(), wait);
  }

  /** Sends what is pending now: when the job stops. */
  flush(): void {
    const reports = this.take();
    if (reports.length > 0) this.send(reports);
  }

  /**
   * Hands over what is pending instead of sending it, for a write that goes out now anyway (a stage
   * end's, which then carries them ahead of its own event); counts as a burst sent.
   */
  take(): JobProgress[] {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.length === 0) return [];
    const reports = this.pending;
    this.pending = [];
    this.lastSent = this.now();
    return reports;
  }
}
