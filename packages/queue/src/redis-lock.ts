import type { Redis } from 'ioredis';

// A lock in one Redis key with an expiry: taken with SET NX PX, so only one
// owner holds it at a time, and it frees itself when its owner dies without
// releasing it. Renewal and release compare the owner first (in Lua, atomic
// on the server), so an owner whose lock lapsed and was taken by another never
// extends or deletes the new owner's lock.

/** PEXPIRE the key only while it still holds ARGV[1]; 1 when extended. */
const EXTEND_IF_OWNER = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;
/** DEL the key only while it still holds ARGV[1]; 1 when deleted. */
const DELETE_IF_OWNER = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

export class RedisLock {
  readonly key: string;
  /** What the key holds while this owner has it: unique per process, so a restarted one is a new owner. */
  readonly owner: string;
  readonly ttlMs: number;
  private readonly redis: Redis;

  constructor(redis: Redis, key: string, owner: string, ttlMs: number) {
    if (!Number.isSafeInteger(ttlMs) || ttlMs < 1) throw new Error(`lock expiry must be a positive integer of ms, not ${ttlMs}`);
    this.redis = redis;
    this.key = key;
    this.owner = owner;
    this.ttlMs = ttlMs;
  }

  /** Takes the lock if nobody holds it; true when this owner now holds it (for ttlMs). */
  async acquire(): Promise<boolean> {
    return (await this.redis.set(this.key, this.owner, 'PX', this.ttlMs, 'NX')) === 'OK';
  }

  /** Extends the lock by ttlMs from now if this owner still holds it; false when it lapsed or another took it. */
  async renew(): Promise<boolean> {
    return Number(await this.redis.eval(EXTEND_IF_OWNER, 1, this.key, this.owner, this.ttlMs)) === 1;
  }

  /** Frees the lock if this owner holds it; false when it did not (any more). */
  async release(): Promise<boolean> {
    return Number(await this.redis.eval(DELETE_IF_OWNER, 1, this.key, this.owner)) === 1;
  }

  /** Who holds it now (an owner string), or null when nobody does. */
  async holder(): Promise<string | null> {
    return this.redis.get(this.key);
  }
}
