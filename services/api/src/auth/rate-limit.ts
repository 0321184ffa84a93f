import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import { problem, sendProblem } from '../problems.ts';
import { isPublicRoute } from './authenticate.ts';

// Request rates, per API key (its rate_per_minute) or, with AUTH=off and RATE_LIMIT_PER_MINUTE set,
// per client address: @fastify/rate-limit's fixed one-minute windows counted in Redis (one INCR
// script per request), so every API replica counts against the same number. Every answer of a
// limited request carries the IETF draft's RateLimit-Limit / RateLimit-Remaining / RateLimit-Reset
// (the form @fastify/rate-limit sends with enableDraftSpec); a request over the limit is a 429
// rate-limited problem with Retry-After. Probes, metrics, the API's documentation and the web page's
// files are never limited (the same list of public routes the authentication hook uses).
//
// A Redis blip must not turn requests into 500s or hold them: while the connection is down no count
// is sent, and with skipOnError a failed count lets the request through, unlimited, to its route,
// which answers its own 503 if it needs Redis too.

export interface RateLimitSettings {
  /** The fail-fast client connection (connectRedis 'client'): a count fails at once while Redis is away. */
  redis: Redis;
  /** Prefix of the counters' keys (the deployment's REDIS_PREFIX). */
  keyPrefix: string;
  /** With AUTH=off: requests a minute per client address; undefined: no limit. */
  perAddressPerMinute: number | undefined;
}

const WINDOW_MS = 60_000;

/** A request over its limit, thrown by @fastify/rate-limit (errorResponseBuilder) and answered as a problem here. */
class RateLimited extends Error {
  readonly max: number;
  constructor(max: number) {
    super(`over ${max} requests a minute`);
    this.max = max;
  }
}

/** The limit of a request's sender, or null when it has none. */
function limitOf(request: FastifyRequest, perAddress: number | undefined): number | null {
  if (request.principal) return request.principal.ratePerMinute ?? null;
  return perAddress ?? null;
}

/** After the authentication hook (so the principal is known): call it after registerAuthentication. */
export async function registerRateLimit(app: FastifyInstance, settings: RateLimitSettings): Promise<void> {
  const { perAddressPerMinute } = settings;
  await app.register(rateLimit, {
    global: false,
    redis: settings.redis,
    nameSpace: `${settings.keyPrefix}:rate:`,
    skipOnError: true,
    enableDraftSpec: true,
    timeWindow: WINDOW_MS,
    // Key names are unique per deployment; addresses only count with AUTH=off (no principal).
    keyGenerator: (request) => (request.principal ? `key:${request.principal.keyName}` : `ip:${request.ip}`),
    max: (request) => limitOf(request, perAddressPerMinute) ?? Number.MAX_SAFE_INTEGER,
    // While the connection is down a count would wait in ioredis's offline queue for the next
    // reconnection attempt; like the routes (JobService.connected), it is not sent at all then.
    allowList: (request) => isPublicRoute(request) || limitOf(request, perAddressPerMinute) === null || settings.redis.status !== 'ready',
    errorResponseBuilder: (_request, context) => new RateLimited(context.max),
  });
  const limit = app.rateLimit();
  app.addHook('onRequest', async (request, reply) => {
    try {
      await limit.call(app, request, reply);
    } catch (error) {
      if (!(error instanceof RateLimited)) throw error;
      const retryAfter = String(reply.getHeader('retry-after') ?? '');
      const detail = `this ${request.principal ? 'API key' : 'client'} may send ${error.max} requests a minute; retry in ${retryAfter} s`;
      return sendProblem(reply, problem('rate-limited', detail, { instance: request.url.split('?')[0] as string }));
    }
  });
}
