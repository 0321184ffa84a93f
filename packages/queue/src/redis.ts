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

/** Resolves once Redis answers PING, or rejects after `timeoutMs` with the reason. */
export async function pingRedis(redis: Redis, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      redis.ping(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer from Redis within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
