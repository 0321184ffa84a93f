import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { answerWithin, clearHeartbeat, sendHeartbeat, type Keys, type WorkerHeartbeat } from '@pixelflow/queue';
import type { ModelManifest } from '@pixelflow/schemas';
import type { Logger } from 'pino';

// The worker's heartbeat: a short-lived Redis key saying which model it
// serves, in what state, on which GPU, with how many slots and how fast it
// has been, renewed every interval. The API's /readyz, /models and ETAs read
// it; a worker that dies simply stops renewing it.

const CLEAR_TIMEOUT_MS = 2000;

export class Heartbeat {
  state: WorkerHeartbeat['state'] = 'loading';
  /** The execution provider serving: the configured one until the model says which it got. */
  provider: string;
  /** Its last measured seconds per (image x step), for the ETAs of the pool of workers (eta.ts); null before its first job. */
  secondsPerImageStep: number | null = null;
  private timer: NodeJS.Timeout | undefined;
  private readonly startedAt = new Date().toISOString();
  private readonly redis: Redis;
  private readonly keys: Keys;
  private readonly workerId: string;
  private readonly manifest: ModelManifest;
  private readonly intervalMs: number;
  private readonly log: Logger;
  private readonly concurrency: number;
  private readonly deviceId: number | undefined;

  constructor(options: {
    redis: Redis;
    keys: Keys;
    workerId: string;
    manifest: ModelManifest;
    intervalMs: number;
    log: Logger;
    provider: string;
    /** MAX_CONCURRENT_JOBS. */
    concurrency: number;
    /** ORT_DEVICE_ID where the worker runs on a GPU; undefined on the CPU. */
    deviceId?: number | undefined;
  }) {
    this.concurrency = options.concurrency;
    this.deviceId = options.deviceId;
    this.redis = options.redis;
    this.keys = options.keys;
    this.workerId = options.workerId;
    this.manifest = options.manifest;
    this.intervalMs = options.intervalMs;
    this.log = options.log;
    this.provider = options.provider;
  }

  /** Sends one now and every interval from now on. */
  async start(): Promise<void> {
    this.timer ??= setInterval(() => void this.beat(), this.intervalMs);
    await this.beat();
  }

  /**
   * Sends one now (after a state change); a failure is logged, the next beat tries again. Waits at
   * most one interval: the worker's connection retries forever while Redis is away, and neither
   * start-up nor shutdown may hang on a heartbeat.
   */
  async beat(): Promise<void> {
    try {
      // Three intervals: one late beat does not make the worker look gone.
      await answerWithin(sendHeartbeat(this.redis, this.keys, this.message(), (this.intervalMs * 3) / 1000), this.intervalMs);
    } catch (error) {
      this.log.warn({ err: error }, 'heartbeat failed');
    }
  }

  /** Stops beating and removes the key, so the API stops counting this worker at once. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    // Bounded: with Redis away, the command would wait for it forever.
    if (this.redis.status !== 'ready') return;
    await answerWithin(clearHeartbeat(this.redis, this.keys, this.workerId), CLEAR_TIMEOUT_MS).catch(() => undefined);
  }

  private message(): WorkerHeartbeat {
    const m = this.manifest;
    return {
      worker_id: this.workerId,
      state: this.state,
      model: { name: m.name, resolution: m.resolution, stages: m.stages.map((s) => s.resolution), classes: m.classes.names.length, weights_sha256: m.source.weights_sha256 },
      provider: this.provider,
      ...(this.deviceId !== undefined && { device_id: this.deviceId }),
      concurrency: this.concurrency,
      seconds_per_image_step: this.secondsPerImageStep,
      pid: process.pid,
      hostname: hostname(),
      started_at: this.startedAt,
      sent_at: new Date().toISOString(),
    };
  }
}
