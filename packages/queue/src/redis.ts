import { Redis } from 'ioredis';

// Connections by role. BullMQ workers and blocking readers must retry forever
// (maxRetriesPerRequest: null, BullMQ insists); request-serving clients fail
// fast so that an API without Redis answers 503 instead of hanging.

export type RedisRole = 'client' | 'subscriber' | 'worker';

/**
 * A connection for `role`. Connection errors go to `onError` (log them); without a listener
 * ioredis would report every reconnection attempt as an unhandled error.
 */
export function connectRedis(url: string, role: RedisRole, name: string, onError: (error: Error) => void = () => undefined): Redis {
  const redis =
    role === 'client'
      ? new Redis(url, { connectionName: name, maxRetriesPerRequest: 1, connectTimeout: 2000 })
      : new Redis(url, { connectionName: name, maxRetriesPerRequest: null });
  let lastReported = 0;
  redis.on('error', (error: Error) => {
    // Reconnection attempts fail every few hundred ms while Redis is away: report one a minute.
    const now = Date.now();
    if (now - lastReported < 60_000) return;
    lastReported = now;
    onError(error);
  });
  return redis;
}

/**
 * `answer`, or a rejection naming the wait once `timeoutMs` has passed: a command on a connection
 * that retries forever (or on a Redis that stopped answering) would otherwise wait for good.
 */
export async function answerWithin<T>(answer: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      answer,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer from Redis within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves once Redis answers PING, or rejects after `timeoutMs` with the reason. */
export async function pingRedis(redis: Redis, timeoutMs: number): Promise<void> {
  await answerWithin(redis.ping(), timeoutMs);
}
