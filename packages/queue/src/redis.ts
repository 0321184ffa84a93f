import { Redis } from 'ioredis';

// Connections by role. BullMQ workers and blocking readers must retry forever
// (maxRetriesPerRequest: null, BullMQ insists); request-serving clients fail
// fast so that an API without Redis answers 503 instead of hanging.

export type RedisRole = 'client' | 'subscriber' | 'worker';

export function connectRedis(url: string, role: RedisRole, name: string): Redis {
  if (role === 'client') return new Redis(url, { connectionName: name, maxRetriesPerRequest: 1, connectTimeout: 2000 });
  return new Redis(url, { connectionName: name, maxRetriesPerRequest: null });
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
