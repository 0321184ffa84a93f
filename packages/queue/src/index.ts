export { keys, QUEUE_NAME, WEBHOOK_QUEUE_NAME, type Keys } from './keys.ts';
export { answerWithin, connectRedis, describeRedisTarget, pingRedis, redisTarget, type RedisRole, type RedisTarget } from './redis.ts';
export { JobRecords, JobWebhookTarget, type JobRecord, type NewJob } from './job-records.ts';
export { isEventId, JobEventHub, JobEvents, type JobEventNotifier, type StoredEvent } from './job-events.ts';
export { publishCancel, subscribeCancels } from './cancel.ts';
export { clearHeartbeat, liveWorkers, sendHeartbeat, takesJobs, WorkerHeartbeat } from './workers.ts';
export { JobQueue, type Admission, type OwnerCap, type QueueDepth, type QueuedJobData } from './job-queue.ts';
export {
  etaSeconds,
  jobShape,
  jobWork,
  NO_WORKER_RETRY_AFTER_SECONDS,
  poolThroughput,
  queueAhead,
  queueWaitSeconds,
  remainingShape,
  retryAfterSecondsWhenFull,
  type EtaInputs,
  type JobShape,
  type PoolMember,
  type QueueAhead,
  type QueueNow,
  type Throughput,
} from './eta.ts';
export type { CancelOutcome, JobRequest, JobService, JobSnapshot, Submission } from './job-service.ts';
export { RedisJobService, type RedisJobServiceOptions } from './redis-job-service.ts';
export { ThroughputRecord } from './throughput.ts';
export { RedisLock } from './redis-lock.ts';
export { MaintenanceRole, type MaintenanceRoleOptions } from './maintenance-role.ts';
export {
  canonicalJson,
  claimOrWait,
  IDEMPOTENCY_KEY_PATTERN,
  IDEMPOTENCY_PENDING_MS,
  IDEMPOTENCY_TTL_SECONDS,
  idempotencyKeyOf,
  RedisIdempotencyStore,
  requestFingerprint,
  type Claim,
  type IdempotencyStore,
  type StoredAnswer,
} from './idempotency.ts';
export {
  ApiKeyInfo,
  ApiKeyLimits,
  ApiKeyName,
  ApiKeyNameTaken,
  ApiKeys,
  hashApiKey,
  looksLikeApiKey,
  NewApiKey,
  webhookSecretOf,
  type CreatedApiKey,
} from './api-keys.ts';
