import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { execReplies } from './job-events.ts';
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

const LISTS = ['wait', 'paused', 'prioritized', 'delayed', 'active'] as const;

export class JobQueue {
  readonly queue: Queue<QueuedJobData>;
  private readonly reads: Redis;
  /** BullMQ's own names for the lists and sets read here. */
  private readonly lists: Record<(typeof LISTS)[number], string>;

  /**
   * `connection` is BullMQ's (it retries forever); `reads`, for depth, standing and activeIds, should
   * be a fail-fast client connection (connectRedis 'client'), so that requests asking where jobs
   * stand fail at once while Redis is away instead of waiting for it. `onError` hears the queue's
   * connection errors (BullMQ re-emits them; unheard, they would throw).
   */
  constructor(connection: Redis, keys: Keys, onError: (error: Error) => void = () => undefined, reads: Redis = connection) {
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
    this.reads = reads;
    const named = this.queue.keys;
    this.lists = Object.fromEntries(
      LISTS.map((name) => {
        const key = named[name];
        if (key === undefined) throw new Error(`BullMQ has no '${name}' key`);
        return [name, key];
      }),
    ) as JobQueue['lists'];
  }

  async add(id: string): Promise<void> {
    await this.queue.add('generate', { id }, { jobId: id });
  }

  /** Removes a job that no worker has taken yet; false when it is running or gone. */
  async removeWaiting(id: string): Promise<boolean> {
    // remove() answers 1 for a job that does not exist too, and takes an active one whose lock expired.
    const state = await this.queue.getJobState(id);
    if (state !== 'waiting' && state !== 'prioritized' && state !== 'delayed') return false;
    // A worker that takes it meanwhile holds its lock, and remove() refuses (0) a locked job.
    return (await this.queue.remove(id)) === 1;
  }

  /**
   * Where a waiting job stands (1 = next), the ids of up to `limit` jobs ahead of it (nearest
   * first) and of up to `limit` behind it (the next to start after it first); null when it is not
   * waiting. BullMQ pushes new jobs on the left of its wait list and workers take from the right, so
   * this is one LPOS and two LRANGEs, whatever the queue's length.
   */
  async standing(id: string, limit: number): Promise<{ position: number; ahead: string[]; behind: string[] } | null> {
    // One transaction: a worker taking a job between the two reads would skew the position.
    const { wait } = this.lists;
    const replies = await this.reads.multi().lpos(wait, id).llen(wait).exec();
    const index = replies?.[0]?.[1] as number | null | undefined;
    const length = replies?.[1]?.[1] as number | undefined;
    if (index === null || index === undefined || length === undefined) return null;
    const position = length - index;
    if (limit <= 0) return { position, ahead: [], behind: [] };
    const reads = this.reads.multi().lrange(wait, index + 1, index + limit);
    // (At index 0 nothing is behind it; LRANGE 0 -1 would be the whole list.)
    if (index > 0) reads.lrange(wait, Math.max(0, index - limit), index - 1);
    const [ahead, behind = []] = execReplies(await reads.exec()) as string[][];
    return { position, ahead: ahead ?? [], behind: behind.reverse() };
  }

  /** The ids of up to `limit` waiting jobs, the next to start first. */
  async next(limit: number): Promise<string[]> {
    if (limit <= 0) return [];
    return (await this.reads.lrange(this.lists.wait, -limit, -1)).reverse();
  }

  /** Ids of the jobs workers are running. */
  async activeIds(): Promise<string[]> {
    return this.reads.lrange(this.lists.active, 0, -1);
  }

  /** Jobs waiting (including delayed and prioritized ones) and running; what getJobCounts counts, on `reads`. */
  async depth(): Promise<QueueDepth> {
    const keys = this.lists;
    const replies = execReplies(
      await this.reads.multi().llen(keys.wait).llen(keys.paused).zcard(keys.prioritized).zcard(keys.delayed).llen(keys.active).exec(),
    ) as number[];
    const [wait = 0, paused = 0, prioritized = 0, delayed = 0, active = 0] = replies;
    return { waiting: wait + paused + prioritized + delayed, active };
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}
