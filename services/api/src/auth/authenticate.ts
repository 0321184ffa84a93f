import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ApiKeyInfo } from '@pixelflow/queue';
import { problem, sendProblem, sendRedisUnavailable } from '../problems.ts';

// AUTH=on: every request but the public ones below carries `Authorization: Bearer <key>`, and the
// key is looked up in Redis on every request (one HGETALL), so a key revoked on one replica is
// refused by all of them on its next request. Refusals are 401 problems with the RFC 6750
// challenge. The key itself is never logged or echoed: only its name goes on, as the principal.

/** Looks an API key up; null when it was never issued or has been revoked. */
export interface KeyAuthenticator {
  authenticate(key: string): Promise<ApiKeyInfo | null>;
}

const REALM = 'Bearer realm="pixelflow"';
/** `Bearer <token>`: the scheme is case-insensitive, the token one run of token68 characters (RFC 6750 2.1). */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

/** Routes anyone may ask for: probes, metrics, the API's documentation, the web page and its files, problem types. */
const PUBLIC_ROUTES = new Set(['/healthz', '/readyz', '/metrics', '/openapi.json', '/', '/assets/:file', '/problems/:kind']);

/** Whether a route (as registered: `/jobs/:id`) answers without a key; the OpenAPI document says so from this too. */
export function isPublicPath(route: string): boolean {
  return PUBLIC_ROUTES.has(route) || route === '/docs' || route.startsWith('/docs/');
}

export function isPublicRoute(request: FastifyRequest): boolean {
  // CORS preflights never carry credentials; @fastify/cors answers them.
  if (request.method === 'OPTIONS') return true;
  const route = request.routeOptions.url;
  // Unknown paths are not public: without a key, a client learns nothing of which paths exist.
  return route !== undefined && isPublicPath(route);
}

/** With `keyGiven`, RFC 6750's error="invalid_token": a key came and it is not one (a client should not retry it). */
function refuse(reply: FastifyReply, request: FastifyRequest, detail: string, keyGiven = false): FastifyReply {
  const challenge = keyGiven ? `${REALM}, error="invalid_token"` : REALM;
  return sendProblem(reply, problem('unauthorized', detail, { instance: request.url.split('?')[0] as string }), { 'www-authenticate': challenge });
}

/** The hook that sets request.principal; with AUTH=off there is none and every principal stays null. */
export function registerAuthentication(app: FastifyInstance, keys: KeyAuthenticator): void {
  app.addHook('onRequest', async (request, reply) => {
    if (isPublicRoute(request)) return;
    const header = request.headers.authorization;
    if (header === undefined || header === '') return refuse(reply, request, 'this API needs an API key: send Authorization: Bearer <key>');
    const match = BEARER.exec(header);
    if (!match) {
      // Another scheme (Basic ...) gets the plain challenge; a Bearer header with anything but one token gave a bad key.
      if (/^bearer(?: |$)/i.test(header)) return refuse(reply, request, 'the Authorization header must be Bearer followed by one API key', true);
      return refuse(reply, request, 'this API takes API keys: send Authorization: Bearer <key>');
    }
    if (!app.jobs.connected()) return sendRedisUnavailable(reply, request.url.split('?')[0] as string);
    let info: ApiKeyInfo | null;
    try {
      info = await keys.authenticate(match[1] as string);
    } catch (error) {
      request.log.error({ err: error }, 'looking up the API key failed');
      return sendRedisUnavailable(reply, request.url.split('?')[0] as string);
    }
    if (!info) return refuse(reply, request, 'the API key is not valid (unknown or revoked)', true);
    request.principal = { keyName: info.name, admin: info.admin, ratePerMinute: info.ratePerMinute, maxActive: info.maxActive };
  });
}
