import type { Redis } from 'ioredis';
import type { Keys } from './keys.ts';

// The throughput workers measure and ETAs use (eta.ts): seconds of worker time
// per (image x step), amortised over the jobs a worker runs at once. One hash,
// the last measurement wins; workers write it, the job service reads it.

const SECONDS_FIELD = 'seconds_per_image_step';

export class ThroughputRecord {
  private readonly redis: Redis;
  private readonly keys: Keys;

  constructor(redis: Redis, keys: Keys) {
    this.redis = redis;
    this.keys = keys;
  }

  async record(secondsPerImageStep: number, at: Date = new Date()): Promise<void> {
    await this.redis.hset(this.keys.throughput, SECONDS_FIELD, secondsPerImageStep, 'measured_at', at.toISOString());
  }

  /** The last measurement; null before any worker recorded one. */
  async read(): Promise<number | null> {
    const value = Number((await this.redis.hget(this.keys.throughput, SECONDS_FIELD)) ?? Number.NaN);
    return Number.isFinite(value) && value >= 0 ? value : null;
  }
}
