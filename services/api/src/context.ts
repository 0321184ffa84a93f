import type { ModelManifest } from '@pixelflow/schemas';
import type { ApiConfig } from './config.ts';
import type { ApiMetrics } from './metrics.ts';

/**
 * What the routes share besides the infrastructure (which they read as decorators, infrastructure.ts):
 * configuration, the model's manifest, the metrics and the open event streams.
 */
export interface ApiContext {
  config: ApiConfig;
  manifest: ModelManifest;
  metrics: ApiMetrics;
  /** Open SSE streams, ended when the server closes (they would otherwise hold it open). */
  streams: Set<() => void>;
}
