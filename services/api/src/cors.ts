import cors from '@fastify/cors';
import type { FastifyInstance } from 'fastify';

// Cross-origin requests from browsers, for pages served elsewhere than the API (the demo page is
// served by the API itself and needs none of this). Off unless CORS_ORIGINS names origins. The
// headers are set in an onRequest hook, so the event stream, which writes its own head, carries
// them too (routes/events.ts copies what hooks set).

/** Response headers a cross-origin page may read: what clients of this API act on. */
const EXPOSED_HEADERS = ['Location', 'ETag', 'Retry-After', 'WWW-Authenticate', 'X-Request-Id'];
/** Request headers a cross-origin page may send beyond the CORS-safelisted ones. */
const ALLOWED_HEADERS = ['Authorization', 'Content-Type', 'Last-Event-ID', 'If-None-Match', 'X-Request-Id'];

export async function registerCors(app: FastifyInstance, origins: readonly string[]): Promise<void> {
  if (origins.length === 0) return;
  await app.register(cors, {
    origin: origins[0] === '*' ? '*' : [...origins],
    methods: ['GET', 'HEAD', 'POST', 'DELETE'],
    allowedHeaders: ALLOWED_HEADERS,
    exposedHeaders: EXPOSED_HEADERS,
    // Browsers cache a preflight this long (seconds) instead of asking before every POST.
    maxAge: 600,
  });
}
