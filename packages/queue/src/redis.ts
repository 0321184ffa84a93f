import { Redis } from 'ioredis';

// Connections by role. BullMQ workers and blocking readers must retry forever
// (maxRetriesPerRequest: null, BullMQ insists) and wait as long as a blocking
// command blocks; request-serving clients fail fast so that an API without
// Redis answers 503 instead of hanging.

export type RedisRole = 'client' | 'subscriber' | 'worker';

/**
 * How long a request-serving connection waits for Redis to say anything while commands are waiting
 * for it. A Redis that is hung, or cut off without the socket closing, never answers and never
 * closes, and its commands would wait for ever. Past this the connection is dropped: what waits on it
 * is rejected (a 503), and it is not ready again until Redis answers a new connection, so requests
 * meanwhile fail at once. Redis answers in well under a millisecond; a Redis silent this long
 * serves no request anyway.
 */
const CLIENT_SILENCE_LIMIT_MS = 500;

/**
 * A connection for `role`. Connection errors go to `onError` (log them); without a listener
 * ioredis would report every reconnection attempt as an unhandled error.
 */
export function connectRedis(url: string, role: RedisRole, name: string, onError: (error: Error) => void = () => undefined): Redis {
  const redis =
    role === 'client'
      ? new Redis(url, {
          connectionName: name,
          // A command is rejected as soon as its connection fails (refused, timed out or dropped)
          // rather than sent again on the next one: its request answers 503 at once, and a write
          // that Redis may already have applied is not repeated.
          maxRetriesPerRequest: 0,
          connectTimeout: 2000,
          socketTimeout: CLIENT_SILENCE_LIMIT_MS,
        })
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
