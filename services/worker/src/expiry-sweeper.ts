import type { Redis } from 'ioredis';
import { MaintenanceRole, type JobRecords, type Keys } from '@pixelflow/queue';
import type { ResultStore } from '@pixelflow/results';
import type { Logger } from 'pino';

// Deletes jobs whose retention ended: their files first, then record and
// events (Redis expires those by itself too; the files have no TTL). Many
// workers share a Redis; one sweeps at a time, the holder of the maintenance
// role (MaintenanceRole: a Redis lock with an expiry), so that N workers do
// not read and delete the same jobs N times over.

const SWEEP_INTERVAL_MS = 60_000;

export interface ExpirySweeperOptions {
  /** A connection that retries forever: the role survives a Redis restart. */
  redis: Redis;
  keys: Keys;
  workerId: string;
  records: JobRecords;
  /** Only deleteJob: the sweeper deletes, it never reads or writes images. */
  store: Pick<ResultStore, 'deleteJob'>;
  log: Logger;
  /** The maintenance lock's expiry (MAINTENANCE_LOCK_MS): how long sweeps pause at most after their holder dies. */
  lockMs: number;
  intervalMs?: number;
}

export class ExpirySweeper {
  readonly role: MaintenanceRole;
  private readonly records: JobRecords;
  private readonly store: Pick<ResultStore, 'deleteJob'>;
  private readonly log: Logger;

  constructor(options: ExpirySweeperOptions) {
    this.records = options.records;
    this.store = options.store;
    this.log = options.log;
    this.role = new MaintenanceRole({
      redis: options.redis,
      keys: options.keys,
      name: options.workerId,
      lockMs: options.lockMs,
      intervalMs: options.intervalMs ?? SWEEP_INTERVAL_MS,
      task: (stillHeld) => this.sweep(stillHeld),
      onChange: (held) => this.log.info({ lock: options.keys.maintenanceLock }, held ? 'maintenance role taken: this worker sweeps expired jobs' : 'maintenance role given up'),
      onError: (error) => this.log.warn({ err: error }, 'maintenance lock: Redis did not answer'),
    });
  }

  start(): void {
    this.role.start();
  }

  /** Stops sweeping and hands the role to another worker at once (frees the lock). */
  async stop(): Promise<void> {
    await this.role.stop();
  }

  /** Deletes every job expired by `now`, one at a time, while `stillHeld` says this worker holds the role. */
  async sweep(stillHeld: () => Promise<boolean>, now = new Date()): Promise<void> {
    try {
      for (const jobId of await this.records.expired(now)) {
        if (!(await stillHeld())) return;
        await this.store.deleteJob(jobId);
        await this.records.delete(jobId);
        this.log.debug({ job_id: jobId }, 'expired job deleted');
      }
    } catch (error) {
      this.log.warn({ err: error }, 'sweeping expired jobs failed');
    }
  }
}
