export { keys, QUEUE_NAME, type Keys } from './keys.ts';
export { connectRedis, pingRedis, type RedisRole } from './redis.ts';
export { JobRecords, type JobRecord, type NewJob } from './job-records.ts';
export { isEventId, JobEventHub, JobEvents, type StoredEvent } from './job-events.ts';
export { publishCancel, subscribeCancels } from './cancel.ts';
export { clearHeartbeat, liveWorkers, sendHeartbeat, WorkerHeartbeat } from './workers.ts';
export { JobQueue, type QueueDepth, type QueuedJobData } from './job-queue.ts';
