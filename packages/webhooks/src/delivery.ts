import { isFinished, WebhookEvent, type WebhookDelivery } from '@pixelflow/schemas';
import { WEBHOOK_QUEUE_NAME, type JobRecord, type JobRecords, type Keys } from '@pixelflow/queue';
import { Queue, Worker, type Job as BullJob } from 'bullmq';
import type { Redis } from 'ioredis';
import { postWebhook } from './post.ts';
import { retryDelayMs, type RetrySchedule } from './schedule.ts';
import { signedHeaders } from './signing.ts';

// Delivery of the webhook events of ended jobs, at least once. A job's ending puts it in the
// outbox in the same Lua script that writes the ending (job-records.ts), so no ending is written
// without its delivery owed. Here the outbox is handed to a BullMQ queue: the event's body is
// fixed once (every retry sends the same bytes under the same webhook-id), the queue job's id is
// that webhook-id (a second hand-over after a crash adds nothing), and only then does the job
// leave the outbox. BullMQ then gives each delivery to one worker, retries it on the schedule and
// hands a delivery whose process died to another (its stalled check).

/** While Redis is away every poll and BullMQ call fails: one log line a minute says so. */
const ERROR_LOG_INTERVAL_MS = 60_000;

/** How long an attempt of a process that died holds its delivery: at most twice this before another process tries it. */
const LOCK_MS = 10_000;

export interface WebhookSettings extends RetrySchedule {
  allowPrivate: boolean;
  timeoutMs: number;
  /** How often the outbox is read: the most an event waits before its first attempt. */
  pollMs: number;
  /** Deliveries attempted at once by one process. */
  concurrency: number;
}

/** The `whsec_` secret that signs the deliveries of jobs owned by `owner` ('' with AUTH off); null when there is none. */
export type SecretFor = (owner: string) => Promise<string | null>;

/** The job's public view, exactly as GET /jobs/{id} answers it. */
export type ViewOf = (record: JobRecord) => unknown;

export interface WebhookLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

interface DeliveryData {
  jobId: string;
  event: WebhookEvent;
  url: string;
  owner: string;
  /** The exact body every attempt sends. */
  body: string;
}

/** The webhook-id of a job's event: the same on every attempt, and BullMQ's id of the delivery. */
export function webhookIdOf(jobId: string, event: WebhookEvent): string {
  return `msg_${jobId}_${event.slice('job.'.length)}`;
}

function eventOf(record: JobRecord): WebhookEvent | null {
  return isFinished(record.status) ? WebhookEvent.parse(`job.${record.status}`) : null;
}

export interface WebhookDeliveryOptions {
  /** BullMQ's connection (retries forever: maxRetriesPerRequest null). */
  connection: Redis;
  keys: Keys;
  records: JobRecords;
  settings: WebhookSettings;
  secretFor: SecretFor;
  viewOf: ViewOf;
  log: WebhookLog;
}

export class WebhookDeliveries {
  private readonly options: WebhookDeliveryOptions;
  private readonly queue: Queue<DeliveryData>;
  private worker: Worker<DeliveryData> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private dispatching: Promise<void> | null = null;
  private lastErrorLogAt = -Infinity;

  constructor(options: WebhookDeliveryOptions) {
    this.options = options;
    this.queue = new Queue<DeliveryData>(WEBHOOK_QUEUE_NAME, { connection: options.connection, prefix: options.keys.prefix });
    this.queue.on('error', (error) => this.logError(error, 'webhook queue error'));
  }

  /** Starts reading the outbox and delivering. */
  start(): void {
    const { connection, keys, settings } = this.options;
    this.worker = new Worker<DeliveryData>(WEBHOOK_QUEUE_NAME, (job) => this.attempt(job), {
      connection,
      prefix: keys.prefix,
      concurrency: settings.concurrency,
      // A live process renews its locks (every half lock), so an attempt may outlast the lock; a
      // dead one's attempt is handed to another process within two locks. A stall means a process
      // died, not that the receiver failed: it never uses up the delivery.
      lockDuration: LOCK_MS,
      stalledInterval: LOCK_MS,
      maxStalledCount: 1000,
      settings: { backoffStrategy: (failures: number) => retryDelayMs(failures, settings) },
    });
    this.worker.on('error', (error) => this.logError(error, 'webhook worker error'));
    this.timer = setInterval(() => void this.dispatch(), settings.pollMs);
    void this.dispatch();
  }

