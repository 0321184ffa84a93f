import type { FastifyBaseLogger } from 'fastify';
import type { Redis } from 'ioredis';
import { answerWithin, ApiKeys, connectRedis, describeRedisTarget, JobEventHub, JobQueue, JobRecords, keys as makeKeys, RedisIdempotencyStore, RedisJobService, redisTarget, webhookSecretOf, type Keys } from '@pixelflow/queue';
import { openResultStore } from '@pixelflow/results';
import { WebhookDeliveries, webhookSettings, type SecretFor, type WebhookLog } from '@pixelflow/webhooks';
import type { ApiConfig } from './config.ts';
import type { ApiInfrastructure } from './infrastructure.ts';
import { jobView } from './job-view.ts';

// The API's infrastructure for real: three Redis connections (request reads that
// fail fast, BullMQ's own that retries forever, the events subscriber) and the
// result store (a folder, or an S3 bucket checked at start), and the webhook deliveries: every API
// process reads the webhook outbox and delivers (BullMQ gives each delivery to one of them; the
// work is waiting on receivers, light next to serving requests). Whoever connects it
// owns it and closes it once the app has closed: main.ts, or buildApp when it was
// given none.

/** How long start-up waits for Redis, so the first requests do not meet a connection still opening. */
const REDIS_GRACE_MS = 2000;
/** Errors kept until a log exists (each connection reports at most one a minute). */
const HELD_ERRORS = 10;
/** How long shutdown waits for Redis to answer its goodbyes before it drops the connections. */
export const QUIT_REDIS_MS = 2000;

export interface ConnectedInfrastructure extends ApiInfrastructure {
  /** Sends connection errors to `log` from now on, and those that came before it. */
  reportErrorsTo(log: FastifyBaseLogger): void;
  /** Ends the queue and every connection; the one place that does. */
  close(): Promise<void>;
}

/**
 * The first connection error comes before the app, and so its log, exists; connectRedis reports
 * the next only a minute later. Holding it keeps "Redis is unreachable" in the start-up log.
 */
class HeldErrors {
  log: FastifyBaseLogger | null = null;
  private readonly held: { error: unknown; what: string }[] = [];

  report(error: unknown, what: string): void {
    if (this.log) this.log.error({ err: error }, what);
    else if (this.held.length < HELD_ERRORS) this.held.push({ error, what });
  }

  sendTo(log: FastifyBaseLogger): void {
    this.log = log;
    for (const { error, what } of this.held.splice(0)) log.error({ err: error }, what);
  }
}

/** `promise`, or a rejection once `deadline` (epoch ms) has passed. */
function until<T>(promise: Promise<T>, deadline: number): Promise<T> {
  return answerWithin(promise, Math.max(0, deadline - Date.now()));
}

/** Webhook secrets: AUTH=off's tenant ('') signs with WEBHOOK_SECRET, an API key with its own. */
function secretLookup(config: ApiConfig, redis: Redis, keys: Keys): SecretFor {
  return async (owner) => (owner === '' ? (config.WEBHOOK_SECRET ?? null) : webhookSecretOf(redis, keys, owner));
}

/** The deliveries' log lines, to the app's log once it exists (deliveries start before it). */
function webhookLog(errors: HeldErrors): WebhookLog {
  return {
    info: (fields, message) => errors.log?.info(fields, message),
    warn: (fields, message) => errors.log?.warn(fields, message),
    error: (fields, message) => errors.report((fields as { err?: unknown }).err ?? fields, message),
  };
}

async function quitAll(queue: JobQueue, webhooks: WebhookDeliveries, bullConnection: Redis, connections: readonly Redis[]): Promise<void> {
  // Closing politely waits for Redis to answer, which a Redis that stopped answering without closing
  // the socket (hung, or cut off by the network) never does: shutdown gives it QUIT_REDIS_MS in all,
  // then drops the connections. A connection that is not up right now is dropped at once.
  const deadline = Date.now() + QUIT_REDIS_MS;
  if (bullConnection.status === 'ready') await until(Promise.all([queue.close(), webhooks.close()]), deadline).catch(() => undefined);
  else await until(webhooks.disconnect(), deadline).catch(() => undefined);
  await Promise.all(connections.map((connection) => quit(connection, deadline)));
}

