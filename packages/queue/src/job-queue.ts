import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { QUEUE_NAME, type Keys } from './keys.ts';

// The BullMQ queue as the API sees it: put a job id in, ask where it stands,
// count what waits. BullMQ carries only the id; everything else is in the
// job's record (job-records.ts).

export interface QueuedJobData {
  id: string;
}

export interface QueueDepth {
  waiting: number;
  active: number;
}

export class JobQueue {
  readonly queue: Queue<QueuedJobData>;
  private readonly redis: Redis;
  private readonly waitKey: string;
  private readonly activeKey: string;

  /** `onError` hears the queue's connection errors (BullMQ re-emits them; unheard, they would throw). */
  constructor(connection: Redis, keys: Keys, onError: (error: Error) => void = () => undefined) {
    this.queue = new Queue<QueuedJobData>(QUEUE_NAME, {
      connection,
      prefix: keys.prefix,
      defaultJobOptions: {
        // The record keeps the outcome; BullMQ's copy is only the delivery.
        removeOnComplete: true,
        removeOnFail: true,
      },
    });
    this.queue.on('error', onError);
    this.redis = connection;
    this.waitKey = `${keys.prefix}:${QUEUE_NAME}:wait`;
    this.activeKey = `${keys.prefix}:${QUEUE_NAME}:active`;
  }

  async add(id: string): Promise<void> {
    await this.queue.add('generate', { id }, { jobId: id });
  }

  /** Removes a job that no worker has taken yet; false when it is running or gone. */
  async removeWaiting(id: string): Promise<boolean> {
    const job = await this.queue.getJob(id);
    if (!job) return false;
    const state = await job.getState();
    if (state !== 'waiting' && state !== 'prioritized' && state !== 'delayed') return false;
    try {
      await job.remove();
      return true;
    } catch {
      return false; // a worker locked it in the meantime
    }
  }

  /**
   * Where a waiting job stands (1 = next) and the ids of up to `limit` jobs ahead of it, nearest
   * first; null when it is not waiting. BullMQ pushes new jobs on the left of its wait list and
   * workers take from the right, so this is one LPOS and one LRANGE, whatever the queue's length.
   */
  async standing(id: string, limit: number): Promise<{ position: number; ahead: string[] } | null> {
    // One transaction: a worker taking a job between the two reads would skew the position.
    const replies = await this.redis.multi().lpos(this.waitKey, id).llen(this.waitKey).exec();
    const index = replies?.[0]?.[1] as number | null | undefined;
    const length = replies?.[1]?.[1] as number | undefined;
    if (index === null || index === undefined || length === undefined) return null;
    const ahead = limit > 0 ? await this.redis.lrange(this.waitKey, index + 1, index + limit) : [];
    return { position: length - index, ahead };
  }

  /** Ids of the jobs workers are running. */
  async activeIds(): Promise<string[]> {
    return this.redis.lrange(this.activeKey, 0, -1);
  }

  async depth(): Promise<QueueDepth> {
    const counts = await this.queue.getJobCounts('waiting', 'prioritized', 'delayed', 'active');
    return {
      waiting: (counts['waiting'] ?? 0) + (counts['prioritized'] ?? 0) + (counts['delayed'] ?? 0),
      active: counts['active'] ?? 0,
    };
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}
