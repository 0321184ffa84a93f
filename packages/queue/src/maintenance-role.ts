import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Keys } from './keys.ts';
import { answerWithin } from './redis.ts';
import { RedisLock } from './redis-lock.ts';

// The maintenance role (expiry sweeps): many workers share one Redis, and
// exactly one of them should sweep at a time. Every worker competes for one
// lock (RedisLock, keys.maintenanceLock); the holder renews it every third of
// its expiry and runs the task on its interval. A holder that dies (SIGKILL,
// power, network) stops renewing, and another worker takes the role once the
// lock has expired: the lock's expiry bounds how long maintenance pauses.
//
// Two holders never run the task at once: a task asks stillHeld() before each
// step it takes (a deletion), which extends the lock only if it is still this
// owner's; once the lock lapsed (this process was paused or cut off from Redis
// longer than the expiry) it answers false and the task stops, before the
// next holder can have started. What remains is one step in flight across a
// pause longer than the whole expiry, which expiry sweeps tolerate (deleting
// an expired job twice is harmless).

export interface MaintenanceRoleOptions {
  /** A connection that retries forever (connectRedis 'worker'): the role survives Redis restarts. */
  redis: Redis;
  keys: Keys;
  /** Who competes (a worker id); made unique per process before it goes into the lock. */
  name: string;
  /** The lock's expiry: how long maintenance pauses at most after its holder dies. */
  lockMs: number;
  /** How often the holder runs `task`. */
  intervalMs: number;
  /** The maintenance; calls stillHeld() before each step and stops when it answers false. */
  task: (stillHeld: () => Promise<boolean>) => Promise<void>;
  /** Told when this process takes or loses the role (for the log). */
  onChange?: (held: boolean) => void;
  /** Told when Redis did not answer a lock command (the role counts as lost meanwhile). */
  onError?: (error: unknown) => void;
}

export class MaintenanceRole {
  readonly lock: RedisLock;
  private readonly options: MaintenanceRoleOptions;
  private timer: NodeJS.Timeout | undefined;
  private heldNow = false;
  private nextRunAt = 0;
  private ticking: Promise<void> | null = null;
  private running: Promise<void> | null = null;
  private stopping = false;

  constructor(options: MaintenanceRoleOptions) {
    this.options = options;
    this.lock = new RedisLock(options.redis, options.keys.maintenanceLock, `${options.name}:${randomBytes(6).toString('hex')}`, options.lockMs);
  }

  /** Whether this process held the role at its last look. */
  get held(): boolean {
    return this.heldNow;
  }

  /** Competes now and every third of the lock's expiry, so that the holder renews well before it lapses. */
  start(): void {
    this.timer ??= setInterval(() => void this.tick(), Math.max(1, Math.floor(this.options.lockMs / 3)));
    void this.tick();
  }

  /** Stops competing, waits for a task in flight, and frees the lock so another takes the role at once. */
  async stop(): Promise<void> {
    // A task in flight stops at its next stillHeld(): shutdown waits for one step, not a whole sweep.
    this.stopping = true;
    clearInterval(this.timer);
    this.timer = undefined;
    await this.ticking;
    await this.running;
    if (!this.heldNow) return;
    this.setHeld(false);
    await this.lock.release().catch((error: unknown) => this.options.onError?.(error));
  }

  /** One round: renew (or take) the lock, then run the task if this process holds it and it is due. */
  tick(): Promise<void> {
    this.ticking ??= this.compete().finally(() => {
      this.ticking = null;
    });
    return this.ticking;
  }

  private async compete(): Promise<void> {
    this.setHeld(await this.ask(() => (this.heldNow ? this.lock.renew() : this.lock.acquire())));
    if (!this.heldNow || this.running || Date.now() < this.nextRunAt || this.timer === undefined) return;
    this.nextRunAt = Date.now() + this.options.intervalMs;
    // Not awaited: renewals go on while a long task runs.
    this.running = this.options
      .task(() => this.stillHeld())
      .catch((error: unknown) => this.options.onError?.(error))
      .finally(() => {
        this.running = null;
      });
  }

  /** Extends the lock if this process still holds it; false (and the role lost) otherwise. */
  private async stillHeld(): Promise<boolean> {
    if (!this.heldNow || this.stopping) return false;
    this.setHeld(await this.ask(() => this.lock.renew()));
    return this.heldNow;
  }

  /**
   * A lock command's answer; false when Redis did not give one within a third of the expiry (holding
   * cannot be confirmed, and the connection retries forever while Redis is away).
   */
  private async ask(command: () => Promise<boolean>): Promise<boolean> {
    try {
      return await answerWithin(command(), Math.max(1, Math.floor(this.options.lockMs / 3)));
    } catch (error) {
      this.options.onError?.(error);
      return false;
    }
  }

  private setHeld(held: boolean): void {
    if (held === this.heldNow) return;
    this.heldNow = held;
    this.options.onChange?.(held);
  }
}
