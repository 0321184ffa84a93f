import { Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { QUEUE_NAME, type QueuedJobData } from '../../src/index.ts';

// A BullMQ worker driven by hand: it takes jobs and hands them back as ours do (BullMQ's getNextJob
// and moveToWait), one call at a time, so that a test can hold a job at the moment it wants to look
// at it. It renews no lock and writes no record: a test writes what ours would (JobRecords.start).

/** A job it holds: BullMQ lists it as active, under the taker's lock. */
export interface TakenJob {
  readonly id: string;
  /** Back to BullMQ's wait list, where workers take from next (as on SIGTERM); the lock goes. */
  handBack(): Promise<void>;
}

export class HandDrivenWorker {
  private readonly worker: Worker<QueuedJobData>;

  /** `connection` must retry for ever (connectRedis 'worker'), as BullMQ requires. */
  constructor(connection: Redis, prefix: string, options: { lockDuration?: number } = {}) {
    this.worker = new Worker<QueuedJobData>(QUEUE_NAME, null, { connection, prefix, autorun: false, ...options });
  }

  /** Takes the next waiting job under `token`'s lock; rejects when none is waiting. */
  async take(token: string): Promise<TakenJob> {
    const job = (await this.worker.getNextJob(token, { block: false })) as Job<QueuedJobData> | undefined;
    if (!job?.id) throw new Error('no job waiting');
    return { id: job.id, handBack: () => job.moveToWait(token).then(() => undefined) };
  }

  /** BullMQ's keys that JobRecords.requeue reads for job `id`: its lock, and the wait list. */
  queueKeysOf(id: string): { lock: string; wait: string } {
    return { lock: `${this.worker.toKey(id)}:lock`, wait: this.worker.keys.wait as string };
  }

  /** Stops it; what it holds stays active until its lock lapses, as when a worker dies. */
  async close(): Promise<void> {
    await this.worker.close(true);
  }
}
