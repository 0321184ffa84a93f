import { Redis, type RedisOptions as AllRedisOptions } from 'ioredis';

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

/** ioredis's options, less one whose two declarations disagree under exactOptionalPropertyTypes (unused here). */
type RedisOptions = Omit<AllRedisOptions, 'replyMapping'>;

/**
 * Where the services' Redis is: a URL, or the sentinels that know which server is the primary now
 * (Redis Sentinel). With sentinels, the URL gives only credentials, database and TLS.
 */
export interface RedisTarget {
  url: string;
  sentinels?: readonly { host: string; port: number }[] | undefined;
  /** The primary's name as the sentinels know it. */
  sentinelName?: string | undefined;
}

/** The target the common environment (REDIS_URL, REDIS_SENTINELS, REDIS_SENTINEL_NAME) names. */
export function redisTarget(env: { REDIS_URL: string; REDIS_SENTINELS?: readonly { host: string; port: number }[] | undefined; REDIS_SENTINEL_NAME?: string | undefined }): RedisTarget {
  return { url: env.REDIS_URL, sentinels: env.REDIS_SENTINELS, sentinelName: env.REDIS_SENTINEL_NAME };
}

/** The target in an operator's words, for log lines: the URL (without its password), or the primary's name and the sentinels. */
export function describeRedisTarget(target: RedisTarget): string {
  if (target.sentinels !== undefined && target.sentinels.length > 0) {
    return `the Redis primary ${target.sentinelName ?? 'mymaster'} of the sentinels ${target.sentinels.map(({ host, port }) => `${host}:${port}`).join(',')}`;
  }
  const url = new URL(target.url);
  if (url.password !== '') url.password = '***';
  return `Redis at ${url.toString()}`;
}

/** How the role's connection behaves (see the top of this file). */
function roleOptions(role: RedisRole, name: string): RedisOptions {
  if (role !== 'client') return { connectionName: name, maxRetriesPerRequest: null };
  return {
    connectionName: name,
    // A command is rejected as soon as its connection fails (refused, timed out or dropped)
    // rather than sent again on the next one: its request answers 503 at once, and a write
    // that Redis may already have applied is not repeated.
    maxRetriesPerRequest: 0,
    connectTimeout: 2000,
    socketTimeout: CLIENT_SILENCE_LIMIT_MS,
  };
}

/**
 * Options for a connection through Redis Sentinel: the sentinels are asked for the primary on every
 * (re)connection; after a failover the sentinels drop the old primary's clients, and the
 * reconnection finds the new one. The failover detector hears the sentinels' +switch-master and
 * reconnects at once, and a write refused by a server that has just become a replica (READONLY)
 * reconnects too, so that it reaches the new primary.
 */
function sentinelOptions(target: RedisTarget): RedisOptions {
  const url = new URL(target.url);
  const db = Number(url.pathname.slice(1) || '0');
  return {
    sentinels: (target.sentinels ?? []).map(({ host, port }) => ({ host, port })),
    name: target.sentinelName ?? 'mymaster',
    role: 'master',
    failoverDetector: true,
    reconnectOnError: (error) => error.message.startsWith('READONLY'),
    ...(url.username !== '' && { username: decodeURIComponent(url.username) }),
    ...(url.password !== '' && { password: decodeURIComponent(url.password) }),
    ...(Number.isSafeInteger(db) && { db }),
    ...(url.protocol === 'rediss:' && { tls: {} }),
  };
}

/**
 * A connection for `role` to `target` (a URL, or sentinels: RedisTarget). Connection errors go to
 * `onError` (log them); without a listener ioredis would report every reconnection attempt as an
 * unhandled error.
 */
export function connectRedis(target: string | RedisTarget, role: RedisRole, name: string, onError: (error: Error) => void = () => undefined): Redis {
  const where: RedisTarget = typeof target === 'string' ? { url: target } : target;
  const redis =
    where.sentinels !== undefined && where.sentinels.length > 0
      ? new Redis({ ...sentinelOptions(where), ...roleOptions(role, name) })
      : new Redis(where.url, roleOptions(role, name));
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
