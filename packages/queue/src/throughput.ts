import type { Redis } from 'ioredis';
import type { Throughput } from './eta.ts';
import type { Keys } from './keys.ts';

// The throughput workers measure and ETAs use (eta.ts): seconds of worker time
// per (image x step), amortised over the jobs a worker runs at once, and how
// many that is (MAX_CONCURRENT_JOBS), which decides when a waiting job gets a
// slot. One hash, the last measurement wins; workers write it, the job service
// reads it.

const SECONDS_FIELD = 'seconds_per_image_step';
const CONCURRENCY_FIELD = 'concurrency';

export class ThroughputRecord {
  private readonly redis: Redis;
  private readonly keys: Keys;

  constructor(redis: Redis, keys: Keys) {
    this.redis = redis;
    this.keys = keys;
  }

  async record(throughput: Throughput, at: Date = new Date()): Promise<void> {
    await this.redis.hset(this.keys.throughput, SECONDS_FIELD, throughput.secondsPerImageStep, CONCURRENCY_FIELD, throughput.concurrency, 'measured_at', at.toISOString());
  }

  /** The last measurement; null before any worker recorded one. */
  async read(): Promise<Throughput | null> {
    const [seconds, concurrency] = await this.redis.hmget(this.keys.throughput, SECONDS_FIELD, CONCURRENCY_FIELD);
    const secondsPerImageStep = Number(seconds ?? Number.NaN);
    if (!Number.isFinite(secondsPerImageStep) || secondsPerImageStep < 0) return null;
    // A rate recorded without its concurrency (by a worker from before it was recorded) counts as one
    // job at a time: the queue in order, the estimate those workers' API gave.
    const slots = Number(concurrency ?? 1);
    return { secondsPerImageStep, concurrency: Number.isSafeInteger(slots) && slots >= 1 ? slots : 1 };
  }
}
