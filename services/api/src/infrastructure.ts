import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { IdempotencyStore, JobEventNotifier, JobService } from '@pixelflow/queue';
import type { ResultStore } from '@pixelflow/results';
import type { KeyAuthenticator } from './auth/authenticate.ts';

// What the routes are given from outside: the job service, the hub that wakes
// event streams, and the store of images. The app reads them as decorators
// (`app.jobs`, ...), so tests build it on in-memory ones and call inject(); the
// process builds it on Redis and the results folder (connect-infrastructure.ts).

export interface ApiInfrastructure {
  readonly jobs: JobService;
  readonly eventHub: JobEventNotifier;
  readonly resultStore: ResultStore;
  /** Idempotency-Key records of POST /jobs (Redis); the in-memory route tests go without. */
  readonly idempotency?: IdempotencyStore;
  /** The API keys (Redis); needed with AUTH=on only. */
  readonly apiKeys?: KeyAuthenticator;
  /** Where request rates are counted (Redis, shared by every replica); without it no rate is limited. */
  readonly rateCounts?: { redis: Redis; keyPrefix: string };
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Jobs: submit, look up, cancel; queue depth, workers and the job store's health. */
    jobs: JobService;
    /** Wakes a job's event stream when the job has new events. */
    eventHub: JobEventNotifier;
    /** The jobs' images and stage previews. */
    resultStore: ResultStore;
    /** Idempotency-Key records of POST /jobs: who claimed a key, and the first answer to replay. */
    idempotency: IdempotencyStore | null;
  }
}

/** On the root instance, so every route plugin (an encapsulated child) sees them. */
export function decorateInfrastructure(app: FastifyInstance, infrastructure: ApiInfrastructure): void {
  app.decorate('jobs', infrastructure.jobs);
  app.decorate('eventHub', infrastructure.eventHub);
  app.decorate('resultStore', infrastructure.resultStore);
  app.decorate('idempotency', infrastructure.idempotency ?? null);
}