  /** Hands every job in the outbox to the webhook queue (a pass at a time; a pass running is awaited). */
  dispatch(): Promise<void> {
    this.dispatching ??= this.dispatchOutbox()
      .catch((error: unknown) => this.logError(error, 'could not read the webhook outbox; trying again'))
      .finally(() => {
        this.dispatching = null;
      });
    return this.dispatching;
  }

  private async dispatchOutbox(): Promise<void> {
    const { records } = this.options;
    for (;;) {
      const ids = await records.webhookOutbox(100);
      if (ids.length === 0) return;
      for (const id of ids) {
        await this.handOver(id);
        await records.leaveWebhookOutbox(id);
      }
    }
  }

  /** Queues the delivery of the event that ended job `id`, if its webhook asked for it. */
  private async handOver(id: string): Promise<void> {
    const { records, settings, viewOf, log } = this.options;
    const record = await records.get(id);
    const event = record === null ? null : eventOf(record);
    // Gone (expired and swept before any process read the outbox) or not wanting this event.
    if (record?.webhook == null || event === null || !record.webhook.events.includes(event)) return;
    const webhookId = webhookIdOf(id, event);
    const body = JSON.stringify({ type: event, timestamp: (record.finishedAt ?? new Date()).toISOString(), data: viewOf(record) });
    await this.queue.add(
      'deliver',
      { jobId: id, event, url: record.webhook.url, owner: record.owner, body },
      {
        jobId: webhookId,
        attempts: settings.attempts,
        backoff: { type: 'webhook' },
        // Kept a while for operators; the job record shows the outcome meanwhile.
        removeOnComplete: { age: 24 * 3600 },
        removeOnFail: { age: 7 * 24 * 3600 },
      },
    );
    // Only where no attempt wrote its state first.
    await records.recordDelivery(id, { event, webhook_id: webhookId, status: 'pending', attempts: 0, last_status_code: null, last_error: null, delivered_at: null }, { ifAbsent: true });
    log.info({ job_id: id, event, webhook_id: webhookId }, 'webhook delivery queued');
  }

  private logError(error: unknown, message: string): void {
    if (Date.now() - this.lastErrorLogAt < ERROR_LOG_INTERVAL_MS) return;
    this.lastErrorLogAt = Date.now();
    this.options.log.error({ err: error }, message);
  }

  /** One attempt; throws (so BullMQ retries on the schedule) when it failed. */
  private async attempt(job: BullJob<DeliveryData>): Promise<void> {
    const { records, settings, secretFor, log } = this.options;
    const { jobId, event, url, owner, body } = job.data;
    const webhookId = webhookIdOf(jobId, event);
    const attempts = job.attemptsMade + 1;
    const secret = await secretFor(owner);
    const result =
      secret === null
        ? { ok: false, statusCode: null, error: 'no webhook secret is configured for the job owner' }
        : await postWebhook(url, body, { ...signedHeaders(secret, webhookId, new Date(), body) }, settings);
    const lastAttempt = attempts >= (job.opts.attempts ?? 1);
    const delivery: WebhookDelivery = {
      event,
      webhook_id: webhookId,
      status: result.ok ? 'delivered' : lastAttempt ? 'failed' : 'pending',
      attempts,
      last_status_code: result.statusCode,
      last_error: result.error,
      delivered_at: result.ok ? new Date().toISOString() : null,
    };
    await records.recordDelivery(jobId, delivery);
    if (result.ok) return log.info({ job_id: jobId, event, webhook_id: webhookId, attempts, status_code: result.statusCode }, 'webhook delivered');
    log.warn({ job_id: jobId, event, webhook_id: webhookId, attempts, status_code: result.statusCode, error: result.error, gives_up: lastAttempt }, 'webhook delivery failed');
    throw new Error(result.error ?? 'webhook delivery failed');
  }

  async close(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.dispatching;
    await this.worker?.close();
    await this.queue.close();
  }

  /**
   * Stops delivering without waiting for Redis, for a shutdown while it is away: BullMQ's forced close
   * drops the delivery worker's blocking connection at once, which would otherwise reconnect for good
   * and keep the process alive. An attempt in flight is abandoned; its lock lapses and another process
   * makes it again under the same webhook-id.
   */
  async disconnect(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.worker?.close(true);
  }

}