/** QUIT, resolving once the connection has ended; past `deadline`, or when it is not up, disconnect. */
async function quit(connection: Redis, deadline: number): Promise<void> {
  if (connection.status === 'ready') {
    const ended = new Promise((resolve) => connection.once('end', resolve));
    try {
      await until(connection.quit().then(() => ended), deadline);
      return;
    } catch {
      // No answer in time: drop it below.
    }
  }
  // Ends the socket (ioredis destroys it if the peer never acknowledges) and any reconnecting.
  connection.disconnect();
}

/** Resolves when Redis answers or after the grace period, whichever comes first: the API also starts without it. */
async function graceForRedis(redis: Redis): Promise<void> {
  if (redis.status === 'ready') return;
  // (Not events.once: it rejects on the connection errors that a Redis still away produces.)
  await Promise.race([new Promise((resolve) => redis.once('ready', resolve)), new Promise((resolve) => setTimeout(resolve, REDIS_GRACE_MS).unref())]);
}

export async function connectInfrastructure(config: ApiConfig): Promise<ConnectedInfrastructure> {
  // First, before any connection: a store that cannot work stops the start with its one line.
  const resultStore = await openResultStore(config);
  const keys = makeKeys(config.REDIS_PREFIX);
  const errors = new HeldErrors();
  const target = redisTarget(config);
  const onRedisError = (error: Error): void => errors.report(error, `${describeRedisTarget(target)} is unreachable`);
  const redis = connectRedis(target, 'client', 'pixelflow-api', onRedisError);
  const bullConnection = connectRedis(target, 'worker', 'pixelflow-api-queue', onRedisError);
  const subscriber = connectRedis(target, 'subscriber', 'pixelflow-api-events', onRedisError);
  const connections = [redis, bullConnection, subscriber];
  let infrastructure: ConnectedInfrastructure;
  try {
    const queue = new JobQueue(bullConnection, keys, onRedisError, redis);
    const eventHub = new JobEventHub(subscriber, keys);
    const webhooks = new WebhookDeliveries({
      connection: bullConnection,
      keys,
      records: new JobRecords(redis, keys),
      settings: webhookSettings(config),
      secretFor: secretLookup(config, redis, keys),
      // An ended job has no place or estimate: its view is the record's alone, as GET /jobs/{id} shows it.
      viewOf: (record) => jobView({ record, queuePosition: null, etaSeconds: null }),
      log: webhookLog(errors),
    });
    let closing: Promise<void> | undefined;
    infrastructure = {
      jobs: new RedisJobService({ redis, keys, queue, retentionSeconds: config.JOB_RETENTION_SECONDS }),
      eventHub,
      resultStore,
      idempotency: new RedisIdempotencyStore(redis, keys),
      apiKeys: new ApiKeys(redis, keys),
      rateCounts: { redis, keyPrefix: keys.prefix },
      reportErrorsTo: (log) => errors.sendTo(log),
      close: () => (closing ??= quitAll(queue, webhooks, bullConnection, connections).finally(() => resultStore.close())),
    };
    // Not awaited: the API starts (and says it is not ready) while Redis is away; the subscription
    // is made when Redis answers, and event streams re-read on every heartbeat meanwhile.
    eventHub.start().catch((error: unknown) => errors.report(error, 'subscribing to job events failed'));
    webhooks.start();
  } catch (error) {
    // Left open, they would reconnect for good and keep the process alive.
    for (const connection of connections) connection.disconnect();
    resultStore.close();
    throw error;
  }
  await graceForRedis(redis);
  return infrastructure;
}
