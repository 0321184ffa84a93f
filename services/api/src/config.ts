import { DEFAULT_MODEL_DIR } from '@pixelflow/formats';
import { WEB_DIST_DIR } from '@pixelflow/web';
import { checkResultsEnv, ResultsEnv } from '@pixelflow/results';
import { WebhookEnv } from '@pixelflow/webhooks';
import { CommonEnv, intVar, parseEnv } from '@pixelflow/schemas';
import { z } from 'zod';

// The API's environment variables (documented in docs/operators/running.md's configuration table).

const ORIGINS_RULE = 'must be * or a comma-separated list of origins such as https://app.example.com (scheme, host and port only)';

/** An origin as browsers send it in the Origin header: scheme, host, port; nothing more. */
function isOrigin(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === text;
  } catch {
    return false;
  }
}

/** Which web origins may call the API from a browser (CORS): none unless configured. */
const CorsOrigins = z
  .string()
  .transform((text) => text.split(',').map((origin) => origin.trim()).filter((origin) => origin !== ''))
  .refine((origins) => (origins.length === 1 && origins[0] === '*') || origins.every(isOrigin), { error: ORIGINS_RULE });

const RATE_RULE = 'must be an integer from 1 to 1000000 (requests a minute), or unset for no limit';

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
  /** Origins whose pages may call the API (`*`: any); unset, browsers allow only the API's own origin. */
  CORS_ORIGINS: CorsOrigins.default([]),
  /**
   * How long a request may take to arrive, headers and body: a client that stalls or trickles is
   * answered 408 and cut. Only the request counts: a response that streams (GET /jobs/{id}/events)
   * is not limited.
   */
  REQUEST_TIMEOUT_MS: intVar(1000, 600_000, 30_000),
  /** How long the request line and headers may take; at most REQUEST_TIMEOUT_MS. */
  HEADERS_TIMEOUT_MS: intVar(1000, 600_000, 10_000),
  /** How long an idle kept-alive connection stays open; above a proxy's idle timeout, so that the proxy closes first. */
  KEEP_ALIVE_TIMEOUT_MS: intVar(1000, 600_000, 72_000),
  /** Open connections (event streams included) beyond which new ones are dropped unanswered. */
  MAX_CONNECTIONS: intVar(1, 1_000_000, 4096),
  /**
   * on: every route but health, metrics, the API's documentation and the web page's files needs
   * `Authorization: Bearer <key>` (docs/api-keys.md); off: one anonymous tenant, for a trusted network.
   */
  AUTH: z.enum(['off', 'on']).default('off'),
  /**
   * With AUTH=off: requests a minute per client address (the probes, metrics, docs and web page's
   * files aside); unset: no limit. With AUTH=on each key's own rate_per_minute applies instead.
   */
  RATE_LIMIT_PER_MINUTE: z
    .string()
    .regex(/^\s*\d+\s*$/, { error: RATE_RULE })
    .transform(Number)
    .pipe(z.int().min(1, { error: RATE_RULE }).max(1_000_000, { error: RATE_RULE }))
    .optional(),
})
  .extend(ResultsEnv.shape)
  .extend(WebhookEnv.shape)
  .check((ctx) => {
    const { HEADERS_TIMEOUT_MS, REQUEST_TIMEOUT_MS } = ctx.value;
    if (HEADERS_TIMEOUT_MS > REQUEST_TIMEOUT_MS) {
      ctx.issues.push({ code: 'custom', input: HEADERS_TIMEOUT_MS, path: ['HEADERS_TIMEOUT_MS'], message: `must not exceed REQUEST_TIMEOUT_MS (${REQUEST_TIMEOUT_MS})` });
    }
  })
  .check(checkResultsEnv);

export type ApiConfig = z.output<typeof ApiEnv>;

export function loadApiConfig(env: Record<string, string | undefined> = process.env): ApiConfig {
  return parseEnv(ApiEnv, env);
}
