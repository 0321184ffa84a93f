import { DEFAULT_MODEL_DIR } from '@pixelflow/formats';
import { WEB_DIST_DIR } from '@pixelflow/web';
import { CommonEnv, intVar, parseEnv } from '@pixelflow/schemas';
import { z } from 'zod';

// The API's environment variables (documented in the README's configuration table).

export const ApiEnv = CommonEnv.extend({
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: intVar(0, 65535, 8080),
  /** The API reads only pixelflow.json from it (class names, stages, defaults); the worker loads the model. */
  MODEL_DIR: z.string().min(1).default(DEFAULT_MODEL_DIR),
  /** Jobs waiting or running beyond which POST /jobs answers 503 with Retry-After. */
  QUEUE_CAP: intVar(1, 1_000_000, 1000),
  BODY_LIMIT_BYTES: intVar(256, 1_048_576, 16_384),
  SSE_HEARTBEAT_MS: intVar(100, 300_000, 15_000),
  /** A worker heartbeat older than this does not count for /readyz. */
  WORKER_STALE_MS: intVar(1000, 600_000, 15_000),
  /** The built web page (`pnpm build:web`), served at `/`. */
  WEB_DIR: z.string().min(1).default(WEB_DIST_DIR),
});

export type ApiConfig = z.output<typeof ApiEnv>;

export function loadApiConfig(env: Record<string, string | undefined> = process.env): ApiConfig {
  return parseEnv(ApiEnv, env);
}
