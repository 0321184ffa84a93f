import type { Redis } from 'ioredis';
import type { JobEventHub, JobEvents, JobQueue, JobRecords, Keys } from '@pixelflow/queue';
import type { ResultStore } from '@pixelflow/results';
import type { ModelManifest } from '@pixelflow/schemas';
import type { ApiConfig } from './config.ts';
import type { ApiMetrics } from './metrics.ts';

/** What the routes share: configuration, the model's manifest and the Redis side. */
export interface ApiContext {
  config: ApiConfig;
  manifest: ModelManifest;
  keys: Keys;
  /** Request-serving Redis client (fails fast). */
  redis: Redis;
  queue: JobQueue;
  records: JobRecords;
  events: JobEvents;
  hub: JobEventHub;
  store: ResultStore;
  metrics: ApiMetrics;
  /** Open SSE streams, ended when the server closes (they would otherwise hold it open). */
  streams: Set<() => void>;
}
