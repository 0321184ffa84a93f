// Every Redis key and channel PixelFlow Serve uses, derived from one prefix so
// that several deployments (or test runs) can share a Redis without touching
// each other's data. BullMQ's own keys live under `${prefix}:${QUEUE_NAME}:*`.

export const QUEUE_NAME = 'generate';
/** BullMQ queue of webhook deliveries (keys `${prefix}:${WEBHOOK_QUEUE_NAME}:*`); see @pixelflow/webhooks. */
export const WEBHOOK_QUEUE_NAME = 'webhooks';

export interface Keys {
  readonly prefix: string;
  /** Hash: one job's record (status, parameters, progress, result ...). */
  job(id: string): string;
  /** Stream: one job's events, in order; its entry ids are the SSE event ids. */
  events(id: string): string;
  /** Sorted set: finished job ids by the time (ms) their data expires. */
  readonly expiry: string;
  /** Pub/sub: "a job has new events" (message: the job id). */
  readonly eventsChannel: string;
  /** Pub/sub: "stop this job" (message: the job id). */
  readonly cancelChannel: string;
  /** String with a TTL: one worker's heartbeat (JSON), refreshed while it lives. */
  worker(workerId: string): string;
  /** Pattern matching every worker heartbeat key. */
  readonly workerPattern: string;
  /** Hash: measured sampler throughput, for ETAs. */
  readonly throughput: string;
  /** Sorted set: jobs admitted under QUEUE_CAP that are not in BullMQ's lists yet, by when (ms) their place lapses. */
  readonly admissions: string;
  /**
   * Sorted set: one owner's (API key name's) jobs admitted under its max_active, by when (ms) a place not
   * yet in BullMQ lapses (0 once it is); a member counts while BullMQ holds its job (job-queue.ts).
   */
  ownerPlaces(owner: string): string;
  /** String with a TTL: which process holds the maintenance role (expiry sweeps); see maintenance-lock.ts. */
  readonly maintenanceLock: string;
  /** Hash with a TTL: one Idempotency-Key's fingerprint and first answer, per scope (API key name); see idempotency.ts. */
  idempotency(scope: string, key: string): string;
  /** Hash: one API key's record (name, limits, webhook secret ...), by the SHA-256 of the key (hex); see api-keys.ts. */
  apiKey(keyHash: string): string;
  /** Hash: API key name -> the SHA-256 of its key, so that names are unique and keys can be listed and revoked by name. */
  readonly apiKeyNames: string;
  /**
   * Sorted set: ids of jobs that ended with a webhook whose event is not handed to the webhook queue
   * yet, by when (ms) they ended; written in the same script as the ending (job-records.ts).
   */
  readonly webhookOutbox: string;
}

export function keys(prefix: string): Keys {
  if (!/^[A-Za-z0-9_.-]+$/.test(prefix)) throw new Error(`Redis key prefix must be letters, digits, '_', '.' or '-', not '${prefix}'`);
  return {
    prefix,
    job: (id) => `${prefix}:job:${id}`,
    events: (id) => `${prefix}:job:${id}:events`,
    expiry: `${prefix}:expiry`,
    eventsChannel: `${prefix}:events`,
    cancelChannel: `${prefix}:cancel`,
    worker: (workerId) => `${prefix}:worker:${workerId}`,
    workerPattern: `${prefix}:worker:*`,
    throughput: `${prefix}:throughput`,
    admissions: `${prefix}:admissions`,
    // Encoded like the idempotency scope: no ':' from a name.
    ownerPlaces: (owner) => `${prefix}:owner-places:${encodeURIComponent(owner)}`,
    maintenanceLock: `${prefix}:maintenance:lock`,
    // The scope is URI-encoded, so it holds no ':' and no two (scope, key) pairs share a name.
    idempotency: (scope, key) => `${prefix}:idempotency:${encodeURIComponent(scope)}:${key}`,
    apiKey: (keyHash) => `${prefix}:apikey:${keyHash}`,
    apiKeyNames: `${prefix}:apikeys`,
    webhookOutbox: `${prefix}:webhook-outbox`,
  };
}
