import type { Redis } from 'ioredis';
import type { Keys } from './keys.ts';

// BullMQ's cancelJob reaches only a job running in the same process; the API
// and the worker are different processes (often different machines). The API
// marks the record (JobRecords.requestCancel) and publishes the id here; the
// worker running that job aborts its sampler. The record's flag covers the
// race where the worker starts the job just after the message went out.

export async function publishCancel(redis: Redis, keys: Keys, jobId: string): Promise<void> {
  await redis.publish(keys.cancelChannel, jobId);
}

/** Calls `onCancel(jobId)` for every cancel request; resolves once subscribed. */
export async function subscribeCancels(subscriber: Redis, keys: Keys, onCancel: (jobId: string) => void): Promise<void> {
  subscriber.on('message', (channel: string, jobId: string) => {
    if (channel === keys.cancelChannel) onCancel(jobId);
  });
  await subscriber.subscribe(keys.cancelChannel);
}
